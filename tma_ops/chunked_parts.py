"""Chunked parts: a stream cut at content-defined boundaries, each chunk stored as an object.

The database dump of a site changes little from one snapshot to the next, yet a dump is always
whole. Cut by content (FastCDC: boundaries follow the bytes, so an insert moves only the chunks
around it), an increment stores only the chunks its parent does not hold and names the parent's
objects for the others. Each chunk is an ordinary part of its own (zstd, then age when the store
encrypts) with its digests in the manifest; restoring is concatenating the chunks' plain bytes.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from typing import BinaryIO, NoReturn

import zstandard
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pyfastcdc import FastCDC

from tma_ops.encryption import EncryptingReader
from tma_ops.errors import IntegrityError
from tma_ops.parts import (
    Part,
    Sealing,
    check_stored_digest,
    is_encrypted,
    raise_part_failure,
    unsealed,
)
from tma_ops.progress import TransferProgress
from tma_ops.stores import Store
from tma_ops.streams import (
    CHUNK,
    HashingReader,
    Prefetching,
    ReadingStopped,
    drain,
)

# About 3 MiB a chunk (FastCDC's average is min + avg): a changed row re-sends a few MiB, and a
# 200 MB dump is some 70 objects, not thousands of requests.
MIN_CHUNK = 1 << 20
AVG_CHUNK = 2 << 20
MAX_CHUNK = 4 << 20
SEALING_THREADS = 2
IN_FLIGHT = 2  # chunks sealed and stored while the next ones are cut: bounded memory


def chunk_index(parent: Part | None) -> dict[tuple[str, int], Part]:
    """The chunks a new snapshot may name instead of storing again, by plain digest and size."""
    if parent is None:
        return {}
    return {(chunk.plain_sha256, chunk.plain_size): chunk for chunk in parent.chunks}


def upload_chunked_part(
    store: Store,
    stem: str,
    open_source: Callable[[], AbstractContextManager[BinaryIO]],
    *,
    sealing: Sealing,
    progress: TransferProgress,
    reuse: Mapping[tuple[str, int], Part],
) -> Part:
    """Store the stream as chunks `<stem>.<n>.zst[.age]`; chunks found in `reuse` are named, not
    stored. `stem` is the part's name without extension, e.g. `<snapshot>/db.sql`."""
    label = stem.rsplit("/", 1)[-1]
    chunker = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
    whole = hashlib.sha256()
    sink = _ChunkSink(store, stem, sealing)
    chunks: list[Future[Part]] = []
    with (
        progress.transfer(f"upload {label}", None) as advance,
        open_source() as source,
        ThreadPoolExecutor(SEALING_THREADS, thread_name_prefix="store-chunks") as pool,
    ):
        reader = Prefetching(source)
        try:
            for number, cut in enumerate(chunker.cut_stream(reader)):
                whole.update(cut.data)
                digest = hashlib.sha256(cut.data).hexdigest()
                known = reuse.get((digest, len(cut.data)))
                if known is None:
                    _wait_for_room(chunks)
                    plain = bytes(cut.data)  # the chunker reuses its buffer for the next chunk
                    chunks.append(pool.submit(sink.store, number, plain, digest))
                else:
                    chunks.append(_done(known))
                advance(len(cut.data))
        finally:
            reader.close()
        stored = tuple(chunk.result() for chunk in chunks)
    return Part(
        key=sealing.key_for(f"{stem}.zst"),
        size=sum(chunk.size for chunk in stored),
        sha256="",
        plain_size=sum(chunk.plain_size for chunk in stored),
        plain_sha256=whole.hexdigest(),
        chunks=stored,
    )


def _done(part: Part) -> Future[Part]:
    future: Future[Part] = Future()
    future.set_result(part)
    return future


def _wait_for_room(chunks: list[Future[Part]]) -> None:
    pending = [chunk for chunk in chunks if not chunk.done()]
    for future in pending[: max(0, len(pending) - IN_FLIGHT + 1)]:
        future.result()


