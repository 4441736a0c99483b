"""One snapshot part on its way to and from the store: plain bytes -> zstd -> age -> store.

Every part records the SHA-256 and size of the stored bytes (checkable without any key) and of
the plain bytes (checked after decryption and decompression), so damage is caught either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import zstandard
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tma_ops.encryption import DecryptingReader, EncryptingReader, read_identities
from tma_ops.errors import IntegrityError, InventoryError
from tma_ops.faults import pause_point
from tma_ops.model import Encryption
from tma_ops.progress import TransferProgress
from tma_ops.stores import Store
from tma_ops.streams import (
    HashingReader,
    Prefetching,
    Readable,
    ReadingStopped,
    compressing,
    decompressing,
    drain,
)

ENCRYPTED_SUFFIX = ".age"


@dataclass(frozen=True)
class Part:
    """A part as the manifest records it.

    A single object has its key and digests. A chunked part (the database dump) is the
    concatenation of its chunks' plain bytes: `key` is then a name, not an object, `size` the sum
    of the chunks' stored sizes and `sha256` empty; each chunk is a Part of its own, and chunks
    unchanged since the parent snapshot are the parent's objects, named by their own keys.
    """

    key: str
    size: int
    sha256: str
    plain_size: int
    plain_sha256: str
    chunks: tuple[Part, ...] = ()

    def objects(self) -> tuple[Part, ...]:
        """The stored objects holding this part's bytes, in order."""
        return self.chunks or (self,)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Part:
        chunks = tuple(cls.from_record(chunk) for chunk in record.pop("chunks", None) or ())
        return cls(**record, chunks=chunks)


@dataclass(frozen=True)
class Sealing:
    """How parts are sealed for a store: age recipients to encrypt to, and where the key is."""

    recipients: tuple[str, ...] = ()
    identity_file: str | None = None

    @classmethod
    def of(cls, encryption: Encryption | None) -> Sealing:
        if encryption is None:
            return cls()
        return cls(tuple(encryption.recipients), encryption.identity_file)

    @property
    def encrypts(self) -> bool:
        return bool(self.recipients)

    def key_for(self, stem: str) -> str:
        return stem + ENCRYPTED_SUFFIX if self.encrypts else stem

    def identities(self, what: str) -> list[X25519PrivateKey]:
        if not self.identity_file:
            raise InventoryError(
                f"{what} is encrypted with age; set store.encryption.identity_file to the "
                "age private key file to read it"
            )
        return read_identities(Path(self.identity_file))


def upload_part(
    store: Store,
    key: str,
    open_source: Callable[[], AbstractContextManager[BinaryIO]],
    *,
    sealing: Sealing,
    progress: TransferProgress,
    total: int | None,
) -> Part:
    label = key.rsplit("/", 1)[-1]
    with progress.transfer(f"upload {label}", total) as advance, open_source() as source:
        plain = HashingReader(source, _first_chunk_pauses(f"upload:{label}", advance))
        with closing(Prefetching(compressing(plain))) as compressed:
            sealed: Readable = compressed
            if sealing.encrypts:
                sealed = EncryptingReader(compressed, sealing.recipients)
            stored = HashingReader(sealed)
            size = store.put(key, stored, size_hint=total)
    return Part(key, size, stored.sha256, plain.size, plain.sha256)


def _first_chunk_pauses(point: str, advance: Callable[[int], None]) -> Callable[[int], None]:
    """`advance`, with a pause point once the transfer is under way (for crash tests)."""
    started = False

    def on_bytes(count: int) -> None:
        nonlocal started
        if not started:
            started = True
            pause_point(point)
        advance(count)

    return on_bytes


@contextmanager
def reading_part(
    store: Store, part: Part, sealing: Sealing, progress: TransferProgress, label: str
) -> Iterator[HashingReader]:
    """Yield the plain bytes of a part; on exit, check both digests against the manifest.

    A failure of the consumer (tar, the database client) caused by damaged stored bytes is
    reported as the IntegrityError naming the part, not as the consumer's own complaint.
    """
    if part.chunks:
        from tma_ops.chunked_parts import reading_chunks  # it builds on this module

        with reading_chunks(store, part, sealing, progress, label) as joined:
            yield joined
        return
    identities = sealing.identities(part.key) if is_encrypted(part) else None
    with ExitStack() as stack:
        advance = stack.enter_context(progress.transfer(label, part.size))
        stream = stack.enter_context(store.get(part.key))
        stored = HashingReader(stream, advance)
        # Three threads side by side (hashlib, the cipher and zstd release the GIL): reading and
        # hashing the stored bytes, decrypting and decompressing them, and the consumer's side.
        fetched = stack.enter_context(closing(Prefetching(stored)))
        opened = Prefetching(unsealed(fetched, identities, part.key))
        plain = HashingReader(opened)
        try:
            yield plain
            plain.drain()
        except Exception as exc:
            opened.close()
            raise_part_failure(part, stored, exc, fetched)
        finally:
            opened.close()
        drain(fetched)
    check_part_digests(part, stored, plain)


def is_encrypted(part: Part) -> bool:
    return part.key.endswith(ENCRYPTED_SUFFIX)


def unsealed(stored: Readable, identities: list[X25519PrivateKey] | None, name: str) -> BinaryIO:
    if identities is None:
        return decompressing(stored)
    return decompressing(DecryptingReader(stored, identities, name))


def check_stored_bytes(store: Store, part: Part, progress: TransferProgress, label: str) -> None:
    """Read a part's objects back and check the stored bytes' digests: no key needed."""
    with progress.transfer(label, part.size) as advance:
        for stored_object in part.objects():
            with store.get(stored_object.key) as stream:
                stored = HashingReader(stream, advance)
                stored.drain()
            check_stored_digest(stored_object, stored)


def check_part_digests(part: Part, stored: HashingReader, plain: HashingReader) -> None:
    check_stored_digest(part, stored)
    if plain.sha256 != part.plain_sha256 or plain.size != part.plain_size:
        raise IntegrityError(f"{part.key}: content does not match the manifest after decompression")


def check_stored_digest(part: Part, stored: HashingReader) -> None:
    if stored.sha256 != part.sha256 or stored.size != part.size:
        raise IntegrityError(
            f"{part.key}: stored bytes do not match the manifest "
            f"(sha256 {stored.sha256[:12]}…, expected {part.sha256[:12]}…; "
            f"{stored.size} bytes, expected {part.size})"
        )


def raise_part_failure(
    part: Part, stored: HashingReader, exc: Exception, rest: Readable | None = None
) -> NoReturn:
    """Re-raise a failure met while decrypting, decompressing or consuming a part.

    Damaged stored bytes make the decryptor, decompressor, tar or the database client fail before
    the digests can be compared; such a failure is reported as an IntegrityError naming the key.
    A failure of the store itself, or one with intact stored bytes, is raised unchanged. `rest`
    is what still reads the stored bytes, when they are read ahead in a thread. A reading stopped
    from outside is raised as it is: its bytes are not wanted any more.
    """
    if isinstance(exc, ReadingStopped):
        raise exc
    try:
        drain(rest if rest is not None else stored)
    except Exception:
        raise exc  # noqa: B904 - the store failed too: the first failure is the one to report
    try:
        check_stored_digest(part, stored)
    except IntegrityError as mismatch:
        raise mismatch from exc
    if isinstance(exc, zstandard.ZstdError):
        raise IntegrityError(f"{part.key}: cannot be decompressed ({exc})") from exc
    raise exc
