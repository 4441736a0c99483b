"""age decryption whatever the shape of the reads: chunks split between the source's reads, small
and large reads on both sides, damage in a split chunk; and a reader stopped from outside."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
from pyrage import x25519

from tma_ops.encryption import (
    ENCRYPTED_CHUNK,
    PAYLOAD_CHUNK,
    DecryptingReader,
    EncryptingReader,
    read_identities,
)
from tma_ops.errors import IntegrityError
from tma_ops.streams import ReadingStopped, Stoppable, drain

pytestmark = pytest.mark.unit


class Pieces(io.RawIOBase):
    """A source that returns at most `piece` bytes per read, as a network stream may."""

    def __init__(self, data: bytes, piece: int) -> None:
        self._data, self._piece, self._at = data, piece, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        count = min(self._piece, size if size > 0 else self._piece)
        data = self._data[self._at : self._at + count]
        self._at += len(data)
        return data


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    identity = x25519.Identity.generate()
    key_file = tmp_path_factory.mktemp("age") / "key.txt"
    key_file.write_text(f"{identity}\n")
    return str(identity.to_public()), key_file


def sealed(data: bytes, recipient: str) -> bytes:
    reader = EncryptingReader(io.BytesIO(data), [recipient])
    return b"".join(iter(lambda: reader.read(1 << 20), b""))


def opened(sealed_bytes: bytes, key_file: Path, piece: int, read_size: int) -> bytes:
    reader = DecryptingReader(Pieces(sealed_bytes, piece), read_identities(key_file), "part")
    out = bytearray()
    while chunk := reader.read(read_size):
        assert len(chunk) <= read_size
        out += chunk
    assert reader.read(read_size) == b""  # stays at its end
    return bytes(out)


PIECES = [1_000, ENCRYPTED_CHUNK - 1, ENCRYPTED_CHUNK, ENCRYPTED_CHUNK + 1, 1 << 20]
SIZES = [0, 1, PAYLOAD_CHUNK, 2 * PAYLOAD_CHUNK, 3 * PAYLOAD_CHUNK + 17, 1 << 21]


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize("size", SIZES)
def test_every_split_of_the_source_gives_back_the_plain_bytes(
    piece: int, size: int, keys: tuple[str, Path]
) -> None:
    recipient, key_file = keys
    data = os.urandom(size)
    assert opened(sealed(data, recipient), key_file, piece, 1 << 20) == data


@pytest.mark.parametrize("read_size", [1, 4_097, PAYLOAD_CHUNK + 1])
def test_small_reads_get_every_byte_in_order(read_size: int, keys: tuple[str, Path]) -> None:
    recipient, key_file = keys
    data = os.urandom(PAYLOAD_CHUNK + 100) if read_size > 1 else os.urandom(5_000)
    assert opened(sealed(data, recipient), key_file, ENCRYPTED_CHUNK - 7, read_size) == data


def test_damage_in_a_chunk_split_between_reads_names_the_chunk(keys: tuple[str, Path]) -> None:
    recipient, key_file = keys
    whole = bytearray(sealed(os.urandom(4 * PAYLOAD_CHUNK), recipient))
    payload_start = len(whole) - 4 * ENCRYPTED_CHUNK
    whole[payload_start + ENCRYPTED_CHUNK + 10] ^= 1  # in chunk 1
    with pytest.raises(IntegrityError, match=r"^part: .*damaged payload chunk 1$"):
        opened(bytes(whole), key_file, ENCRYPTED_CHUNK // 3, 1 << 20)


def test_a_payload_cut_at_a_chunk_boundary_is_caught(keys: tuple[str, Path]) -> None:
    recipient, key_file = keys
    whole = sealed(os.urandom(3 * PAYLOAD_CHUNK), recipient)
    with pytest.raises(IntegrityError, match=r"truncated or damaged payload chunk 1"):
        opened(whole[:-ENCRYPTED_CHUNK], key_file, 5_000, 1 << 20)


def test_a_stoppable_reader_passes_bytes_until_stopped() -> None:
    stop = threading.Event()
    reader = Stoppable(io.BytesIO(b"x" * 10), stop)
    assert reader.read(4) == b"xxxx"
    stop.set()
    with pytest.raises(ReadingStopped):
        reader.read(4)
    with pytest.raises(ReadingStopped):
        drain(reader)
