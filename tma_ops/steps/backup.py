"""Steps that move snapshots: back up production, verify, refresh staging, reset, roll back."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tma_ops.parts import Sealing
from tma_ops.pruning import prune_store
from tma_ops.restore import restore_snapshot
from tma_ops.rollback import carry_out, facts_for_release, release_tree
from tma_ops.rollback_plan import RollbackFacts, plan_rollback
from tma_ops.snapshot import (
    Manifest,
    create_snapshot,
    load_manifest,
    verify_snapshot,
)
from tma_ops.steps import RunContext
from tma_ops.steps.smoke import fresh_log_baselines, run_smoke
from tma_ops.units import human_size


def snapshot_production(ctx: RunContext) -> dict[str, Any]:
    manifest = create_snapshot(
        ctx.site, "production", ctx.store, reason=f"cycle {ctx.run_id}", progress=ctx.progress
    )
    ctx.tell(f"production snapshot {manifest.snapshot_id} ({_size(manifest)})")
    return _describe(manifest)


def verify_production_snapshot(ctx: RunContext) -> dict[str, Any]:
    manifest = _manifest_of(ctx, "snapshot")
    verify_snapshot(ctx.store, manifest, ctx.progress, Sealing.of(ctx.site.store.encryption))
    ctx.tell(f"stored copy verified (sha256 of {len(manifest.parts)} parts)")
    return {"snapshot_id": manifest.snapshot_id}


def refresh_staging(ctx: RunContext) -> dict[str, Any]:
    manifest = _manifest_of(ctx, "snapshot")
    restore_snapshot(ctx.site, manifest, "staging", ctx.store, progress=ctx.progress)
    ctx.tell(f"staging refreshed from {manifest.snapshot_id}")
    return {"snapshot_id": manifest.snapshot_id}


def reset_staging(ctx: RunContext) -> dict[str, Any]:
    manifest = _manifest_of(ctx, "snapshot")
    restore_snapshot(ctx.site, manifest, "staging", ctx.store, progress=ctx.progress)
    ctx.tell(f"staging reset to {manifest.snapshot_id}; production was not touched")
    return {"snapshot_id": manifest.snapshot_id}


def pre_promotion_snapshot(ctx: RunContext) -> dict[str, Any]:
    manifest = create_snapshot(
        ctx.site,
        "production",
        ctx.store,
        reason=f"pre-promotion {ctx.run_id}",
        progress=ctx.progress,
    )
    verify_snapshot(ctx.store, manifest, ctx.progress, Sealing.of(ctx.site.store.encryption))
    ctx.tell(f"pre-promotion snapshot {manifest.snapshot_id} ({_size(manifest)}, verified)")
    return _describe(manifest)


def rollback_production(ctx: RunContext) -> dict[str, Any]:
    """Undo the promotion as one unit; the database is kept when no migration ran."""
    before = ctx.outputs.get("promote", {}).get("baseline") or {}
    baselines = fresh_log_baselines(ctx, "production", "rollback", before)
    plan = plan_rollback(_promotion_facts(ctx))
    ctx.tell(f"rolling back production: {plan.describe()}")
    done = carry_out(ctx.site, "production", ctx.store, plan, progress=ctx.progress, say=ctx.tell)
    results = run_smoke(ctx, "production", "rollback", baselines)
    healthy = all(result.ok for result in results)
    state = "passes its smoke test" if healthy else "STILL FAILS its smoke test (check it)"
    ctx.tell(f"production rolled back ({plan.describe()}); it {state}")
    return {
        "snapshot_id": ctx.outputs["pre_promotion_snapshot"]["snapshot_id"],
        "smoke_after_rollback_ok": healthy,
        **done.summary(),
    }


def _promotion_facts(ctx: RunContext) -> RollbackFacts:
    snapshot_id = ctx.outputs["pre_promotion_snapshot"]["snapshot_id"]
    promote = ctx.outputs.get("promote")
    # A promotion cut short left no record of its migrations: assume the database moved.
    migrations_ran = bool(promote["migrations"]) if promote else None
    tree = release_tree(ctx.site.production)
    if tree is None:
        return RollbackFacts(False, None, snapshot_id, migrations_ran)
    releases = tree.releases()
    this_run = next((r for r in reversed(releases) if r.run_id == ctx.run_id), None)
    if this_run is None:  # the promotion stopped before its release existed
        return RollbackFacts(True, tree.current_id(), snapshot_id, migrations_ran)
    facts = facts_for_release(releases, this_run, snapshot_id)
    if promote is not None:
        facts = replace(facts, migrations_ran=migrations_ran)
    return facts


def _manifest_of(ctx: RunContext, step: str) -> Manifest:
    return load_manifest(ctx.store, ctx.site.name, ctx.outputs[step]["snapshot_id"])


def _describe(manifest: Manifest) -> dict[str, Any]:
    return {
        "snapshot_id": manifest.snapshot_id,
        "stored_bytes": manifest.total_size,
        "components": manifest.components,
    }


def _size(manifest: Manifest) -> str:
    return human_size(manifest.total_size)


def prune_snapshots(ctx: RunContext) -> dict[str, Any]:
    """Apply the site's retention; the snapshots of this run are always kept."""
    protected = {
        data["snapshot_id"]: f"snapshot of the current run {ctx.run_id}"
        for data in ctx.outputs.values()
        if "snapshot_id" in data
    }
    result = prune_store(ctx.site.name, ctx.store, ctx.site.retention, protected=protected)
    if result.deleted or result.deleted_orphans:
        ctx.tell(
            f"retention: pruned {len(result.deleted)} old snapshot(s) and "
            f"{len(result.deleted_orphans)} orphan object(s), kept {len(result.plan.kept)}"
        )
    for problem in [*result.refused, *result.plan.warnings]:
        ctx.tell(f"retention: {problem}")
    return result.summary()
