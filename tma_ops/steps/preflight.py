"""Preflight: every environment reachable, its root and database present, enough disk, store up."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

from tma_ops.config import Site
from tma_ops.dbs import database_of
from tma_ops.errors import TmaError
from tma_ops.executors import Executor, open_executor
from tma_ops.snapshot import snapshots_prefix, tree_size
from tma_ops.steps import RunContext

# A restore stages a full copy of the root beside it before swapping, so the disk must hold
# the tree a second time, with some room to spare. Exact, so no byte is lost to float rounding.
DISK_HEADROOM = Fraction(6, 5)


def disk_shortfall(free_bytes: int, tree_bytes: int) -> int:
    """Bytes missing to stage one more copy of the tree (0 when there is room)."""
    needed = math.ceil(tree_bytes * DISK_HEADROOM)
    return max(0, needed - free_bytes)


def check_environment(site: Site, env_name: str) -> dict[str, Any]:
    env = site.environment(env_name)
    executor = open_executor(env.executor)
    executor.run(["true"], timeout=30)
    where = f"{site.name}/{env_name}"
    if not executor.exists(env.root):
        raise TmaError(f"{where}: code root {env.root} does not exist")
    database, db_executor = database_of(env)
    database.check(db_executor)
    tree = tree_size(executor, env.root) or 0
    free = _free_bytes(executor, str(Path(env.root).parent))
    missing = disk_shortfall(free, tree)
    if missing:
        raise TmaError(
            f"{where}: not enough disk beside {env.root}: {free} bytes free, "
            f"{missing} more needed to stage a restore"
        )
    return {"tree_bytes": tree, "free_bytes": free}


def preflight(ctx: RunContext) -> dict[str, Any]:
    site = ctx.site
    data = {name: check_environment(site, name) for name in ("production", "staging")}
    channel = getattr(site.stack, "channel", None)
    if channel is not None and not Path(channel).is_dir():
        raise TmaError(f"{site.name}: update channel {channel} is not a directory")
    ctx.store.list(snapshots_prefix(site.name))
    ctx.tell("preflight ok: production and staging reachable, disk and store ok")
    return data


def _free_bytes(executor: Executor, path: str) -> int:
    lines = executor.run(["df", "-Pk", path]).out.strip().splitlines()
    return int(lines[-1].split()[3]) * 1024
