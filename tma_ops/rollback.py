"""Roll an environment back as one unit: the code (a release switched back to, or the snapshot's
files) and, only when it must, the database, after estimating what visitors wrote since.

The facts come from the environment itself (its release marks) and from the store (snapshot
manifests), never from local state: an engineer on another machine can roll back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tma_ops.config import Site
from tma_ops.dbs import database_of
from tma_ops.executors import open_executor
from tma_ops.model import Environment
from tma_ops.progress import SILENT, TransferProgress
from tma_ops.releases import Release, ReleaseTree, release_before, release_order
from tma_ops.restore import restore_snapshot
from tma_ops.rollback_plan import NoRollbackTarget, RollbackFacts, RollbackPlan
from tma_ops.snapshot import Manifest, load_manifest
from tma_ops.stores import Store

PRE_PROMOTION = "pre-promotion "


@dataclass
class RollbackDone:
    plan: RollbackPlan
    data_loss: dict[str, int | None] = field(default_factory=dict)
    seconds: float = 0.0  # until code and database were back
    marked_bad: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "code": self.plan.code,
            "database": self.plan.database,
            "release": self.plan.release,
            "snapshot_id": self.plan.snapshot_id,
            "reasons": self.plan.reasons,
            "data_loss": self.data_loss,
            "seconds": round(self.seconds, 3),
            "marked_bad": self.marked_bad,
        }


def release_tree(env: Environment) -> ReleaseTree | None:
    if env.releases is None:
        return None
    return ReleaseTree(open_executor(env.executor), env.root, env.releases.shared)


def reload_after_switch(site: Site, env: Environment) -> None:
    """Run the stack's reload or restart command in the new code tree: servers that resolved
    `current` when they started (PHP's opcache, an application server) serve the new release."""
    command = getattr(site.stack, "reload", None) or getattr(site.stack, "restart", None)
    if not command:
        return
    code_root = env.code().root
    script = 'cd "$1" && eval "$2"'
    open_executor(env.executor).run(["sh", "-c", script, "reload", code_root, command])


def facts_for_release(
    releases: list[Release], undone: Release, snapshot_id: str | None
) -> RollbackFacts:
    """Undo release `undone`: back to the release before it, with the snapshot taken before it."""
    target = release_before(releases, undone.id)
    return RollbackFacts(
        has_releases=True,
        target_release=target.id if target else None,
        snapshot_id=undone.snapshot_id or snapshot_id,
        migrations_ran=_migrations_ran(undone),
    )


def _migrations_ran(release: Release) -> bool | None:
    # A release whose update never finished has no record of its migrations.
    if release.status == "pending" and not release.migrations_recorded:
        return None
    return bool(release.migrations)


def choose_rollback(
    releases: list[Release], manifests: list[Manifest], env_name: str, to: str | None
) -> RollbackFacts:
    """The facts of the rollback an operator asked for (`to`: a release, a snapshot or None for
    "undo the newest promotion"), from the environment's releases and the store's snapshots."""
    current = next((r for r in releases if r.is_current), None)
    if to is None:
        if current is not None and release_before(releases, current.id) is not None:
            return facts_for_release(releases, current, None)
        latest = latest_pre_promotion(manifests, env_name)
        return RollbackFacts(bool(releases), None, latest.snapshot_id if latest else None, None)
    named = [r for r in releases if r.id == to] or [r for r in releases if r.id.startswith(to)]
    if len(named) == 1:
        return _facts_for_named_release(releases, named[0], current)
    if len(named) > 1:
        raise NoRollbackTarget(
            f"release prefix {to!r} is ambiguous: {', '.join(r.id for r in named)}"
        )
    snapshot = _named_snapshot(manifests, to)
    return RollbackFacts(bool(releases), None, snapshot.snapshot_id, None, forced_snapshot=True)


def _facts_for_named_release(
    releases: list[Release], target: Release, current: Release | None
) -> RollbackFacts:
    if target.status == "bad":
        raise NoRollbackTarget(
            f"release {target.id} is marked bad (it was rolled back before); name another "
            "release or a snapshot"
        )
    oldest, newest = release_order(target), release_order(current) if current else None
    undone = [
        r
        for r in releases
        if oldest < release_order(r) and (newest is None or release_order(r) <= newest)
    ]
    if not undone:
        raise NoRollbackTarget(f"release {target.id} is already the current one")
    ran = [_migrations_ran(r) for r in undone]
    migrations_ran = True if any(ran) else (None if None in ran else False)
    return RollbackFacts(True, target.id, undone[0].snapshot_id, migrations_ran)


def _named_snapshot(manifests: list[Manifest], wanted: str) -> Manifest:
    if wanted == "latest" and manifests:
        return manifests[-1]
    found = [m for m in manifests if m.snapshot_id.startswith(wanted)]
    if len(found) != 1:
        problem = "matches no release or snapshot" if not found else "is ambiguous"
        raise NoRollbackTarget(
            f"--to {wanted!r} {problem}; see `tma-ops releases list` and `tma-ops snapshots list`"
        )
    return found[0]


def latest_pre_promotion(manifests: list[Manifest], env_name: str) -> Manifest | None:
    """The newest snapshot taken right before a promotion of `env_name`."""
    candidates = [
        m for m in manifests if m.environment == env_name and m.reason.startswith(PRE_PROMOTION)
    ]
    return candidates[-1] if candidates else None


def estimate_data_loss(site: Site, env_name: str, manifest: Manifest) -> dict[str, int | None]:
    """Rows written since the snapshot in the site's user-data tables (None: cannot tell)."""
    if not site.user_data:
        return {}
    engine, executor = database_of(site.environment(env_name))
    since = manifest.dumped_at or manifest.created_at
    lost: dict[str, int | None] = {}
    for table in site.user_data:
        if table.since_column:
            lost[table.table] = engine.count_rows(executor, table.table, table.since_column, since)
        elif table.table in manifest.user_data_rows:
            now = engine.count_rows(executor, table.table)
            lost[table.table] = max(0, now - manifest.user_data_rows[table.table])
        else:
            lost[table.table] = None
    return lost


def describe_data_loss(lost: dict[str, int | None]) -> str:
    if not lost:
        return "no user-data tables declared: what visitors wrote since is not estimated"
    parts = [f"{table}: {'unknown' if n is None else n}" for table, n in lost.items()]
    return "rows written since the snapshot, lost by the database restore: " + ", ".join(parts)


def carry_out(
    site: Site,
    env_name: str,
    store: Store,
    plan: RollbackPlan,
    *,
    progress: TransferProgress = SILENT,
    say: Callable[[str], None] = print,
) -> RollbackDone:
    env = site.environment(env_name)
    start = time.monotonic()
    done = RollbackDone(plan)
    manifest = None
    if plan.snapshot_id is not None:
        manifest = load_manifest(store, site.name, plan.snapshot_id)
    if plan.restores_database and manifest is not None:
        done.data_loss = estimate_data_loss(site, env_name, manifest)
        say(describe_data_loss(done.data_loss))
    if plan.code == "switch":
        done.marked_bad = _switch_back(site, env, env_name, store, plan, manifest, progress, say)
    else:
        assert manifest is not None
        restore_snapshot(
            site,
            manifest,
            env_name,
            store,
            progress=progress,
            database=plan.restores_database,
        )
        say(f"{env_name}: files restored from {manifest.snapshot_id}")
        if plan.restores_database:
            say(f"{env_name}: database restored from {manifest.snapshot_id}")
    done.seconds = time.monotonic() - start
    return done


def _switch_back(
    site: Site,
    env: Environment,
    env_name: str,
    store: Store,
    plan: RollbackPlan,
    manifest: Manifest | None,
    progress: TransferProgress,
    say: Callable[[str], None],
) -> str | None:
    tree = release_tree(env)
    assert tree is not None and env.releases is not None and plan.release is not None
    current = tree.current_id()
    maintenance = [r for r in (current, plan.release) if r]
    if plan.restores_database and manifest is not None:
        set_maintenance(tree, env, maintenance, on=True)
        restore_snapshot(site, manifest, env_name, store, progress=progress, files=False)
        say(f"{env_name}: database restored from {manifest.snapshot_id}")
    if current != plan.release:
        tree.switch(plan.release)
        reload_after_switch(site, env)
        say(f"{env_name}: code switched back to release {plan.release}")
    if current and current != plan.release:
        tree.mark(current, "bad", reason="rolled back")
    if plan.restores_database:
        set_maintenance(tree, env, maintenance, on=False)
    return current if current != plan.release else None


def set_maintenance(tree: ReleaseTree, env: Environment, releases: list[str], *, on: bool) -> None:
    """The environment's maintenance page put in (or taken out of) the given releases."""
    assert env.releases is not None
    page = env.releases
    tree.set_maintenance(releases, page.maintenance_file, page.maintenance_content, on=on)
