"""age encryption as pull-based streams: round trips, damage detection, and key parsing."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pyrage
import pytest
from pyrage import x25519

from tma_ops.encryption import (
    PAYLOAD_CHUNK,
    DecryptingReader,
    EncryptingReader,
    read_identities,
    recipient_key,
)
from tma_ops.errors import IntegrityError, InventoryError

pytestmark = pytest.mark.unit


def keypair() -> tuple[str, str]:
    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def encrypt(data: bytes, *recipients: str, read_size: int = 1 << 20) -> bytes:
    reader = EncryptingReader(io.BytesIO(data), recipients)
    out = bytearray()
    while chunk := reader.read(read_size):
        out += chunk
    return bytes(out)


def decrypt(sealed: bytes, secret: str, tmp_path: Path) -> bytes:
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"# created: now\n{secret}\n")
    reader = DecryptingReader(io.BytesIO(sealed), read_identities(key_file), "part")
    out = bytearray()
    while chunk := reader.read(1 << 20):
        out += chunk
    return bytes(out)


SIZES = [0, 1, PAYLOAD_CHUNK - 1, PAYLOAD_CHUNK, PAYLOAD_CHUNK + 1, 16 * PAYLOAD_CHUNK, 3_000_001]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_through_pyrage_both_ways(size: int, tmp_path: Path) -> None:
    secret, public = keypair()
    data = os.urandom(size)
    sealed = encrypt(data, public, read_size=7_777)
    assert pyrage.decrypt(sealed, [x25519.Identity.from_str(secret)]) == data
    assert decrypt(sealed, secret, tmp_path) == data
    theirs = pyrage.encrypt(data, [x25519.Recipient.from_str(public)])
    assert decrypt(theirs, secret, tmp_path) == data


def test_any_of_several_recipients_decrypts(tmp_path: Path) -> None:
    (secret_a, public_a), (secret_b, public_b) = keypair(), keypair()
    sealed = encrypt(b"both may read", public_a, public_b)
    assert decrypt(sealed, secret_a, tmp_path) == b"both may read"
    assert decrypt(sealed, secret_b, tmp_path) == b"both may read"


def test_each_encryption_is_different() -> None:
    _, public = keypair()
    assert encrypt(b"same", public) != encrypt(b"same", public)


def test_a_wrong_key_is_named(tmp_path: Path) -> None:
    _, public = keypair()
    other_secret, _ = keypair()
    with pytest.raises(IntegrityError, match="none of the identity file's keys"):
        decrypt(encrypt(b"x", public), other_secret, tmp_path)


DAMAGES = {
    "flipped payload byte": lambda b: b[:-20] + bytes([b[-20] ^ 1]) + b[-19:],
    "flipped header byte": lambda b: b[:30] + bytes([b[30] ^ 1]) + b[31:],
    "truncated mid-chunk": lambda b: b[: len(b) - 1000],
    "truncated at a chunk boundary": lambda b: b[: len(b) - (len(b) - 200) % (PAYLOAD_CHUNK + 16)],
    "truncated in the header": lambda b: b[:40],
    "not age at all": lambda b: b"hello world\n" * 10,
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_damage_is_an_integrity_error_naming_the_part(damage, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secret, public = keypair()
    sealed = encrypt(os.urandom(3 * PAYLOAD_CHUNK + 5), public)
    with pytest.raises(IntegrityError, match=r"^part: "):
        decrypt(damage(sealed), secret, tmp_path)


def test_dropping_the_last_full_chunk_is_caught(tmp_path: Path) -> None:
    secret, public = keypair()
    sealed = encrypt(os.urandom(2 * PAYLOAD_CHUNK), public)
    with pytest.raises(IntegrityError, match="truncated or damaged payload chunk 0"):
        decrypt(sealed[: -(PAYLOAD_CHUNK + 16)], secret, tmp_path)


@pytest.mark.parametrize(
    "recipient",
    ["age1", "age1qqqq", "AGE1" + "q" * 58, "x" * 62],
)
def test_bad_recipients_are_refused(recipient: str) -> None:
    with pytest.raises(InventoryError):
        recipient_key(recipient)


def test_a_mistyped_recipient_fails_its_checksum() -> None:
    _, public = keypair()
    mistyped = public[:-1] + ("q" if public[-1] != "q" else "p")
    with pytest.raises(InventoryError, match="checksum"):
        recipient_key(mistyped)


def test_identity_file_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    path.write_text("# comment\nnot a key\n")
    with pytest.raises(InventoryError, match=f"{path}:2: expected an age private key"):
        read_identities(path)
    path.write_text("# only comments\n")
    with pytest.raises(InventoryError, match="no age private key"):
        read_identities(path)
    with pytest.raises(InventoryError, match="cannot read"):
        read_identities(tmp_path / "absent.txt")
