"""The preventive cycle as a list of steps, and the runner that records, recovers and resumes.

Every step writes `started`, then `done` (with the data later steps need) or `failed` to the
journal. A run that has no `run finished` event was killed: the next run of the site picks it up
from the journal, not from memory, and finishes it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tma_ops.config import Site
from tma_ops.errors import RollbackFailed, StepFailed, TmaError, one_line
from tma_ops.journal import Event, Journal
from tma_ops.lock import SiteLock
from tma_ops.policy import (
    culprits,
    outcome_exit_code,
    production_state,
    resume_action,
    run_outcome,
    step_applies,
)
from tma_ops.progress import SILENT, TransferProgress
from tma_ops.steps import RunContext, Step
from tma_ops.steps.apply import apply_on_staging, promote_to_production
from tma_ops.steps.backup import (
    pre_promotion_snapshot,
    prune_snapshots,
    refresh_staging,
    reset_staging,
    rollback_production,
    snapshot_production,
    verify_production_snapshot,
)
from tma_ops.steps.bisect import bisect_staging
from tma_ops.steps.plan import plan_updates
from tma_ops.steps.preflight import preflight
from tma_ops.steps.smoke import smoke_production, smoke_staging
from tma_ops.stores import Store

STEPS = [
    Step("preflight", "preflight", preflight),
    Step("snapshot", "snapshot production", snapshot_production),
    Step("verify", "verify the stored copy", verify_production_snapshot),
    Step("refresh_staging", "refresh staging", refresh_staging),
    Step("plan", "plan updates", plan_updates),
    Step("apply_staging", "apply on staging", apply_on_staging),
    Step("smoke_staging", "smoke staging", smoke_staging),
    Step("bisect", "bisect the failed batch", bisect_staging),
    Step("reset_staging", "reset staging", reset_staging),
    Step("pre_promotion_snapshot", "pre-promotion snapshot", pre_promotion_snapshot),
    Step("promote", "promote to production", promote_to_production, touches_production=True),
    Step("smoke_production", "smoke production", smoke_production, touches_production=True),
    Step("rollback", "roll back production", rollback_production, touches_production=True),
    Step("prune", "apply retention", prune_snapshots),
]
STEP_BY_NAME = {step.name: step for step in STEPS}
# Run by a resume before redoing an interrupted promotion; journaled under its own name so that
# it is never taken for the run's rollback.
RESET_PRODUCTION = Step(
    "reset_production",
    "reset production before redoing the promotion",
    rollback_production,
    touches_production=True,
)


@dataclass
class RunSummary:
    site: str
    run_id: str
    outcome: str
    production: str
    exit_code: int
    resumed: bool = False
    updates: list[dict[str, Any]] = field(default_factory=list)
    culprits: list[str] = field(default_factory=list)  # updates held back: they broke staging
    snapshots: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass
class PendingRun:
    run_id: str
    outputs: dict[str, dict[str, Any]]
    interrupted: str | None
    failed: str | None


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def find_pending_run(journal: Journal, site: str) -> PendingRun | None:
    """The site's latest cycle run when it never reached `run finished` (it was killed).

    One-off operations (manual snapshot, restore) have no `run started` event and are skipped.
    """
    for run_id in reversed(journal.runs(site)):
        events = journal.events(site=site, run_id=run_id)
        markers = {e.status for e in events if e.step == "run"}
        if "started" in markers:
            return None if "finished" in markers else _pending_from(run_id, events)
    return None


def _pending_from(run_id: str, events: list[Event]) -> PendingRun:
    outputs: dict[str, dict[str, Any]] = {}
    open_steps: list[str] = []
    failed = None
    for event in events:
        if event.step not in STEP_BY_NAME:
            continue
        if event.status == "started":
            open_steps.append(event.step)
        elif event.status == "done":
            outputs[event.step] = event.data
        elif event.status == "failed":
            failed = event.step
    interrupted = next((s for s in reversed(open_steps) if s not in outputs and s != failed), None)
    return PendingRun(run_id, outputs, interrupted, failed)


def run_cycle(
    site: Site,
    store: Store,
    journal: Journal,
    state_dir: Path,
    *,
    progress: TransferProgress = SILENT,
    say: Callable[[str], None] = print,
    break_stale_lock: bool = False,
    approved: frozenset[str] = frozenset(),
) -> RunSummary:
    lock = SiteLock(state_dir, site.name)
    run_id = new_run_id()
    stale = lock.acquire(run_id, break_stale=break_stale_lock)
    try:
        pending = find_pending_run(journal, site.name)
        ctx = RunContext(
            site,
            store,
            journal,
            pending.run_id if pending else run_id,
            dict(pending.outputs) if pending else {},
            progress,
            say,
            approved=approved,
        )
        ctx.artifacts = state_dir / "artifacts" / site.name / ctx.run_id
        if stale is not None:
            ctx.record("lock", "broken", {"stale_owner": stale.describe()})
        if pending is None:
            ctx.record("run", "started", {"tier": site.tier})
            return _run_steps(ctx, resumed=False)
        return _resume(ctx, pending)
    finally:
        lock.release()


def _resume(ctx: RunContext, pending: PendingRun) -> RunSummary:
    action = resume_action(pending.interrupted)
    ctx.tell(
        f"resuming run {ctx.run_id} (interrupted in {pending.interrupted or 'between steps'}"
        f"): {action}"
    )
    ctx.record("run", "resumed", {"interrupted": pending.interrupted, "action": action})
    if pending.failed is not None:
        return _finish_failed(
            ctx,
            STEP_BY_NAME[pending.failed],
            TmaError(f"step {pending.failed} had failed before the crash"),
        )
    if action == "reset-production-then-redo":
        _run_one(ctx, RESET_PRODUCTION)
        ctx.outputs.pop(RESET_PRODUCTION.name, None)
    return _run_steps(ctx, resumed=True)


def _run_steps(ctx: RunContext, *, resumed: bool) -> RunSummary:
    for step in STEPS:
        if step.name in ctx.outputs or not step_applies(step.name, ctx.outputs):
            continue
        try:
            _run_one(ctx, step)
        except BaseException as exc:
            return _finish_failed(ctx, step, exc)
    outcome = run_outcome(ctx.outputs)
    return _finish(ctx, outcome, resumed=resumed)


def _run_one(ctx: RunContext, step: Step) -> None:
    ctx.record(step.name, "started")
    try:
        data = step.action(ctx)
    except BaseException as exc:
        ctx.record(step.name, "failed", {"error": one_line(exc)})
        raise
    ctx.outputs[step.name] = data
    ctx.record(step.name, "done", data)


def _finish_failed(ctx: RunContext, step: Step, exc: BaseException) -> RunSummary:
    """A step failed: put production back if it may have changed, record, then re-raise."""
    production = "unchanged (never touched)"
    if step.touches_production and step.name != "rollback":
        ctx.outputs.pop("rollback", None)
        try:
            _run_one(ctx, STEP_BY_NAME["rollback"])
        except BaseException as rollback_exc:
            ctx.record("run", "finished", {"outcome": "failed", "production": "INCONSISTENT"})
            raise RollbackFailed(
                f"{ctx.site.name}: {step.name} failed ({one_line(exc)}) and "
                f"the rollback failed too ({one_line(rollback_exc)}): "
                "production needs attention"
            ) from rollback_exc
        production = production_state("rolled-back")
    elif step.name == "rollback":
        ctx.record("run", "finished", {"outcome": "failed", "production": "INCONSISTENT"})
        raise RollbackFailed(
            f"{ctx.site.name}: the rollback of production failed "
            f"({one_line(exc)}): production needs attention"
        ) from exc
    ctx.record(
        "run",
        "finished",
        {
            "outcome": "failed",
            "failed_step": step.name,
            "error": one_line(exc),
            "production": production,
        },
    )
    if isinstance(exc, TmaError):
        raise StepFailed(
            f"{ctx.site.name}: {step.title} failed: {exc}; production {production}",
            exit_code=exc.exit_code,
        ) from exc
    raise exc


def _finish(ctx: RunContext, outcome: str, *, resumed: bool) -> RunSummary:
    summary = RunSummary(
        site=ctx.site.name,
        run_id=ctx.run_id,
        outcome=outcome,
        production=production_state(outcome),
        exit_code=outcome_exit_code(outcome),
        resumed=resumed,
        updates=ctx.outputs.get("plan", {}).get("updates", []),
        culprits=culprits(ctx.outputs),
        snapshots={
            name: data["snapshot_id"]
            for name, data in ctx.outputs.items()
            if name in ("snapshot", "pre_promotion_snapshot")
        },
    )
    ctx.record(
        "run",
        "finished",
        {
            "outcome": outcome,
            "production": summary.production,
            "updates": summary.updates,
            "culprits": summary.culprits,
            "snapshots": summary.snapshots,
        },
    )
    ctx.tell(f"{outcome}: production {summary.production}")
    return summary
