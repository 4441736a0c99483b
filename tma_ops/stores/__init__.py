"""Store seam: where snapshots live off-site. Keys are '/'-separated, relative to the store root.

Implementations are chosen by URL scheme: `file://` (embedded default), `s3://` (any S3 API)
and `mem://` (tests).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

from tma_ops.errors import InventoryError
from tma_ops.model import StoreSpec
from tma_ops.streams import Readable


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    locked_until: datetime | None = None


class Store(Protocol):
    url: str

    def put(self, key: str, source: Readable, size_hint: int | None = None) -> int:
        """Store the stream under key (replacing it atomically); return the byte count.

        size_hint, the expected size when known, lets a store size its transfers."""
        ...

    def get(self, key: str) -> AbstractContextManager[BinaryIO]: ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys under prefix, sorted."""
        ...

    def stat(self, key: str) -> ObjectInfo: ...

    def delete(self, key: str) -> None:
        """Remove key; refused with ObjectLocked while a retention lock holds it."""
        ...

    def lock(self, key: str, until: datetime) -> None:
        """Protect key from deletion until the given UTC time."""
        ...


def open_store(spec: StoreSpec | str, base_dir: Path | None = None) -> Store:
    """Open a store by its inventory settings or URL.

    A relative file:// path (file://./store) is taken from base_dir.
    """
    if isinstance(spec, str):
        spec = StoreSpec(url=spec)
    url = spec.url
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from tma_ops.stores.file import FileStore

        return FileStore(file_url_path(url, base_dir))
    if scheme == "mem":
        from tma_ops.stores.mem import MemStore

        return MemStore.named(url)
    if scheme == "s3":
        from tma_ops.stores.s3 import S3Store

        return S3Store.open(spec)
    raise InventoryError(
        f"store {url!r}: unknown scheme {scheme!r}; expected file://, s3:// or mem://"
    )


def file_url_path(url: str, base_dir: Path | None) -> Path:
    raw = url[len("file://") :]
    path = Path(raw)
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return path.resolve()
