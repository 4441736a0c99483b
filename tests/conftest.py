"""Suite-wide rules: every test carries a tier marker, and under CI=true a skip is a failure."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["harness.fixtures", "harness.docker_fixtures", "harness.s3server"]

TIERS = {"unit", "integration", "e2e"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not TIERS & {mark.name for mark in item.iter_markers()}:
            raise pytest.UsageError(f"{item.nodeid} has no tier marker (unit, integration, e2e)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {report.longrepr}"
