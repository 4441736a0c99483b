"""One tma-ops snapshot through the library API, in a process of its own; prints one JSON line.

    python bench/snapbench/child.py INVENTORY SITE ENV

Run as a child of the benchmark so that its peak RSS is its own: VmHWM of /proc/self/status
(not getrusage's ru_maxrss, which on Linux keeps the parent's high-water mark across fork and
exec). The JSON holds the wall time of create_snapshot(), the time of each part's upload (from
the progress hooks), the manifest's parts and level. With TMA_BENCH_PROFILE=FILE the snapshot
runs under cProfile and the stats are written to FILE.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tma_ops.config import load_inventory
from tma_ops.progress import TransferProgress
from tma_ops.snapshot import create_snapshot
from tma_ops.stores import open_store


class TimingProgress(TransferProgress):
    """Records how long each transfer (one part's upload) takes; shows nothing."""

    def __init__(self) -> None:
        super().__init__(enabled=False)
        self.seconds: dict[str, float] = {}

    @contextmanager
    def transfer(
        self, description: str, total: int | None = None
    ) -> Iterator[Callable[[int], None]]:
        start = time.perf_counter()
        yield lambda _count: None
        self.seconds[description] = time.perf_counter() - start


def peak_rss() -> int:
    """This process's own peak resident memory, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    inventory_path, site_name, env_name = sys.argv[1:4]
    site = load_inventory(Path(inventory_path)).site(site_name)
    store = open_store(site.store, Path(inventory_path).parent)
    progress = TimingProgress()
    profile_to = os.environ.get("TMA_BENCH_PROFILE")
    start = time.perf_counter()
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        manifest = profiler.runcall(
            create_snapshot, site, env_name, store, reason="bench", progress=progress
        )
        profiler.dump_stats(profile_to)
    else:
        manifest = create_snapshot(site, env_name, store, reason="bench", progress=progress)
    seconds = time.perf_counter() - start
    # Bytes sent: a part's objects stored by this snapshot (dump chunks named from the parent
    # were not sent again).
    own = {stored.key for stored in manifest.own_objects()}
    parts = {
        name: {
            "key": part.key,
            "size": sum(o.size for o in part.objects() if o.key in own),
            "plain_size": part.plain_size,
        }
        for name, part in manifest.parts.items()
    }
    report = {
        "snapshot_id": manifest.snapshot_id,
        "level": manifest.level,
        "seconds": seconds,
        "parts": parts,
        "part_seconds": progress.seconds,
        "self_max_rss": peak_rss(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
