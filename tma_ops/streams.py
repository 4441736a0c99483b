"""Readers that hash, count and compress bytes as they flow, so that nothing is held whole."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from typing import BinaryIO, Protocol

import zstandard

CHUNK = 1 << 20
# Each zstd worker keeps tens of MiB of buffers: a few workers give the speed, not one per core.
COMPRESSION_THREADS = min(4, os.cpu_count() or 1)


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
    compressor = zstandard.ZstdCompressor(level=level, threads=COMPRESSION_THREADS)
    return compressor.stream_reader(plain, read_size=CHUNK)  # type: ignore[arg-type]


def decompressing(stored: Readable) -> BinaryIO:
    return zstandard.ZstdDecompressor().stream_reader(
        stored,  # type: ignore[arg-type]
        read_size=CHUNK,
        read_across_frames=True,
    )
