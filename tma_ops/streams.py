"""Readers that hash, count and compress bytes as they flow, so that nothing is held whole."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import threading
from collections.abc import Callable
from typing import BinaryIO, Protocol

import zstandard

CHUNK = 1 << 20
# Each zstd worker keeps tens of MiB of buffers: a few workers give the speed, not one per core.
COMPRESSION_THREADS = min(4, os.cpu_count() or 1)
COMPRESSION_JOB = 2 << 20


class Readable(Protocol):
    """What the seams need from a source of bytes: reads in bounded chunks, b"" at the end."""

    def read(self, size: int = -1, /) -> bytes: ...


class HashingReader(io.RawIOBase):
    """Pass-through reader that keeps the SHA-256 and the count of what went through it."""

    def __init__(self, source: Readable, on_bytes: Callable[[int], None] | None = None) -> None:
        self._source = source
        self._on_bytes = on_bytes
        self._hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size if size and size > 0 else CHUNK)
        if data:
            self._hash.update(data)
            self.size += len(data)
            if self._on_bytes is not None:
                self._on_bytes(len(data))
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read what the consumer left (tar stops before the trailing padding), for the digest."""
        while self.read(CHUNK):
            pass

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def compressing(plain: Readable, level: int = 3) -> BinaryIO:
    # zstd's default job for its workers is 8 MiB at level 3: a few MiB halve the buffers held.
    parameters = zstandard.ZstdCompressionParameters.from_level(
        level, threads=COMPRESSION_THREADS, job_size=COMPRESSION_JOB
    )
    compressor = zstandard.ZstdCompressor(compression_params=parameters)
    return compressor.stream_reader(plain, read_size=CHUNK)  # type: ignore[arg-type]


class Prefetching(io.RawIOBase):
    """Reads its source in a thread of its own, a few chunks ahead of the consumer.

    The stages before it (reading the source, hashing, compressing) and the ones after it
    (encrypting, hashing, writing) then run side by side: hashlib, zstd and the ciphers release
    the GIL. A failure of the source is raised to the consumer; close() stops the thread.
    """

    def __init__(self, source: Readable, depth: int = 4) -> None:
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._stopped = threading.Event()
        self._pending = b""
        self._offset = 0
        self._ended = False
        self._thread = threading.Thread(target=self._pump, args=(source,), daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = size if size and size > 0 else CHUNK
        if self._offset >= len(self._pending) and not self._ended:
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._ended = True
                raise item
            self._pending, self._offset = item, 0
            self._ended = not item
        start = self._offset
        self._offset = min(start + want, len(self._pending))
        if start == 0 and self._offset == len(self._pending):
            return self._pending  # the whole chunk: no copy
        return self._pending[start : self._offset]

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stopped.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.1)  # unblock a pump waiting for room
        super().close()

    def _pump(self, source: Readable) -> None:
        try:
            while not self._stopped.is_set():
                data = source.read(CHUNK)
                self._put(data)
                if not data:
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stopped.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=0.1)
                return


class ReadingStopped(Exception):
    """A reader was stopped from outside: the work it fed was abandoned, not damaged."""


class Stoppable(io.RawIOBase):
    """Pass-through reader that fails with ReadingStopped once `stop` is set.

    Two transfers running side by side use it to end each other early: when one fails, the other
    stops at its next chunk instead of running to its end for nothing.
    """

    def __init__(self, source: Readable, stop: threading.Event) -> None:
        self._source = source
        self._stop = stop

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._stop.is_set():
            raise ReadingStopped("stopped: the transfer beside this one failed")
        return self._source.read(size if size and size > 0 else CHUNK)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def drain(stream: Readable) -> None:
    """Read a stream to its end, discarding the bytes (its readers hash or count them)."""
    while stream.read(CHUNK):
        pass


def decompressing(stored: Readable) -> BinaryIO:
    return zstandard.ZstdDecompressor().stream_reader(
        stored,  # type: ignore[arg-type]
        read_size=CHUNK,
        read_across_frames=True,
    )
