"""Pure decisions: which steps of a cycle run, what a run's outcome is, what a retention keeps,
how much disk a restore lacks. Table tests: one row per case, each with an id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tma_ops import policy
from tma_ops.config import Retention
from tma_ops.cycle import STEPS
from tma_ops.errors import EXIT_OK, EXIT_ROLLED_BACK, EXIT_WARNINGS
from tma_ops.retention import snapshots_to_keep
from tma_ops.steps.preflight import disk_shortfall

pytestmark = pytest.mark.unit

UPDATE = {"component": "seo", "current": "1.0.0", "target": "1.1.0", "kind": "minor"}
ALWAYS = {"preflight", "snapshot", "verify", "refresh_staging", "plan", "prune"}
UPDATING = {"apply_staging", "smoke_staging"}
PROMOTING = {"pre_promotion_snapshot", "promote", "smoke_production"}


def outputs_of(
    *,
    updates: bool | None,
    staging_ok: bool | None = None,
    production_ok: bool | None = None,
    bisect: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Outputs of a run so far: None means the step did not run (yet)."""
    outputs: dict[str, dict[str, Any]] = {"preflight": {}, "snapshot": {"snapshot_id": "s1"}}
    if updates is not None:
        outputs["plan"] = {"updates": [UPDATE] if updates else [], "held": []}
    if staging_ok is not None:
        outputs["smoke_staging"] = {"ok": staging_ok, "results": []}
    if bisect is not None:  # what passed together; the planned update is a culprit
        outputs["bisect"] = {"rounds": [], "promotable": bisect, "culprits": [UPDATE["component"]]}
    if production_ok is not None:
        outputs["smoke_production"] = {"ok": production_ok, "results": []}
    return outputs


BISECTING = {"bisect", "reset_staging"}


# name: (outputs, the steps that apply)
STATES: dict[str, tuple[dict[str, dict[str, Any]], set[str]]] = {
    "before-plan": (outputs_of(updates=None), ALWAYS),
    "up-to-date": (outputs_of(updates=False), ALWAYS),
    "updates-planned": (outputs_of(updates=True), ALWAYS | UPDATING),
    "staging-failed": (outputs_of(updates=True, staging_ok=False), ALWAYS | UPDATING | BISECTING),
    "bisect-no-culprit-free-set": (
        outputs_of(updates=True, staging_ok=False, bisect=[]),
        ALWAYS | UPDATING | BISECTING,
    ),
    "bisect-found-a-passing-set": (
        outputs_of(updates=True, staging_ok=False, bisect=["forms"]),
        ALWAYS | UPDATING | BISECTING | PROMOTING,
    ),
    "partly-promoted": (
        outputs_of(updates=True, staging_ok=False, bisect=["forms"], production_ok=True),
        ALWAYS | UPDATING | BISECTING | PROMOTING,
    ),
    "partly-promoted-then-failed": (
        outputs_of(updates=True, staging_ok=False, bisect=["forms"], production_ok=False),
        ALWAYS | UPDATING | BISECTING | PROMOTING | {"rollback"},
    ),
    "staging-passed": (outputs_of(updates=True, staging_ok=True), ALWAYS | UPDATING | PROMOTING),
    "production-failed": (
        outputs_of(updates=True, staging_ok=True, production_ok=False),
        ALWAYS | UPDATING | PROMOTING | {"rollback"},
    ),
    "production-passed": (
        outputs_of(updates=True, staging_ok=True, production_ok=True),
        ALWAYS | UPDATING | PROMOTING,
    ),
}
STEP_NAMES = [step.name for step in STEPS]


def test_the_table_covers_every_step_of_the_cycle() -> None:
    named = ALWAYS | UPDATING | PROMOTING | BISECTING | {"rollback"}
    assert named == set(STEP_NAMES)


