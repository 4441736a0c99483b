"""The files part's in-process pipeline in isolation: tma-ops' stages as they are, the same stages
with two proposed changes, and the shell pipeline, side by side; then zstd settings' memory.

    .venv/bin/python bench/pipeline_stages.py [--tree DIR] [--reps 5]

Each round streams `tar -cf - DIR` (default: the 1 GiB site cached by snapshot_bench.py) through
- raw:        tar | zstd -1 | age -r KEY > file
- tma-ops:    tma_ops.parts' stages, SHA-256 -> zstd 3 -> age (EncryptingReader) -> SHA-256,
              into a FileStore, all under /dev/shm
- framing:    the same, with FastEncryptingReader below (the same age bytes, fewer copies)
- + hashing:  and with both SHA-256 computed in helper threads (hashlib releases the GIL)
FastEncryptingReader and BackgroundHashingReader are prototypes of changes to tma_ops, here only
to measure them; the script checks that `age -d` decrypts the prototype's output.

The memory part runs the tree through tma_ops.parts.upload_part once per zstd setting (threads,
job size), each in a fresh process, and prints its peak RSS; the last line streams four copies of
the tree in one part, to show that the peak does not grow with the size.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import os
import queue
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tma_ops import encryption
from tma_ops.encryption import EncryptingReader
from tma_ops.streams import CHUNK, HashingReader, Readable, compressing

SINK = Path("/dev/shm/tma-pipeline-stages")
DEFAULT_TREE = Path("/tmp/tma-snapshot-bench/site-1/www")


class FastEncryptingReader(io.RawIOBase):
    """EncryptingReader's age output, sealing 64 KiB views of each read and handing out whole
    sealed chunks joined once (the current class appends to and slices bytearrays instead)."""

    def __init__(self, source: Readable, recipients: list[str]) -> None:
        file_key, nonce = os.urandom(16), os.urandom(encryption.NONCE_SIZE)
        keys = [encryption.recipient_key(r) for r in recipients]
        self._out = collections.deque([encryption._header(file_key, keys) + nonce])
        self._aead = ChaCha20Poly1305(encryption._hkdf(file_key, nonce, b"payload"))
        self._source, self._held, self._counter, self._done = source, b"", 0, False
        self._ready = len(self._out[0])

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = size if size and size > 0 else CHUNK
        while not self._done and self._ready < want:
            self._seal_more()
        pieces, got = [], 0
        while self._out and got < want:
            piece = self._out.popleft()
            if got + len(piece) > want:
                if pieces:
                    self._out.appendleft(piece)
                    break
                self._out.appendleft(piece[want:])
                piece = piece[:want]
            pieces.append(piece)
            got += len(piece)
        self._ready -= got
        return b"".join(pieces)

    def _seal_more(self) -> None:
        data = self._source.read(CHUNK)
        if not data:
            self._seal(memoryview(self._held), last=True)
            self._done = True
            return
        buffer = self._held + data if self._held else data
        view, whole = memoryview(buffer), (len(buffer) - 1) // encryption.PAYLOAD_CHUNK
        for index in range(whole):
            start = index * encryption.PAYLOAD_CHUNK
            self._seal(view[start : start + encryption.PAYLOAD_CHUNK], last=False)
        self._held = bytes(view[whole * encryption.PAYLOAD_CHUNK :])

    def _seal(self, chunk: memoryview, *, last: bool) -> None:
        sealed = self._aead.encrypt(encryption._chunk_nonce(self._counter, last), chunk, None)
        self._out.append(sealed)
        self._ready += len(sealed)
        self._counter += 1


class BackgroundHashingReader(io.RawIOBase):
    """HashingReader whose SHA-256 runs in a helper thread; chunks are shared, not copied."""

    def __init__(self, source: Readable) -> None:
        self._source, self.size = source, 0
        self._hash, self._queue = hashlib.sha256(), queue.Queue[bytes | None](8)
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (data := self._queue.get()) is not None:
            self._hash.update(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._source.read(size if size and size > 0 else CHUNK)
        self._queue.put(data if data else None)
        self.size += len(data)
        return data

    @property
    def sha256(self) -> str:
        self._thread.join()
        return self._hash.hexdigest()


Build = Callable[[Readable, str], Readable]
VARIANTS: dict[str, Build] = {
    "tma-ops as it is": lambda src, key: HashingReader(
        EncryptingReader(compressing(HashingReader(src)), [key])
    ),
    "  with faster age framing": lambda src, key: HashingReader(
        FastEncryptingReader(compressing(HashingReader(src)), [key])
    ),
    "  and hashes in threads": lambda src, key: BackgroundHashingReader(
        FastEncryptingReader(compressing(BackgroundHashingReader(src)), [key])
    ),
}


def cpu_seconds() -> float:
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(work: Callable[[], object]) -> tuple[float, float]:
    cpu, start = cpu_seconds(), time.perf_counter()
    work()
    return time.perf_counter() - start, cpu_seconds() - cpu


def run_raw(tree: Path, recipient: str) -> None:
    out = SINK / "raw.tar.zst.age"
    pipeline = f"tar -C '{tree}' -cf - . | zstd -q -1 | age -r {recipient} > '{out}'"
    subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], check=True)
    out.unlink()


def run_variant(tree: Path, recipient: str, build: Build) -> None:
    tar = subprocess.Popen(["tar", "-C", str(tree), "-cf", "-", "."], stdout=subprocess.PIPE)
    assert tar.stdout is not None
    with open(SINK / "part", "wb") as out:
        stream = build(tar.stdout, recipient)
        while data := stream.read(CHUNK):
            out.write(data)
    if tar.wait() != 0:
        raise RuntimeError("tar failed")


def check_prototype(tree: Path, key_file: Path, recipient: str) -> None:
    """The prototype's output must be an age file that `age -d` turns back into the stream."""
    sample = next(p for p in sorted(tree.rglob("*")) if p.is_file() and p.stat().st_size > 200_000)
    plain = sample.read_bytes()
    sealed = FastEncryptingReader(io.BytesIO(plain), [recipient]).read(len(plain) * 2)
    back = subprocess.run(["age", "-d", "-i", str(key_file)], input=sealed, capture_output=True)
    if back.stdout != plain:
        raise SystemExit(f"FastEncryptingReader's output does not decrypt: {back.stderr!r}")


