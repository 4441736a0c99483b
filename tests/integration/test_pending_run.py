"""find_pending_run over a real journal: what a killed run left, as the next run reads it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tma_ops.cycle import find_pending_run
from tma_ops.journal import Journal

pytestmark = pytest.mark.integration

SNAPSHOT = {"snapshot_id": "20300101T000000Z-aaaaaa", "stored_bytes": 1234, "components": {}}
PLAN = {"updates": [{"component": "seo", "target": "1.1.0"}], "held": []}
PASSED = {"ok": True, "results": [{"name": "home", "ok": True}]}
# The steps of a run that promoted its updates, each with the data it records.
PROMOTED_RUN: list[tuple[str, dict[str, Any]]] = [
    ("preflight", {"production": {"tree_bytes": 10}}),
    ("snapshot", SNAPSHOT),
    ("verify", {"snapshot_id": SNAPSHOT["snapshot_id"]}),
    ("refresh_staging", {"snapshot_id": SNAPSHOT["snapshot_id"]}),
    ("plan", PLAN),
    ("apply_staging", {"applied": ["seo"]}),
    ("smoke_staging", PASSED),
    ("pre_promotion_snapshot", {**SNAPSHOT, "snapshot_id": "20300101T000100Z-bbbbbb"}),
    ("promote", {"applied": ["seo"]}),
    ("smoke_production", PASSED),
    ("prune", {"pruned": [], "kept": 2}),
]


class Run:
    """Writes the events of one run the way the cycle runner does."""

    def __init__(self, journal: Journal, site: str, run_id: str) -> None:
        self.journal, self.site, self.run_id = journal, site, run_id

    def event(self, step: str, status: str, data: dict[str, Any] | None = None) -> Run:
        self.journal.append(
            run_id=self.run_id, site=self.site, step=step, status=status, data=data or {}
        )
        return self

    def start(self) -> Run:
        return self.event("run", "started", {"tier": "business"})

    def steps(self, steps: list[tuple[str, dict[str, Any]]]) -> Run:
        for step, data in steps:
            self.event(step, "started").event(step, "done", data)
        return self

    def finish(self, outcome: str = "promoted") -> Run:
        return self.event("run", "finished", {"outcome": outcome})


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "state" / "journal.sqlite") as journal:
        yield journal


def outputs_of(steps: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return dict(steps)


def test_no_run_is_not_pending(journal: Journal) -> None:
    assert find_pending_run(journal, "blog") is None


def test_a_finished_run_is_not_pending(journal: Journal) -> None:
    Run(journal, "blog", "r1").start().steps(PROMOTED_RUN).finish()
    assert find_pending_run(journal, "blog") is None


def test_a_failed_and_finished_run_is_not_pending(journal: Journal) -> None:
    run = Run(journal, "blog", "r1").start().steps(PROMOTED_RUN[:3])
    run.event("refresh_staging", "started").event("refresh_staging", "failed", {"error": "x"})
    run.finish("failed")
    assert find_pending_run(journal, "blog") is None


@pytest.mark.parametrize("killed_in", ["snapshot", "refresh_staging", "promote", "prune"])
def test_a_run_killed_mid_step(journal: Journal, killed_in: str) -> None:
    done = PROMOTED_RUN[: [name for name, _ in PROMOTED_RUN].index(killed_in)]
    Run(journal, "blog", "r1").start().steps(done).event(killed_in, "started")
    pending = find_pending_run(journal, "blog")
    assert pending is not None
    assert pending.run_id == "r1"
    assert pending.interrupted == killed_in
    assert pending.failed is None
    assert pending.outputs == outputs_of(done)


def test_a_run_killed_between_steps_has_no_interrupted_step(journal: Journal) -> None:
    Run(journal, "blog", "r1").start().steps(PROMOTED_RUN[:5])
    pending = find_pending_run(journal, "blog")
    assert pending is not None
    assert (pending.interrupted, pending.failed) == (None, None)
    assert pending.outputs == outputs_of(PROMOTED_RUN[:5])


def test_a_run_with_a_failed_step_and_no_finish(journal: Journal) -> None:
    run = Run(journal, "blog", "r1").start().steps(PROMOTED_RUN[:5])
    run.event("apply_staging", "started").event("apply_staging", "failed", {"error": "boom"})
    pending = find_pending_run(journal, "blog")
    assert pending is not None
    assert pending.failed == "apply_staging"
    assert pending.interrupted is None
    assert pending.outputs == outputs_of(PROMOTED_RUN[:5])


def test_killed_while_rolling_back_a_failed_promote(journal: Journal) -> None:
    run = Run(journal, "blog", "r1").start().steps(PROMOTED_RUN[:8])
    run.event("promote", "started").event("promote", "failed", {"error": "disk full"})
    run.event("rollback", "started")
    pending = find_pending_run(journal, "blog")
    assert pending is not None
    assert (pending.failed, pending.interrupted) == ("promote", "rollback")
    assert "promote" not in pending.outputs


def test_a_resumed_run_that_redid_its_step_is_read_whole(journal: Journal) -> None:
    run = Run(journal, "blog", "r1").start().steps(PROMOTED_RUN[:3])
    run.event("refresh_staging", "started")  # killed here
    run.event("lock", "broken", {"stale_owner": "pid 1"}).event("run", "resumed", {})
    run.steps(PROMOTED_RUN[3:5]).event("apply_staging", "started")  # killed again
    pending = find_pending_run(journal, "blog")
    assert pending is not None
    assert pending.run_id == "r1"
    assert pending.interrupted == "apply_staging"
    assert pending.outputs == outputs_of(PROMOTED_RUN[:5])


def test_only_the_latest_run_of_the_site_counts(journal: Journal) -> None:
    Run(journal, "blog", "r1").start().steps(PROMOTED_RUN[:2]).event("verify", "started")
    Run(journal, "blog", "r2").start().steps(PROMOTED_RUN).finish()
    assert find_pending_run(journal, "blog") is None

    Run(journal, "blog", "r3").start().steps(PROMOTED_RUN[:1]).event("snapshot", "started")
    pending = find_pending_run(journal, "blog")
    assert pending is not None
    assert pending.run_id == "r3"
    assert (pending.interrupted, pending.outputs) == ("snapshot", outputs_of(PROMOTED_RUN[:1]))


def test_runs_of_other_sites_are_ignored(journal: Journal) -> None:
    blog = Run(journal, "blog", "b1").start()
    shop = Run(journal, "shop", "s1").start()
    blog.steps(PROMOTED_RUN[:1])
    shop.steps(PROMOTED_RUN[:2])
    blog.event("snapshot", "started")
    shop.event("verify", "started").event("verify", "failed", {"error": "digest"})
    Run(journal, "cafe", "c1").start().steps(PROMOTED_RUN).finish()

    pending = find_pending_run(journal, "blog")
    assert pending is not None
    assert (pending.run_id, pending.interrupted, pending.failed) == ("b1", "snapshot", None)
    assert pending.outputs == outputs_of(PROMOTED_RUN[:1])
    shop_pending = find_pending_run(journal, "shop")
    assert shop_pending is not None
    assert (shop_pending.run_id, shop_pending.failed) == ("s1", "verify")
    assert find_pending_run(journal, "cafe") is None
    assert find_pending_run(journal, "unknown") is None


def test_one_off_operations_after_a_killed_run_do_not_hide_it(journal: Journal) -> None:
    Run(journal, "blog", "r1").start().steps(PROMOTED_RUN[:2]).event("verify", "started")
    manual = Run(journal, "blog", "manual-r2")
    manual.event("snapshot", "started", {"environment": "production"})
    manual.event("snapshot", "done", {"environment": "production", **SNAPSHOT})
    pending = find_pending_run(journal, "blog")
    assert pending is not None
    assert (pending.run_id, pending.interrupted) == ("r1", "verify")


def test_the_pending_run_survives_reopening_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        Run(journal, "blog", "r1").start().steps(PROMOTED_RUN[:4]).event("plan", "started")
    with Journal(path) as reopened:
        pending = find_pending_run(reopened, "blog")
    assert pending is not None
    assert (pending.run_id, pending.interrupted) == ("r1", "plan")
    assert pending.outputs == outputs_of(PROMOTED_RUN[:4])


def test_a_reset_rollback_before_redoing_promote_is_not_the_runs_rollback(
    journal: Journal,
) -> None:
    run = Run(journal, "blog", "r1").start().steps(PROMOTED_RUN[:8])
    run.event("promote", "started")  # killed
    run.event("run", "resumed", {"interrupted": "promote"})
    # the resume resets production under its own step name, not as the run's rollback
    run.steps([("reset_production", {"snapshot_id": "x", "smoke_after_rollback_ok": True})])
    run.steps(PROMOTED_RUN[8:9]).event("smoke_production", "started")  # killed again
    pending = find_pending_run(journal, "blog")
    assert pending is not None
    assert pending.interrupted == "smoke_production"
    assert "rollback" not in pending.outputs
