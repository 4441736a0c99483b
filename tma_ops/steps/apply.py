"""Steps that change code: plan the updates, apply them on staging, promote the same plan."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tma_ops.ansible import PlaybookContext
from tma_ops.config import Site
from tma_ops.stacks import Update
from tma_ops.stacks.registry import driver_for
from tma_ops.steps import RunContext
from tma_ops.updates import select_updates


def compute_plan(site: Site, env_name: str) -> tuple[list[Update], list[tuple[Update, str]]]:
    """Updates available for the components installed on env, split by the site's policy."""
    env = site.environment(env_name)
    stack = driver_for(site.stack)
    installed = stack.inventory(env)
    return select_updates(stack.available(env, installed), site.updates)


def plan_updates(ctx: RunContext) -> dict[str, Any]:
    selected, held = compute_plan(ctx.site, "staging")
    for update in selected:
        ctx.tell(f"plan: {update.describe()}")
    for update, reason in held:
        ctx.tell(f"held back: {update.describe()}: {reason}")
    if not selected:
        ctx.tell("nothing to update")
    return {
        "updates": [asdict(u) for u in selected],
        "held": [{**asdict(u), "reason": reason} for u, reason in held],
    }


def planned_updates(ctx: RunContext) -> list[Update]:
    return [Update(**item) for item in ctx.outputs["plan"]["updates"]]


def apply_on_staging(ctx: RunContext) -> dict[str, Any]:
    return _apply_plan(ctx, "staging")


def promote_to_production(ctx: RunContext) -> dict[str, Any]:
    return _apply_plan(ctx, "production")


def _apply_plan(ctx: RunContext, env_name: str) -> dict[str, Any]:
    env = ctx.site.environment(env_name)
    playbooks = PlaybookContext(
        journal=ctx.journal,
        run_id=ctx.run_id,
        site=ctx.site.name,
        step="apply_staging" if env_name == "staging" else "promote",
        secrets=tuple(ctx.site.secrets()),
        pause_label=f"apply-{env_name}",
    )
    updates = planned_updates(ctx)
    applied = driver_for(ctx.site.stack).apply(env, updates, playbooks)
    for update in updates:
        ctx.tell(f"{env_name}: applied {update.describe()}")
    return {
        "applied": [u.component for u in updates],
        "changes": [asdict(c) for c in applied.changes],
        "migrations": applied.migrations,
    }
