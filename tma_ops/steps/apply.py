"""Steps that change code: plan the updates, apply them on staging, promote the same plan."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tma_ops.ansible import PlaybookContext
from tma_ops.errors import StackError
from tma_ops.faults import pause_point
from tma_ops.policy import promotable
from tma_ops.releases import ReleaseTree
from tma_ops.rollback import release_tree, reload_after_switch, set_maintenance
from tma_ops.stacks import Applied, Update
from tma_ops.stacks.registry import driver_for
from tma_ops.steps import RunContext
from tma_ops.steps.smoke import baseline_of


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
    """Apply `updates` (in plan order) on the environment through the site's stack driver.

    The checks' baseline is taken first: the smoke test after compares with it. Where the code
    is kept as releases, the updates go into a new release, switched to once they are in.
    """
    env = ctx.site.environment(env_name)
    baseline = baseline_of(ctx, env_name, step)
    playbooks = PlaybookContext(
        journal=ctx.journal,
        run_id=ctx.run_id,
        site=ctx.site.name,
        step=step,
        secrets=tuple(ctx.site.secrets()),
        pause_label=f"apply-{env_name}",
    )
    driver = driver_for(ctx.site.stack)
    release = None
    if env.releases is None:
        applied = driver.apply(env, updates, playbooks)
    else:
        release, applied = apply_in_release(ctx, env_name, updates, playbooks)
    for update in updates:
        ctx.tell(f"{env_name}: applied {update.describe()}")
    return {
        "applied": [u.component for u in updates],
        "changes": [asdict(c) for c in applied.changes],
        "migrations": applied.migrations,
        "baseline": baseline,
        "release": release,
    }


def apply_in_release(
    ctx: RunContext, env_name: str, updates: list[Update], playbooks: PlaybookContext
) -> tuple[str, Applied]:
    """A new release (id: the run's) copied from the current one, updated, then switched to.

    The site is in maintenance while a promotion that changes the database runs: staging's
    apply said whether the plan runs migrations.
    """
    env = ctx.site.environment(env_name)
    tree = release_tree(env)
    assert tree is not None and env.releases is not None
    if not tree.exists():
        raise StackError(
            f"{ctx.site.name}/{env_name}: releases are declared but {env.root}/current is "
            f"not a release: run `tma-ops releases adopt {ctx.site.name} --env {env_name}`"
        )
    previous = tree.current_id()
    release_id = _new_release_id(tree, ctx.run_id)
    snapshot_step = "pre_promotion_snapshot" if env_name == "production" else "snapshot"
    path = tree.prepare(
        release_id,
        run_id=ctx.run_id,
        snapshot_id=ctx.outputs.get(snapshot_step, {}).get("snapshot_id"),
        previous=previous,
    )
    ctx.tell(f"{env_name}: release {release_id} prepared from {previous}")
    staged_migrations = ctx.outputs.get("apply_staging", {}).get("migrations")
    maintenance = env_name == "production" and bool(staged_migrations)
    pages = [r for r in (previous, release_id) if r]
    if maintenance:
        set_maintenance(tree, env, pages, on=True)
        ctx.tell(f"{env_name}: maintenance mode on (the update migrates the database)")
    try:
        applied = driver_for(ctx.site.stack).apply(env.in_tree(path), updates, playbooks)
        tree.mark(release_id, "pending", migrations=applied.migrations)
        seconds = tree.switch(release_id)
        pause_point(f"apply-{env_name}:after-switch")
        reload_after_switch(ctx.site, env)
        ctx.tell(f"{env_name}: current is now release {release_id} (switched in {seconds:.3f} s)")
    finally:
        if maintenance:
            set_maintenance(tree, env, pages, on=False)
            ctx.tell(f"{env_name}: maintenance mode off")
    return release_id, applied


def _new_release_id(tree: ReleaseTree, run_id: str) -> str:
    """The run's id; a promotion redone after a reset gets the next free `<run>_<n>` (the
    release it replaces was rolled back and stays marked bad)."""
    settled = {r.id for r in tree.releases() if r.status in ("good", "bad")}
    release_id, attempt = run_id, 1
    while release_id in settled:
        attempt += 1
        release_id = f"{run_id}_{attempt}"
    return release_id
