"""In-process store for tests and demos: objects held as bytes, same rules as FileStore.

Like a directory tree, a key cannot be both an object and the parent of other objects.
"""

from __future__ import annotations

import builtins
import threading
from datetime import datetime
from io import BytesIO
from typing import BinaryIO, ClassVar

from tma_ops.errors import StoreError
from tma_ops.stores import ObjectInfo
from tma_ops.stores.common import (
    Clock,
    active_lock,
    aware_utc,
    check_key,
    check_prefix,
    locked,
    not_found,
    read_chunks,
    refuse_shortening,
    utc_now,
)
from tma_ops.streams import Readable


class MemStore:
    _named: ClassVar[dict[str, MemStore]] = {}
    _named_mutex: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, url: str = "mem://", *, clock: Clock = utc_now) -> None:
        self.url = url
        self._clock = clock
        self._objects: dict[str, bytes] = {}
        self._locks: dict[str, datetime] = {}
        self._mutex = threading.Lock()

    @classmethod
    def named(cls, url: str) -> MemStore:
        """The one store of this process for url, so every open_store(url) sees the same objects."""
        with cls._named_mutex:
            store = cls._named.get(url)
            if store is None:
                store = cls._named[url] = cls(url)
            return store

    def put(self, key: str, source: Readable, size_hint: int | None = None) -> int:
        check_key(key)
        # Read outside the mutex: readers keep seeing the previous object while this streams in.
        data = b"".join(read_chunks(source))
        with self._mutex:
            self._refuse_conflict(key)
            self._refuse_locked(key)
            self._objects[key] = data
        return len(data)

    def get(self, key: str) -> BinaryIO:
        with self._mutex:
            return BytesIO(self._object(key))

    def stat(self, key: str) -> ObjectInfo:
        with self._mutex:
            return ObjectInfo(key, len(self._object(key)), self._active_lock(key))

    def delete(self, key: str) -> None:
        with self._mutex:
            self._object(key)
            self._refuse_locked(key)
            del self._objects[key]
            self._locks.pop(key, None)

    def lock(self, key: str, until: datetime) -> None:
        until = aware_utc(key, until)
        with self._mutex:
            self._object(key)
            refuse_shortening(self.url, key, self._active_lock(key), until)
            self._locks[key] = until

    def list(self, prefix: str = "") -> builtins.list[str]:
        check_prefix(prefix)
        with self._mutex:
            return sorted(key for key in self._objects if key.startswith(prefix))

    def _object(self, key: str) -> bytes:
        data = self._objects.get(check_key(key))
        if data is None:
            raise not_found(self.url, key)
        return data

    def _active_lock(self, key: str) -> datetime | None:
        return active_lock(self._locks.get(key), self._clock())

    def _refuse_locked(self, key: str) -> None:
        until = self._active_lock(key)
        if until is not None:
            raise locked(self.url, key, until)

    def _refuse_conflict(self, key: str) -> None:
        parts = key.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in self._objects:
                raise StoreError(f"store {self.url}: cannot put {key!r}: {parent!r} is an object")
        if any(other.startswith(key + "/") for other in self._objects):
            raise StoreError(f"store {self.url}: cannot put {key!r}: it holds other objects")
