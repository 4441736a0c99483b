"""Smoke steps: run an environment's checks against the baseline taken before the change, and
record every result."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tma_ops.checks import Check, CheckResult, CheckTarget
from tma_ops.checks.suite import build_checks, rollback_baselines, run_suite, take_baselines
from tma_ops.rollback import release_tree
from tma_ops.steps import RunContext

Baselines = dict[str, dict[str, Any]]


def env_checks(ctx: RunContext, env_name: str, label: str) -> list[Check]:
    """The environment's declared checks; their evidence files go under the run's artifacts."""
    target = CheckTarget(
        site=ctx.site.name,
        env_name=env_name,
        env=ctx.site.environment(env_name),
        artifacts=ctx.artifacts / env_name / label,
    )
    return build_checks(target)


def baseline_of(ctx: RunContext, env_name: str, label: str) -> Baselines:
    """What the checks must remember of the environment before a change is made to it."""
    return take_baselines(env_checks(ctx, env_name, label))


def fresh_log_baselines(ctx: RunContext, env_name: str, label: str, before: Baselines) -> Baselines:
    """Baselines to check a rollback of `env_name` with (see rollback_baselines)."""
    return rollback_baselines(env_checks(ctx, env_name, label), before)


def run_smoke(
    ctx: RunContext, env_name: str, label: str, baselines: Baselines | None
) -> list[CheckResult]:
    results = run_suite(env_checks(ctx, env_name, label), baselines)
    for result in results:
        mark = "ok" if result.ok else "FAILED"
        ctx.tell(f"smoke {env_name}: {mark} {result.name}: {result.detail}")
    return results


def smoke_staging(ctx: RunContext) -> dict[str, Any]:
    baselines = ctx.outputs.get("apply_staging", {}).get("baseline")
    return _smoke(ctx, "staging", "smoke_staging", baselines)


def smoke_production(ctx: RunContext) -> dict[str, Any]:
    promote = ctx.outputs.get("promote", {})
    result = _smoke(ctx, "production", "smoke_production", promote.get("baseline"))
    if result["ok"] and promote.get("release"):
        result["pruned_releases"] = keep_good_release(ctx, "production", promote["release"])
    return result


def keep_good_release(ctx: RunContext, env_name: str, release_id: str) -> list[str]:
    """The release passed its smoke test: mark it good and drop releases beyond `keep`."""
    env = ctx.site.environment(env_name)
    tree = release_tree(env)
    assert tree is not None and env.releases is not None
    tree.mark(release_id, "good")
    pruned = tree.prune(env.releases.keep)
    if pruned:
        ctx.tell(f"{env_name}: removed old release(s) {', '.join(pruned)}")
    return pruned


def _smoke(
    ctx: RunContext, env_name: str, label: str, baselines: Baselines | None
) -> dict[str, Any]:
    results = run_smoke(ctx, env_name, label, baselines)
    return {"ok": all(r.ok for r in results), "results": [asdict(r) for r in results]}
