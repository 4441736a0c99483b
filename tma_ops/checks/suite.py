"""An environment's smoke suite: build its declared checks, take baselines, run them all."""

from __future__ import annotations

import importlib
from collections.abc import Collection
from typing import Any

from tma_ops.checks import Check, CheckResult, CheckTarget

# check kind -> "module:Class"; each class is built as Class(spec, target).
CHECK_CLASSES = {
    "http": "tma_ops.checks.http:HttpSmokeCheck",
    "journey": "tma_ops.checks.journey:JourneyCheckRunner",
    "logscan": "tma_ops.checks.logscan:LogScan",
    "host": "tma_ops.checks.host:HostChecks",
    "visual": "tma_ops.checks.visual:VisualRegression",
}


def build_checks(target: CheckTarget) -> list[Check]:
    checks = []
    for spec in target.env.smoke:
        module_name, class_name = CHECK_CLASSES[spec.check].split(":")
        check_class = getattr(importlib.import_module(module_name), class_name)
        checks.append(check_class(spec, target))
    return checks


def suite_key(index: int, check: Check) -> str:
    return f"{index}:{check.name}"


def kind_of(check: Check) -> str:
    return str(getattr(getattr(check, "spec", None), "check", "unknown"))


def take_baselines(
    checks: list[Check], kinds: Collection[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Each check's memory of the environment before a change, keyed by its place in the suite
    (only the checks of `kinds`, when given)."""
    baselines = {}
    for index, check in enumerate(checks):
        if kinds is not None and kind_of(check) not in kinds:
            continue
        data = check.baseline()
        if data:
            baselines[suite_key(index, check)] = data
    return baselines


def rollback_baselines(
    checks: list[Check], before: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Baselines for checking a rollback: log scans start now (the undone change's errors are
    not the rollback's); the other checks compare with the state `before` the change."""
    logs = {suite_key(i, c) for i, c in enumerate(checks) if kind_of(c) == "logscan"}
    kept = {key: data for key, data in before.items() if key not in logs}
    return {**kept, **take_baselines(checks, {"logscan"})}


def run_suite(
    checks: list[Check], baselines: dict[str, dict[str, Any]] | None = None
) -> list[CheckResult]:
    """Run every check; one that raises is a failed result naming the error, not a crash."""
    results = []
    for index, check in enumerate(checks):
        baseline = (baselines or {}).get(suite_key(index, check))
        try:
            results.append(check.check(baseline))
        except Exception as exc:  # a broken check must not hide the others' verdicts
            results.append(
                CheckResult(
                    name=check.name,
                    ok=False,
                    detail=f"check could not run: {type(exc).__name__}: {exc}",
                    kind=kind_of(check),
                )
            )
    return results
