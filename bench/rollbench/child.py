"""One full tma-ops rollback (files + database from a snapshot) in a process of its own.

    python bench/rollbench/child.py INVENTORY SITE ENV SNAPSHOT_ID

The plan is what `tma-ops rollback SITE --to SNAPSHOT_ID` makes (choose_rollback from the
environment's releases and the store's snapshots: restore the code and the database), carried
out by `carry_out`. Prints one JSON line: the wall time of planning and of carry_out, and where
carry_out's time went, from the progress hooks (the staging of both parts: reading, decrypting,
decompressing, handing to the database's staging file and to `tar -x`, side by side, the load of
the dump beside the live database included) and from timers wrapped around each part's staging
(tma_ops.restore's _stage_database, which includes the load aside, and _stage_files), the load
aside (MysqlEngine.load_aside, when the tree has it), the database commit (MysqlEngine.commit:
the swap after a load aside, else the load itself), the tree swap and the data-loss estimate.
The wrappers only time; they change nothing. With TMA_BENCH_PROFILE=FILE, carry_out runs under
cProfile and the stats go to FILE.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: snapbench

from snapbench.child import TimingProgress, peak_rss

import tma_ops.restore
import tma_ops.rollback
from tma_ops.config import load_inventory
from tma_ops.dbs.mysql import MysqlEngine
from tma_ops.executors.local import LocalExecutor
from tma_ops.restore import SWAP_SCRIPT
from tma_ops.rollback import carry_out, choose_rollback, release_tree
from tma_ops.rollback_plan import plan_rollback
from tma_ops.snapshot import list_snapshots
from tma_ops.stores import open_store


class Timers:
    """Seconds spent in wrapped functions, summed per label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(
        self, owner: Any, name: str, label: str, when: Callable[..., bool] | None = None
    ) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if when is not None and not when(*args, **kwargs):
                return original(*args, **kwargs)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start

        setattr(owner, name, timed)


def record_database_path(paths: list[str]) -> None:
    """Append "shadow" or "live" to `paths` at each load_aside: whether the dump was loaded
    beside the live database, or left for the commit to load into it."""
    original = MysqlEngine.load_aside

    def load_aside(engine: MysqlEngine, executor: Any, token: str) -> str:
        loaded = original(engine, executor, token)
        paths.append("shadow" if loaded != token else "live")
        return loaded

    MysqlEngine.load_aside = load_aside  # type: ignore[method-assign,assignment]


def is_swap(_executor: object, argv: list[str], *_args: Any, **_kwargs: Any) -> bool:
    return argv[:3] == ["sh", "-c", SWAP_SCRIPT]


def main() -> None:
    inventory_path, site_name, env_name, snapshot_id = sys.argv[1:5]
    timers = Timers()
    timers.wrap(MysqlEngine, "commit", "db_commit")
    database_paths: list[str] = []
    if hasattr(MysqlEngine, "load_aside"):  # an --against-tree copy may predate it
        record_database_path(database_paths)
        timers.wrap(MysqlEngine, "load_aside", "db_aside")
    timers.wrap(LocalExecutor, "run", "swap", when=is_swap)
    timers.wrap(tma_ops.rollback, "estimate_data_loss", "data_loss")
    timers.wrap(tma_ops.restore, "_stage_database", "db_stage")
    timers.wrap(tma_ops.restore, "_stage_files", "files_stage")
    site = load_inventory(Path(inventory_path)).site(site_name)
    store = open_store(site.store, Path(inventory_path).parent)
    progress = TimingProgress()
    start = time.perf_counter()
    tree = release_tree(site.environment(env_name))
    releases = tree.releases() if tree is not None and tree.exists() else []
    manifests = list_snapshots(store, site.name)
    plan = plan_rollback(choose_rollback(releases, manifests, env_name, snapshot_id))
    planned = time.perf_counter()
    if (plan.code, plan.database) != ("restore", "restore"):
        raise SystemExit(f"expected a plan restoring files and database, got {plan.describe()}")

    def roll_back() -> Any:
        return carry_out(site, env_name, store, plan, progress=progress, say=lambda _line: None)

    profile_to = os.environ.get("TMA_BENCH_PROFILE")
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        done = profiler.runcall(roll_back)
        profiler.dump_stats(profile_to)
    else:
        done = roll_back()
    finished = time.perf_counter()
    report = {
        "planning": planned - start,
        "seconds": finished - planned,
        "reported": done.seconds,
        "plan": plan.describe(),
        "data_loss": done.data_loss,
        "transfers": progress.seconds,
        "timers": dict(timers.seconds),
        "database_paths": database_paths,
        "self_max_rss": peak_rss(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
