"""The files part of a restore alone: tma-ops' reading stages into `tar -x`, against the tools.

    .venv/bin/python bench/restore_stages.py [--tree DIR] [--reps N]

Seals `tar -cf - DIR` (default: the 1 GiB site cached by snapshot_bench.py) into a part the way a
snapshot does (tma_ops.parts.upload_part: zstd, age, into a file:// store on /dev/shm) and makes
a plain tar of the same tree, then extracts into a fresh directory on /dev/shm, alternating:

- raw: `tar -xf files.tar`, the full leg's baseline in rollback_bench.py;
- tools: `age -d < part | zstd -d | tar -x`, the same work as tma-ops with the usual tools;
- tma-ops as it is: `reading_part` (SHA-256 of the stored bytes, age, zstd, SHA-256 of the plain
  bytes) handed to LocalExecutor.stream_in, as tma_ops.restore does;
- three prototypes of changes to that path: the stored bytes not hashed (each age chunk is
  authenticated already, and the plain digest is still checked), tar's stdin pipe grown to
  1 MiB (F_SETPIPE_SZ; the default 64 KiB wakes tar and Python up 16 times per chunk), and a
  Prefetching stage (tma_ops.streams) so that unsealing runs beside the writing into tar; then
  all three together.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from tma_ops.encryption import DecryptingReader
from tma_ops.executors import iter_chunks
from tma_ops.executors.local import LocalExecutor
from tma_ops.parts import Part, Sealing, reading_part, upload_part
from tma_ops.progress import SILENT
from tma_ops.stores import Store, open_store
from tma_ops.streams import HashingReader, Prefetching, Readable, decompressing

DEFAULT_TREE = Path("/tmp/tma-snapshot-bench/site-1/www")
BIG_PIPE = 1 << 20


class Setup:
    def __init__(self, scratch: Path, tree: Path) -> None:
        self.scratch = scratch
        key = scratch / "age-key.txt"
        subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
        out = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True)
        self.key = key
        self.sealing = Sealing((out.stdout.decode().strip(),), str(key))
        self.store: Store = open_store(f"file://{scratch / 'store'}")
        executor = LocalExecutor()
        tar = ["tar", "-C", str(tree), "-cf", "-", "."]
        self.part: Part = upload_part(
            self.store,
            "files.tar.zst.age",
            lambda: executor.stream_out(tar),
            sealing=self.sealing,
            progress=SILENT,
            total=None,
        )
        self.tar = scratch / "files.tar"
        subprocess.run([*tar[:3], "-cf", str(self.tar), "."], check=True)

    def target(self) -> str:
        """A fresh, empty directory to extract into, with no dirty pages pending."""
        target = self.scratch / "extracted"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        os.sync()
        return str(target)


def into_tar(target: str, source: Readable, pipe_size: int | None = None) -> None:
    tar = subprocess.Popen(["tar", "-C", target, "-xpf", "-"], stdin=subprocess.PIPE)
    assert tar.stdin is not None
    if pipe_size:
        fcntl.fcntl(tar.stdin.fileno(), fcntl.F_SETPIPE_SZ, pipe_size)
    for chunk in iter_chunks(source):
        tar.stdin.write(chunk)
    tar.stdin.close()
    if tar.wait() != 0:
        raise RuntimeError(f"tar exited {tar.returncode}")


def prototype(
    setup: Setup, *, hash_stored: bool = True, ahead: bool = False, pipe: int | None = None
) -> None:
    part, target = setup.part, setup.target()
    identities = setup.sealing.identities(part.key)
    with setup.store.get(part.key) as stream:
        stored = HashingReader(stream) if hash_stored else stream
        plain = HashingReader(decompressing(DecryptingReader(stored, identities, part.key)))
        if ahead:
            with closing(Prefetching(plain)) as prefetched:
                into_tar(target, prefetched, pipe)
        else:
            into_tar(target, plain, pipe)
    if plain.sha256 != part.plain_sha256:
        raise RuntimeError("the plain bytes' digest does not match the part's")


def cases(setup: Setup) -> dict[str, Callable[[], None]]:
    stored = setup.scratch / "store" / setup.part.key

    def raw() -> None:
        subprocess.run(["tar", "-xf", str(setup.tar), "-C", setup.target()], check=True)

    def tools() -> None:
        script = 'age -d -i "$1" < "$2" | zstd -dq | tar -xf - -C "$3"'
        argv = ["bash", "-c", f"set -o pipefail; {script}", "sh", str(setup.key), str(stored)]
        subprocess.run([*argv, setup.target()], check=True)

    def as_it_is() -> None:
        target = setup.target()
        with reading_part(setup.store, setup.part, setup.sealing, SILENT, "files") as plain:
            LocalExecutor().stream_in(["tar", "-C", target, "-xpf", "-"], plain)

    return {
        "raw: tar -xf files.tar": raw,
        "age -d | zstd -d | tar -x": tools,
        "tma-ops as it is": as_it_is,
        "  stored bytes not hashed": lambda: prototype(setup, hash_stored=False),
        "  1 MiB pipe into tar": lambda: prototype(setup, pipe=BIG_PIPE),
        "  1 MiB pipe + Prefetching": lambda: prototype(setup, ahead=True, pipe=BIG_PIPE),
        "  all three": lambda: prototype(setup, hash_stored=False, ahead=True, pipe=BIG_PIPE),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=DEFAULT_TREE, help="tree to archive")
    parser.add_argument("--reps", type=int, default=5, help="rounds (medians; default 5)")
    parser.add_argument("--scratch", type=Path, default=Path("/dev/shm"), help="scratch space")
    args = parser.parse_args()
    if not args.tree.is_dir():
        parser.error(f"{args.tree} is not a directory: run snapshot_bench.py once, or --tree")
    scratch = args.scratch / f"tma-restore-stages-{os.getpid()}"
    scratch.mkdir(parents=True)
    try:
        setup = Setup(scratch, args.tree)
        runs = cases(setup)
        times: dict[str, list[float]] = {name: [] for name in runs}
        print(f"tree {args.tree}; load average at start {os.getloadavg()[0]:.2f}")
        for number in range(args.reps):
            order = list(runs) if number % 2 == 0 else list(runs)[::-1]
            for name in order:
                start = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - start)
        base = statistics.median(times["raw: tar -xf files.tar"])
        print(f"files part, {args.reps} reps, {setup.part.plain_size / 1e6:,.0f} MB   wall   ratio")
        for name, values in times.items():
            wall = statistics.median(values)
            print(f"{name:<34} {wall:6.2f}s  {wall / base:5.2f}x")
        print(f"load average at end {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
