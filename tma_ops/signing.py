"""Ed25519 signatures of the journal's run heads and of audit exports.

The private key is a PEM file (PKCS#8, unencrypted, mode 0600) made on first use; its public
half is written beside it as `<key>.pub` (PEM, SubjectPublicKeyInfo), the one file an auditor
needs. A signature travels as base64 text with the id of the key that made it.

Verifying needs only `cryptography` and the public key: `verify_signature` is what the offline
verifier calls.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tma_ops.errors import TmaError

ALGORITHM = "ed25519"


class SigningError(TmaError):
    pass


@dataclass(frozen=True)
class Signer:
    """A private key and the id of its public half."""

    private_key: Ed25519PrivateKey
    path: Path

    @property
    def public_pem(self) -> bytes:
        return public_pem_of(self.private_key.public_key())

    @property
    def key_id(self) -> str:
        return key_id(self.public_pem)

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self.private_key.sign(payload)).decode("ascii")


def public_pem_of(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(public_pem: bytes) -> str:
    """A short, stable name of a public key: the start of the SHA-256 of its raw 32 bytes."""
    raw = load_public_key(public_pem).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(public_pem: bytes, source: str = "public key") -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(public_pem)
    except ValueError as exc:
        raise SigningError(f"{source}: expected an Ed25519 public key in PEM ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{source}: expected an Ed25519 public key, got {type(key).__name__}")
    return key


def verify_signature(public_pem: bytes, payload: bytes, signature: str) -> bool:
    """True when `signature` (base64) is the key's signature of `payload`."""
    try:
        raw = base64.b64decode(signature, validate=True)
        load_public_key(public_pem).verify(raw, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


def load_or_create_signer(path: Path) -> Signer:
    """The signing key at `path`, made (with its .pub beside it) when the file does not exist."""
    path = Path(path).expanduser()
    if not path.exists():
        _create_key(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningError(
            f"journal signing key {path}: expected an unencrypted Ed25519 private key in PEM "
            f"({type(exc).__name__})"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(
            f"journal signing key {path}: expected an Ed25519 key, got {type(key).__name__}"
        )
    public = public_key_path(path)
    if not public.exists():
        public.write_bytes(public_pem_of(key.public_key()))
    return Signer(key, path)


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub")


def _create_key(path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    try:
        # Two processes starting at once: the first key written wins, the other is dropped.
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
