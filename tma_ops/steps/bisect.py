"""Bisect step: a batch failed staging's smoke test; find the culprit(s) in few staging rounds.

Each round restores staging from the run's snapshot, applies one subset of the plan (chosen by
tma_ops.bisect) and runs staging's smoke test. Every round is journaled; the step's result names
the culprits and the updates that passed together, which the promotion then takes.
"""

from __future__ import annotations

from typing import Any

from tma_ops.bisect import Components, Round, next_step
from tma_ops.errors import TmaError
from tma_ops.restore import restore_snapshot
from tma_ops.snapshot import Manifest, load_manifest
from tma_ops.stacks import Update
from tma_ops.steps import RunContext
from tma_ops.steps.apply import apply_updates, planned_updates
from tma_ops.steps.smoke import run_smoke


def bisect_staging(ctx: RunContext) -> dict[str, Any]:
    plan = planned_updates(ctx)
    order = [u.component for u in plan]
    results: dict[Components, bool] = {tuple(order): False}
    rounds: list[dict[str, Any]] = []
    manifest = load_manifest(ctx.store, ctx.site.name, ctx.outputs["snapshot"]["snapshot_id"])
    ctx.tell(f"staging failed with {len(order)} update(s): bisecting to find the culprit(s)")
    while isinstance(step := next_step(order, results), Round):
        number = len(rounds) + 1
        chosen = [u for u in plan if u.component in step.components]
        ctx.tell(f"bisect round {number}: staging with {', '.join(step.components)}")
        record = {
            "round": number,
            "updates": list(step.components),
            **_try(ctx, manifest, chosen, number),
        }
        results[step.components] = record["ok"]
        rounds.append(record)
        ctx.record("bisect", "round", record)
        ctx.tell(f"bisect round {number}: {'passed' if record['ok'] else 'FAILED'}")
    verdict = step
    for culprit in verdict.culprits:
        update = next(u for u in plan if u.component == culprit)
        ctx.tell(f"culprit: {update.describe()} breaks staging; it is not promoted")
    return {
        "rounds": rounds,
        "promotable": list(verdict.promotable),
        "culprits": list(verdict.culprits),
    }


def _try(ctx: RunContext, manifest: Manifest, updates: list[Update], number: int) -> dict[str, Any]:
    """Staging from the snapshot plus `updates`: whether it passes, and why not."""
    restore_snapshot(ctx.site, manifest, "staging", ctx.store, progress=ctx.progress)
    try:
        applied = apply_updates(ctx, "staging", "bisect", updates)
    except TmaError as exc:
        return {"ok": False, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    results = run_smoke(ctx, "staging", f"bisect-{number}", applied["baseline"])
    failed = [r.name for r in results if not r.ok]
    return {"ok": not failed, "failed_checks": failed}
