"""The two streams between the S3 store and boto: the upload source and the download body.

`UploadSource` serves boto's large reads (a whole part at a time) by concatenating reads of at
most CHUNK bytes from the caller's source, and hashes what passes, per part, so that the S3
checksum of the stored object can be computed locally and compared with the server's:
- a single-part object: base64(SHA-256 of the bytes);
- a multipart object: base64(SHA-256 of the concatenated part digests), "-N" for N parts.
s3transfer treats a short read as the end of the stream, so every read is filled completely.
"""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

from tma_ops.stores.s3_errors import BOTO_ERRORS, Where, translate
from tma_ops.streams import CHUNK, Readable


class UploadSource(io.RawIOBase):
    def __init__(self, source: Readable, part_size: int) -> None:
        self._source = source
        self._part_size = part_size
        self._part = hashlib.sha256()
        self._part_fill = 0
        self._part_digests: list[bytes] = []
        self._eof = False
        self.size = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False  # so that boto reads it once, part by part, and never seeks back

    def read(self, size: int | None = -1) -> bytes:
        wanted = None if size is None or size < 0 else size
        pieces: list[bytes] = []
        got = 0
        while not self._eof and (wanted is None or got < wanted):
            data = self._source.read(CHUNK if wanted is None else min(CHUNK, wanted - got))
            if not data:
                self._eof = True
                break
            self._hash(data)
            pieces.append(data)
            got += len(data)
        return b"".join(pieces)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _hash(self, data: bytes) -> None:
        self.size += len(data)
        view = memoryview(data)
        while view:
            piece = view[: self._part_size - self._part_fill]
            self._part.update(piece)
            self._part_fill += len(piece)
            view = view[len(piece) :]
            if self._part_fill == self._part_size:
                self._part_digests.append(self._part.digest())
                self._part, self._part_fill = hashlib.sha256(), 0

    def expected_checksum(self) -> tuple[str, int | None]:
        """(base64 SHA-256 checksum S3 reports, number of parts or None for a single part).

        s3transfer uploads in one request what is shorter than its threshold (the part size),
        and in parts of exactly part_size bytes (the last one shorter) what is not.
        """
        if self.size < self._part_size:
            return _b64(self._part.digest()), None
        digests = self._part_digests + ([self._part.digest()] if self._part_fill else [])
        return _b64(hashlib.sha256(b"".join(digests)).digest()), len(digests)


def checksum_matches(reported: str, expected: str, parts: int | None) -> bool:
    """Servers report a multipart checksum with or without its "-N" part count."""
    value, _, count = reported.partition("-")
    if value != expected:
        return False
    return not count or (parts is not None and count == str(parts))


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


class DownloadBody(io.RawIOBase):
    """A GET response body whose transport and checksum errors become StoreError/IntegrityError.

    botocore checks the object's SHA-256 (ChecksumMode=ENABLED) as the last bytes are read.
    """

    def __init__(self, body: Any, where: Where, key: str) -> None:
        self._body = body
        self._where = where
        self._key = key

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            data: bytes = self._body.read(None if size is None or size < 0 else size)
        except BOTO_ERRORS as exc:
            raise translate(self._where, exc, f"reading {self._key!r}") from exc
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