class _ChunkSink:
    """Seals and stores chunks, a few side by side: compressing, encrypting and hashing release
    the GIL, and a store's requests wait on the network. Each thread keeps its own compressor."""

    def __init__(self, store: Store, stem: str, sealing: Sealing) -> None:
        self._store, self._stem, self._sealing = store, stem, sealing
        self._local = threading.local()

    def store(self, number: int, plain: bytes, digest: str) -> Part:
        key = self._sealing.key_for(f"{self._stem}.{number:05d}.zst")
        compressed = self._compressor().compress(plain)
        sealed: BinaryIO = io.BytesIO(compressed)
        if self._sealing.encrypts:
            sealed = EncryptingReader(sealed, self._sealing.recipients)  # type: ignore[assignment]
        stored = HashingReader(sealed)
        hint = len(compressed) + len(compressed) // 256 + 512
        size = self._store.put(key, stored, size_hint=hint)
        return Part(key, size, stored.sha256, len(plain), digest)

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor: zstandard.ZstdCompressor | None = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = zstandard.ZstdCompressor(level=3)
        return compressor


@contextmanager
def reading_chunks(
    store: Store, part: Part, sealing: Sealing, progress: TransferProgress, label: str
) -> Iterator[HashingReader]:
    """Yield the plain bytes of a chunked part, every chunk checked against the manifest as it
    ends; on exit, the whole against the part's digest. A damaged chunk is named by its key."""
    identities = sealing.identities(part.key) if is_encrypted(part) else None
    with progress.transfer(label, part.size) as advance:
        # Fetching, decrypting and decompressing run in a thread beside the consumer.
        fetched = Prefetching(_ChunkSequence(store, part.chunks, identities, advance))
        plain = HashingReader(fetched)
        try:
            yield plain
            plain.drain()
        except ReadingStopped:
            raise
        except Exception as exc:
            _raise_chunk_failure(exc, fetched)
        finally:
            fetched.close()
    if plain.sha256 != part.plain_sha256 or plain.size != part.plain_size:
        raise IntegrityError(
            f"{part.key}: the chunks' content does not match the manifest once joined"
        )


def _raise_chunk_failure(exc: Exception, fetched: Prefetching) -> NoReturn:
    """A consumer that failed on damaged bytes is reported as the damaged chunk's fault."""
    if isinstance(exc, IntegrityError):
        raise exc
    try:
        drain(fetched)
    except IntegrityError as damaged:
        raise damaged from exc
    except Exception:
        raise exc from None
    raise exc


class _ChunkSequence(io.RawIOBase):
    """The plain bytes of a part's chunks one after the other; each chunk's stored and plain
    digests are compared with the manifest when its last byte has been read."""

    def __init__(
        self,
        store: Store,
        chunks: tuple[Part, ...],
        identities: list[X25519PrivateKey] | None,
        advance: Callable[[int], None],
    ) -> None:
        self._blocks = self._each_block(store, chunks, identities, advance)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return next(self._blocks, b"")

    def _each_block(
        self,
        store: Store,
        chunks: tuple[Part, ...],
        identities: list[X25519PrivateKey] | None,
        advance: Callable[[int], None],
    ) -> Iterator[bytes]:
        for chunk in chunks:
            with store.get(chunk.key) as stream:
                stored = HashingReader(stream, advance)
                plain = HashingReader(unsealed(stored, identities, chunk.key))
                try:
                    while block := plain.read(CHUNK):
                        yield block
                    drain(stored)
                except Exception as exc:
                    raise_part_failure(chunk, stored, exc)
            check_stored_digest(chunk, stored)
            if plain.sha256 != chunk.plain_sha256 or plain.size != chunk.plain_size:
                raise IntegrityError(f"{chunk.key}: content does not match the manifest")
