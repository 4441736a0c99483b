"""Prefetching: a source read in a thread of its own, its bytes, its failures and its end."""

from __future__ import annotations

import io
import threading

import pytest

from tma_ops.streams import CHUNK, Prefetching

pytestmark = pytest.mark.unit


class Endless(io.RawIOBase):
    def __init__(self) -> None:
        self.reads = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        return b"x" * CHUNK


class Breaking(io.RawIOBase):
    def __init__(self, good: int) -> None:
        self.good = good

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.good == 0:
            raise RuntimeError("tar died")
        self.good -= 1
        return b"y" * 1000


@pytest.mark.parametrize("read_size", [1, 999, CHUNK, 3 * CHUNK])
def test_passes_every_byte_in_order(read_size: int) -> None:
    data = bytes(range(256)) * (40 if read_size == 1 else 20_000)
    reader = Prefetching(io.BytesIO(data))
    out = bytearray()
    while chunk := reader.read(read_size):
        assert len(chunk) <= read_size
        out += chunk
    assert bytes(out) == data
    assert reader.read(10) == b""


def test_a_failing_source_raises_in_the_consumer_after_its_good_bytes() -> None:
    reader = Prefetching(Breaking(good=3))
    assert reader.read(10_000) == b"y" * 1000
    assert reader.read(10_000) == b"y" * 1000
    assert reader.read(10_000) == b"y" * 1000
    with pytest.raises(RuntimeError, match="tar died"):
        reader.read(10_000)


def test_reads_only_a_few_chunks_ahead_and_close_stops_the_thread() -> None:
    source = Endless()
    reader = Prefetching(source, depth=2)
    reader.read(10)
    threads = threading.active_count()
    reader.close()
    assert source.reads <= 2 + 3  # the queue, one being handed over, one read back
    assert threading.active_count() == threads - 1