@pytest.mark.parametrize("step", STEP_NAMES)
@pytest.mark.parametrize("state", list(STATES))
def test_step_applies(state: str, step: str) -> None:
    outputs, applying = STATES[state]
    assert policy.step_applies(step, outputs) is (step in applying)


@pytest.mark.parametrize(
    ("state", "outcome", "exit_code", "production"),
    [
        pytest.param("before-plan", "up-to-date", EXIT_OK, "unchanged", id="no-plan"),
        pytest.param("up-to-date", "up-to-date", EXIT_OK, "unchanged", id="up-to-date"),
        pytest.param(
            "staging-failed",
            "staging-failed",
            EXIT_ROLLED_BACK,
            "unchanged (never touched)",
            id="staging-failed",
        ),
        pytest.param(
            "production-failed",
            "rolled-back",
            EXIT_ROLLED_BACK,
            "restored to its pre-promotion snapshot",
            id="rolled-back",
        ),
        pytest.param("production-passed", "promoted", EXIT_OK, "updated", id="promoted"),
        pytest.param(
            "bisect-no-culprit-free-set",
            "staging-failed",
            EXIT_ROLLED_BACK,
            "unchanged (never touched)",
            id="every-update-a-culprit",
        ),
        pytest.param(
            "partly-promoted",
            "partly-promoted",
            EXIT_WARNINGS,
            "updated, without the updates that failed on staging",
            id="partly-promoted",
        ),
        pytest.param(
            "partly-promoted-then-failed",
            "rolled-back",
            EXIT_ROLLED_BACK,
            "restored to its pre-promotion snapshot",
            id="partly-promoted-then-rolled-back",
        ),
    ],
)
def test_run_outcome(state: str, outcome: str, exit_code: int, production: str) -> None:
    outputs, _ = STATES[state]
    assert policy.run_outcome(outputs) == outcome
    assert policy.outcome_exit_code(outcome) == exit_code
    assert policy.production_state(outcome) == production


@pytest.mark.parametrize(
    ("outcome", "exit_code", "production"),
    [
        pytest.param("failed", EXIT_OK, "unknown", id="not-a-cycle-outcome"),
        pytest.param("", EXIT_OK, "unknown", id="empty"),
    ],
)
def test_unknown_outcome(outcome: str, exit_code: int, production: str) -> None:
    assert policy.outcome_exit_code(outcome) == exit_code
    assert policy.production_state(outcome) == production


@pytest.mark.parametrize(
    ("interrupted", "action"),
    [
        pytest.param(None, "continue", id="between-steps"),
        pytest.param("promote", "reset-production-then-redo", id="promote"),
        *(
            pytest.param(name, "redo", id=name)
            for name in STEP_NAMES
            if name not in policy.RESET_PRODUCTION_BEFORE_REDO
        ),
    ],
)
def test_resume_action(interrupted: str | None, action: str) -> None:
    assert policy.resume_action(interrupted) == action


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def rules(last: int = 1, daily: int = 0, weekly: int = 0, monthly: int = 0) -> Retention:
    return Retention(keep_last=last, keep_daily=daily, keep_weekly=weekly, keep_monthly=monthly)


# Snapshot ids are their creation times, listed out of order on purpose.
MONTH_END = ["2024-01-31T09:00", "2024-02-01T12:00", "2024-01-30T08:00", "2024-01-31T23:59"]
MONTH_END += ["2024-02-01T00:00"]
# 2024-12-30 (Monday) is in ISO week 1 of 2025, with 2025-01-03; 2024-12-29 is in week 52.
YEAR_END = ["2024-12-22T10:00", "2024-12-28T10:00", "2024-12-29T10:00", "2024-12-30T10:00"]
YEAR_END += ["2025-01-03T10:00", "2024-11-15T10:00", "2024-12-01T10:00", "2024-12-31T23:00"]
YEAR_END += ["2025-01-01T00:30"]