def speed(tree: Path, reps: int, key_file: Path, recipient: str) -> None:
    check_prototype(tree, key_file, recipient)
    runs: dict[str, list[tuple[float, float]]] = {"raw: tar | zstd -1 | age": []}
    runs |= {name: [] for name in VARIANTS}
    for _ in range(reps):
        runs["raw: tar | zstd -1 | age"].append(timed(lambda: run_raw(tree, recipient)))
        for name, build in VARIANTS.items():
            runs[name].append(timed(lambda b=build: run_variant(tree, recipient, b)))  # type: ignore[misc]
    raw = statistics.median(wall for wall, _ in runs["raw: tar | zstd -1 | age"])
    print(f"{'files part, ' + str(reps) + ' reps':32} {'wall':>8} {'ratio':>7} {'CPU':>8}")
    for name, values in runs.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        print(f"{name:32} {wall:7.2f}s {wall / raw:6.2f}x {cpu:7.2f}s")


def memory_child(tree: Path, recipient: str, threads: int, job_size: int, copies: int) -> None:
    """One part through tma_ops.parts.upload_part with these zstd settings; print peak RSS."""
    from contextlib import contextmanager

    from tma_ops import parts
    from tma_ops.progress import SILENT

    def compressing_with(plain: Any, level: int = 3) -> Any:
        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=threads, job_size=job_size
        )
        compressor = zstandard.ZstdCompressor(compression_params=params)
        return compressor.stream_reader(plain, read_size=CHUNK)

    parts.compressing = compressing_with  # type: ignore[assignment]

    class NullStore:
        url = "null://"

        def put(self, key: str, source: Readable) -> int:
            total = 0
            while data := source.read(CHUNK):
                total += len(data)
            return total

    @contextmanager
    def tar() -> Any:
        script = f'for i in $(seq {copies}); do tar -C "$0" -cf - .; done'
        process = subprocess.Popen(["sh", "-c", script, str(tree)], stdout=subprocess.PIPE)
        yield process.stdout
        process.wait()

    start = time.perf_counter()
    sealing = parts.Sealing((recipient,))
    parts.upload_part(
        NullStore(), "p/files.tar.zst.age", tar, sealing=sealing, progress=SILENT, total=None
    )  # type: ignore[arg-type]
    # VmHWM, not ru_maxrss: that one keeps the parent's high-water mark across fork and exec.
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    print(f"{peak} {time.perf_counter() - start}")


def memory(tree: Path, recipient: str) -> None:
    print(f"\n{'zstd level 3 setting':32} {'peak RSS':>9} {'wall':>8}")
    settings = [
        (0, 0, 1, "threads 0 (in the caller)"),
        (1, 0, 1, "threads 1"),
        (2, 0, 1, "threads 2 (tma-ops now)"),
        (2, 2 << 20, 1, "threads 2, job_size 2 MiB"),
        (1, 2 << 20, 1, "threads 1, job_size 2 MiB"),
        (2, 0, 4, "threads 2, 4 trees in one part"),
    ]
    for threads, job, copies, label in settings:
        setting = f"{threads},{job},{copies}"
        argv = [sys.executable, __file__, "--tree", str(tree), "--memory-child", setting]
        argv += ["--recipient", recipient]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.split()
        print(f"{label:32} {int(out[0]) / 1e6:7.0f} MB {float(out[1]):7.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=DEFAULT_TREE, help=f"default {DEFAULT_TREE}")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--recipient", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        threads, job, copies = (int(value) for value in args.memory_child.split(","))
        memory_child(args.tree, args.recipient, threads, job, copies)
        return
    if not args.tree.is_dir():
        parser.error(f"{args.tree} is not a directory (run snapshot_bench.py once, or pass --tree)")
    shutil.rmtree(SINK, ignore_errors=True)
    SINK.mkdir(parents=True)
    try:
        key_file = SINK / "age-key.txt"
        subprocess.run(["age-keygen", "-o", str(key_file)], check=True, capture_output=True)
        recipient = subprocess.run(
            ["age-keygen", "-y", str(key_file)], check=True, capture_output=True, text=True
        ).stdout.strip()
        print(f"tree {args.tree}; load average at start {os.getloadavg()[0]:.2f}")
        speed(args.tree, args.reps, key_file, recipient)
        memory(args.tree, recipient)
        print(f"load average at end {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(SINK, ignore_errors=True)


if __name__ == "__main__":
    main()
