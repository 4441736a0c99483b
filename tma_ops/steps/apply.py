"""Steps that change code: plan the updates, apply them on staging, promote the same plan."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tma_ops.ansible import PlaybookContext
from tma_ops.policy import promotable
from tma_ops.stacks import Update
from tma_ops.stacks.registry import driver_for
from tma_ops.steps import RunContext


def planned_updates(ctx: RunContext) -> list[Update]:
    return [Update(**item) for item in ctx.outputs["plan"]["updates"]]


def apply_on_staging(ctx: RunContext) -> dict[str, Any]:
    return apply_updates(ctx, "staging", "apply_staging", planned_updates(ctx))


def promote_to_production(ctx: RunContext) -> dict[str, Any]:
    keep = set(promotable(ctx.outputs))
    updates = [u for u in planned_updates(ctx) if u.component in keep]
    return apply_updates(ctx, "production", "promote", updates)


def apply_updates(
    ctx: RunContext, env_name: str, step: str, updates: list[Update]
) -> dict[str, Any]:
    """Apply `updates` (in plan order) on the environment through the site's stack driver."""
    env = ctx.site.environment(env_name)
    playbooks = PlaybookContext(
        journal=ctx.journal,
        run_id=ctx.run_id,
        site=ctx.site.name,
        step=step,
        secrets=tuple(ctx.site.secrets()),
        pause_label=f"apply-{env_name}",
    )
    applied = driver_for(ctx.site.stack).apply(env, updates, playbooks)
    for update in updates:
        ctx.tell(f"{env_name}: applied {update.describe()}")
    return {
        "applied": [u.component for u in updates],
        "changes": [asdict(c) for c in applied.changes],
        "migrations": applied.migrations,
    }