@pytest.mark.parametrize(
    ("stamps", "policy_", "protected", "kept"),
    [
        pytest.param([], rules(), (), set(), id="empty"),
        pytest.param([], rules(), ("gone",), {"gone"}, id="empty-but-protected"),
        pytest.param(
            MONTH_END,
            rules(last=2),
            (),
            {"2024-02-01T12:00", "2024-02-01T00:00"},
            id="keep-last-only",
        ),
        pytest.param(
            MONTH_END[:3],
            rules(last=10, daily=10, weekly=10, monthly=10),
            (),
            set(MONTH_END[:3]),
            id="more-rules-than-snapshots",
        ),
        pytest.param(
            MONTH_END,
            rules(daily=3),
            (),
            {"2024-02-01T12:00", "2024-01-31T23:59", "2024-01-30T08:00"},
            id="daily-across-month-end",
        ),
        pytest.param(
            MONTH_END,
            rules(daily=2),
            (),
            {"2024-02-01T12:00", "2024-01-31T23:59"},
            id="daily-fewer-than-days",
        ),
        pytest.param(
            YEAR_END,
            rules(weekly=3),
            (),
            {"2025-01-03T10:00", "2024-12-29T10:00", "2024-12-22T10:00"},
            id="weekly-iso-weeks-across-year-end",
        ),
        pytest.param(
            YEAR_END,
            rules(monthly=3),
            (),
            {"2025-01-03T10:00", "2024-12-31T23:00", "2024-11-15T10:00"},
            id="monthly-across-year-end",
        ),
        pytest.param(
            ["2023-06-10T10:00", "2024-06-10T09:00"],
            rules(monthly=2),
            (),
            {"2023-06-10T10:00", "2024-06-10T09:00"},
            id="monthly-same-month-of-two-years",
        ),
        pytest.param(
            YEAR_END,
            rules(),
            ("2024-11-15T10:00", "2024-12-28T10:00"),
            {"2025-01-03T10:00", "2024-11-15T10:00", "2024-12-28T10:00"},
            id="protected-always-kept",
        ),
        pytest.param(
            YEAR_END,
            rules(last=2, daily=3, weekly=2, monthly=2),
            (),
            {"2025-01-03T10:00", "2025-01-01T00:30", "2024-12-31T23:00", "2024-12-29T10:00"},
            id="rules-combined",
        ),
    ],
)
def test_snapshots_to_keep(
    stamps: list[str], policy_: Retention, protected: tuple[str, ...], kept: set[str]
) -> None:
    snapshots = [(stamp, at(stamp)) for stamp in stamps]
    assert snapshots_to_keep(snapshots, policy_, protected) == kept


def test_snapshots_to_keep_accepts_an_iterator() -> None:
    snapshots = iter([(stamp, at(stamp)) for stamp in MONTH_END])
    assert snapshots_to_keep(snapshots, rules(last=1)) == {"2024-02-01T12:00"}


@pytest.mark.parametrize(
    ("free", "tree", "missing"),
    [
        pytest.param(10_000, 1_000, 0, id="room-to-spare"),
        pytest.param(1_200, 1_000, 0, id="exactly-enough"),
        pytest.param(1_199, 1_000, 1, id="one-byte-short"),
        pytest.param(0, 1_000, 1_200, id="disk-full"),
        pytest.param(0, 0, 0, id="empty-tree"),
        pytest.param(5, 0, 0, id="empty-tree-some-free"),
        pytest.param(0, 3, 4, id="rounds-up-not-down"),
        pytest.param(0, 10**15 + 1, 1_200_000_000_000_002, id="petabyte-exact"),
        pytest.param(100 * 2**30, 50 * 2**30, 0, id="gib"),
        pytest.param(50 * 2**30, 50 * 2**30, 10 * 2**30, id="gib-short"),
    ],
)
def test_disk_shortfall(free: int, tree: int, missing: int) -> None:
    assert disk_shortfall(free, tree) == missing
