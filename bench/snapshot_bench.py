"""Snapshot pipeline against the plain shell pipeline it stands for, side by side.

    .venv/bin/python bench/snapshot_bench.py [--mib 512] [--runs 3]

Builds a demo workspace, grows blog's production tree to about --mib MiB (half random, half
text), then times, in alternation, `tar -cf - . | zstd -3 -T0 > file` (the baseline) and
`tma-ops snapshot blog` (DB + files, hashing, store, then a full read-back verify). Prints the
medians, the time ratio and the peak resident memory of each, as ratios: no absolute threshold.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tma_ops.demo.run import demo_inventory_template
from tma_ops.demo.workspace import build_workspace


def grow_tree(root: Path, mib: int) -> None:
    data = root / "uploads" / "bench"
    data.mkdir(parents=True, exist_ok=True)
    text = b"Lorem ipsum dolor sit amet, vitrail et verre d'art. " * 20_000
    for index in range(mib // 8):
        payload = os.urandom(4 << 20) + text[: 4 << 20]
        (data / f"file-{index:04d}.bin").write_bytes(payload)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall time and peak RSS (KiB, the process and the children it waited for)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with {process.returncode}")
    return elapsed, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tma-bench-") as scratch:
        workspace = Path(scratch) / "ws"
        inventory = build_workspace(workspace, demo_inventory_template())
        root = workspace / "sites" / "blog" / "production" / "www"
        grow_tree(root, args.mib)
        env = {**os.environ, "TMA_DEMO_PORT": "1"}
        out = Path(scratch) / "baseline.tar.zst"
        baseline = ["sh", "-c", f'tar -C "{root}" -cf - . | zstd -q -3 -T0 -f -o "{out}"']
        ours = [sys.executable, "-m", "tma_ops", "-i", str(inventory), "snapshot", "blog"]
        results: dict[str, list[tuple[float, int]]] = {"baseline": [], "tma-ops": []}
        for _ in range(args.runs):
            results["baseline"].append(timed(baseline, env))
            results["tma-ops"].append(timed(ours, env))
            shutil.rmtree(workspace / "store", ignore_errors=True)
        report(results, args.mib)


def report(results: dict[str, list[tuple[float, int]]], mib: int) -> None:
    medians = {
        name: (statistics.median(t for t, _ in runs), max(r for _, r in runs))
        for name, runs in results.items()
    }
    for name, (seconds, rss) in medians.items():
        print(
            f"{name:<9} median {seconds:6.2f} s  {mib / seconds:7.1f} MiB/s  "
            f"peak RSS {rss / 1024:6.1f} MiB"
        )
    base_t, base_rss = medians["baseline"]
    ours_t, ours_rss = medians["tma-ops"]
    print(
        f"ratio tma-ops/baseline: time {ours_t / base_t:.2f}x, peak RSS {ours_rss / base_rss:.2f}x"
        f" (tma-ops also reads the snapshot back to verify it)"
    )


if __name__ == "__main__":
    main()
