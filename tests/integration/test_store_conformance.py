"""Every Store implementation must pass the same tests (after restic's backend test suite).

The S3 store runs them against a real S3 API server (moto_server, over HTTP), one fresh bucket
with versioning and Object Lock per test.

Lock expiry: the file and mem stores take an injected clock, so their tests never sleep. An S3
server enforces retention with its own clock, so for S3 the lock tests use short real spans
(LOCK_UNIT_SECONDS) and wait for them to pass: the `clock` fixture hides the difference.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO, Protocol, cast
from uuid import uuid4

import pytest
from harness.s3server import MotoServer, s3_spec

from tma_ops.errors import ObjectLocked, ObjectNotFound, StoreError
from tma_ops.stores import ObjectInfo, Store, open_store
from tma_ops.stores.file import FileStore
from tma_ops.stores.mem import MemStore
from tma_ops.stores.s3 import S3Store

pytestmark = pytest.mark.integration

MiB = 1 << 20
KEY = "site/snapshots/20300101-abc123/db.sql.zst"
LOCK_UNIT_SECONDS = 4  # one unit of lock time on a real clock: room for a few requests


class LockClock(Protocol):
    """Time as the store under test sees it, for the lock tests."""

    @property
    def now(self) -> datetime: ...

    def span(self, units: float) -> timedelta:
        """A lock duration: days on a fake clock, a few seconds on a real one."""
        ...

    def pass_until(self, when: datetime) -> None:
        """Return once `when` is no longer in the future (now >= when)."""
        ...


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def span(self, units: float) -> timedelta:
        return timedelta(days=units)

    def pass_until(self, when: datetime) -> None:
        self.now = max(self.now, when)


class RealClock:
    """The machine's clock, which the S3 server also uses, in whole seconds (rounded up)."""

    @property
    def now(self) -> datetime:
        now = datetime.now(UTC)
        return now.replace(microsecond=0) + timedelta(seconds=1 if now.microsecond else 0)

    def span(self, units: float) -> timedelta:
        return timedelta(seconds=LOCK_UNIT_SECONDS * units)

    def pass_until(self, when: datetime) -> None:
        # A little past `when`: the server compares whole seconds, strictly.
        while (left := (when - datetime.now(UTC)).total_seconds() + 0.3) > 0:
            time.sleep(left)


class MeteredSource(io.RawIOBase):
    """A stream over byte blocks that records every read size asked of it and hashes its output."""

    def __init__(self, blocks: Iterator[bytes], on_read: Callable[[], None] | None = None) -> None:
        self._blocks = blocks
        self._pending = bytearray()
        self._on_read = on_read
        self.requests: list[int] = []
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        self.requests.append(size)
        if self._on_read is not None:
            self._on_read()
        while (size < 0 or len(self._pending) < size) and (block := next(self._blocks, None)):
            self._pending += block
        cut = len(self._pending) if size < 0 else size
        data = bytes(self._pending[:cut])
        del self._pending[:cut]
        self.sha256.update(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def random_blocks(size: int, seed: int = 0, block: int = 256 * 1024) -> Iterator[bytes]:
    rng = random.Random(seed)
    while size > 0:
        n = min(block, size)
        yield rng.randbytes(n)
        size -= n


def broken_blocks() -> Iterator[bytes]:
    yield b"x" * MiB
    raise RuntimeError("source broke")


def read_all(store: Store, key: str) -> bytes:
    with store.get(key) as stream:
        return stream.read()


def read_sha256(store: Store, key: str) -> str:
    digest = hashlib.sha256()
    with store.get(key) as stream:
        while chunk := stream.read(64 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def put_bytes(store: Store, key: str, data: bytes) -> int:
    return store.put(key, io.BytesIO(data))


def put_stream(store: Store, key: str, source: MeteredSource) -> int:
    return store.put(key, cast(BinaryIO, source))


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["file", "mem", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock(backend: str, fake_clock: FakeClock) -> LockClock:
    return RealClock() if backend == "s3" else fake_clock


@pytest.fixture
def store(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, fake_clock: FakeClock
) -> Store:
    if backend == "file":
        return FileStore(tmp_path / "store", clock=fake_clock)
    if backend == "mem":
        return MemStore("mem://conformance", clock=fake_clock)
    server: MotoServer = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    return S3Store.open(s3_spec(server.endpoint, bucket, prefix="tenant/backups"))


@pytest.fixture(params=["file", "mem"])
def local_store(request: pytest.FixtureRequest, tmp_path: Path, fake_clock: FakeClock) -> Store:
    """The stores that emulate a directory tree and keep locks beside the objects."""
    if request.param == "file":
        return FileStore(tmp_path / "store", clock=fake_clock)
    return MemStore("mem://conformance", clock=fake_clock)


@pytest.fixture
def file_store(tmp_path: Path, fake_clock: FakeClock) -> FileStore:
    return FileStore(tmp_path / "store", clock=fake_clock)


# Round trips and streaming


@pytest.mark.parametrize("size", [0, 1, 5_007, 40 * MiB], ids=["empty", "1B", "small", "40MiB"])
def test_round_trip_preserves_bytes(store: Store, size: int) -> None:
    source = MeteredSource(random_blocks(size, seed=size))
    assert put_stream(store, KEY, source) == size
    assert read_sha256(store, KEY) == source.sha256.hexdigest()
    assert store.stat(KEY).size == size


def test_put_reads_the_source_in_bounded_chunks(store: Store) -> None:
    source = MeteredSource(random_blocks(3 * MiB + 1))
    put_stream(store, KEY, source)
    assert len(source.requests) >= 4
    assert all(0 < n <= MiB for n in source.requests), source.requests


def test_overwrite_replaces_the_object(store: Store) -> None:
    put_bytes(store, KEY, b"first version, longer")
    assert put_bytes(store, KEY, b"second") == 6
    assert read_all(store, KEY) == b"second"
    assert store.stat(KEY).size == 6
    assert store.list() == [KEY]


def test_readers_see_the_previous_object_while_a_put_streams(store: Store) -> None:
    put_bytes(store, KEY, b"v1")
    seen: list[tuple[list[str], bytes]] = []

    def probe() -> None:
        seen.append((store.list(), read_all(store, KEY)))

    put_stream(store, KEY, MeteredSource(iter([b"v2" * MiB]), on_read=probe))
    assert seen and seen == [([KEY], b"v1")] * len(seen)
    seen.clear()
    put_stream(store, "other", MeteredSource(iter([b"new" * MiB]), on_read=probe))
    assert seen and seen == [([KEY], b"v2" * MiB)] * len(seen)
    assert store.list() == ["other", KEY]


def test_an_open_stream_keeps_its_object_across_an_overwrite(store: Store) -> None:
    put_bytes(store, KEY, b"old" * 1000)
    with store.get(KEY) as stream:
        head = stream.read(10)
        put_bytes(store, KEY, b"new")
        rest = stream.read()
    assert head + rest == b"old" * 1000


def test_a_failed_put_leaves_the_previous_object(store: Store) -> None:
    put_bytes(store, KEY, b"v1")
    with pytest.raises(RuntimeError, match="source broke"):
        put_stream(store, KEY, MeteredSource(broken_blocks()))
    with pytest.raises(RuntimeError, match="source broke"):
        put_stream(store, "fresh", MeteredSource(broken_blocks()))
    assert read_all(store, KEY) == b"v1"
    assert store.list() == [KEY]


def test_concurrent_puts_to_one_key_never_mix(store: Store) -> None:
    payloads = [bytes([i]) * (256 * 1024 + i) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(lambda data: put_bytes(store, KEY, data), payloads))
    assert sizes == [len(p) for p in payloads]
    assert read_all(store, KEY) in payloads


def test_concurrent_puts_and_deletes_in_one_directory(store: Store) -> None:
    def churn(worker: int) -> None:
        for round_ in range(20):
            key = f"shared/dir/{worker}-{round_}"
            put_bytes(store, key, b"x")
            store.delete(key)
        put_bytes(store, f"shared/dir/{worker}", b"kept")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(churn, range(8)))
    assert store.list() == sorted(f"shared/dir/{worker}" for worker in range(8))


# Listing, stat, delete


def test_list_filters_by_prefix_and_sorts(store: Store) -> None:
    assert store.list() == []
    for key in ["b", "a/2", "ab", "a/10", "a/1/x"]:
        put_bytes(store, key, key.encode())
    assert store.list() == ["a/1/x", "a/10", "a/2", "ab", "b"]
    assert store.list("a/") == ["a/1/x", "a/10", "a/2"]
    assert store.list("a/1") == ["a/1/x", "a/10"]
    assert store.list("a") == ["a/1/x", "a/10", "a/2", "ab"]
    assert store.list("a/1/x") == ["a/1/x"]
    assert store.list("c/") == []
    assert store.list("b/") == []


def test_stat_reports_size_and_no_lock(store: Store) -> None:
    put_bytes(store, KEY, b"12345")
    assert store.stat(KEY) == ObjectInfo(KEY, 5, None)


def test_delete_removes_the_object(store: Store) -> None:
    put_bytes(store, KEY, b"x")
    put_bytes(store, "site/other", b"y")
    store.delete(KEY)
    assert store.list() == ["site/other"]
    with pytest.raises(ObjectNotFound):
        store.get(KEY)
    with pytest.raises(ObjectNotFound):
        store.delete(KEY)
    put_bytes(store, KEY, b"again")
    assert read_all(store, KEY) == b"again"


MISSING_KEY_OPS: dict[str, Callable[[Store, str], object]] = {
    "get": lambda store, key: store.get(key),
    "stat": lambda store, key: store.stat(key),
    "delete": lambda store, key: store.delete(key),
    "lock": lambda store, key: store.lock(key, datetime(2031, 1, 1, tzinfo=UTC)),
}


@pytest.mark.parametrize("op", MISSING_KEY_OPS.values(), ids=MISSING_KEY_OPS.keys())
def test_missing_key_raises_not_found_naming_key_and_store(
    store: Store, op: Callable[[Store, str], object]
) -> None:
    put_bytes(store, "site/present", b"x")
    for key in ["site/absent", "site", "site/present/below"]:
        with pytest.raises(ObjectNotFound) as raised:
            op(store, key)
        assert repr(key) in str(raised.value)
        assert store.url in str(raised.value)


# Key validation

BAD_KEYS = [
    "",
    "/etc/passwd",
    "..",
    "a/../b",
    "a/..",
    "a\\b",
    "a//b",
    "a/",
    "./a",
    "a/./b",
    ".locks/a",
    "a/.hidden",
    "a\x00b",
]
KEY_OPS: dict[str, Callable[[Store, str], object]] = {
    "put": lambda store, key: put_bytes(store, key, b"x"),
    **MISSING_KEY_OPS,
}


@pytest.mark.parametrize("op", KEY_OPS.values(), ids=KEY_OPS.keys())
@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_are_refused_naming_the_key(
    store: Store, op: Callable[[Store, str], object], key: str
) -> None:
    with pytest.raises(StoreError) as raised:
        op(store, key)
    assert type(raised.value) is StoreError
    assert repr(key) in str(raised.value)
    assert store.list() == []


@pytest.mark.parametrize("prefix", ["/", "../", "a/../", "a\\b/", ".locks/", "a//"])
def test_invalid_list_prefixes_are_refused(store: Store, prefix: str) -> None:
    with pytest.raises(StoreError, match="prefix"):
        store.list(prefix)


# Retention locks: a lock holds while now < until


def test_lock_refuses_delete_and_overwrite_until_it_expires(store: Store, clock: LockClock) -> None:
    put_bytes(store, KEY, b"v1")
    until = clock.now + clock.span(1)
    store.lock(KEY, until)
    assert store.stat(KEY).locked_until == until
    assert store.list() == [KEY]
    with pytest.raises(ObjectLocked) as raised:
        store.delete(KEY)
    assert until.isoformat() in str(raised.value)
    with pytest.raises(ObjectLocked):
        put_bytes(store, KEY, b"v2")
    assert read_all(store, KEY) == b"v1"

    clock.pass_until(until)
    assert store.stat(KEY).locked_until is None
    put_bytes(store, KEY, b"v2")
    store.delete(KEY)
    assert store.list() == []


def test_lock_can_be_extended_but_not_shortened(store: Store, clock: LockClock) -> None:
    put_bytes(store, KEY, b"x")
    start = clock.now
    store.lock(KEY, start + clock.span(1))
    store.lock(KEY, start + clock.span(1.5))
    with pytest.raises(ObjectLocked, match="shorten"):
        store.lock(KEY, start + clock.span(1.25))
    assert store.stat(KEY).locked_until == start + clock.span(1.5)

    clock.pass_until(start + clock.span(1.5))
    later = clock.now + timedelta(hours=1)
    store.lock(KEY, later)
    assert store.stat(KEY).locked_until == later


def test_a_lock_in_the_past_has_no_effect(store: Store, clock: LockClock) -> None:
    put_bytes(store, KEY, b"x")
    store.lock(KEY, clock.now - timedelta(seconds=1))
    assert store.stat(KEY).locked_until is None
    store.delete(KEY)


def test_lock_times_must_be_aware_and_are_kept_in_utc(store: Store) -> None:
    put_bytes(store, KEY, b"x")
    with pytest.raises(StoreError, match="timezone"):
        store.lock(KEY, datetime(2031, 1, 1))
    paris = timezone(timedelta(hours=1))
    store.lock(KEY, datetime(2031, 1, 1, 1, 0, tzinfo=paris))
    locked_until = store.stat(KEY).locked_until
    assert locked_until == datetime(2031, 1, 1, tzinfo=UTC)
    assert locked_until is not None and locked_until.utcoffset() == timedelta(0)


# The stores that emulate a directory tree and keep lock records beside the objects. (S3 has
# neither: "a/b" and "a/b/c" can both be objects, and a retention lock belongs to one version of
# an object, which delete removes with the object; see test_s3_store.py.)


def test_a_key_cannot_be_both_object_and_directory(local_store: Store) -> None:
    put_bytes(local_store, "a/b", b"object")
    put_bytes(local_store, "c/d/e", b"nested")
    with pytest.raises(StoreError):
        put_bytes(local_store, "a/b/c", b"under an object")
    with pytest.raises(StoreError):
        put_bytes(local_store, "c/d", b"over a directory")
    assert local_store.list() == ["a/b", "c/d/e"]
    assert read_all(local_store, "a/b") == b"object"


def test_a_lock_does_not_survive_its_object(local_store: Store, fake_clock: FakeClock) -> None:
    put_bytes(local_store, KEY, b"x")
    local_store.lock(KEY, fake_clock.now + timedelta(days=1))
    fake_clock.advance(days=2)
    local_store.delete(KEY)
    fake_clock.now -= timedelta(days=2)
    put_bytes(local_store, KEY, b"new object, no lock")
    assert local_store.stat(KEY).locked_until is None


# FileStore specifics


def test_file_store_creates_its_root_lazily(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet"
    store = FileStore(root)
    assert store.url == f"file://{root}"
    assert store.list() == []
    assert store.list("site/") == []
    with pytest.raises(ObjectNotFound):
        store.stat(KEY)
    assert not root.exists()
    put_bytes(store, KEY, b"x")
    assert (root / KEY).read_bytes() == b"x"


def test_file_store_leftover_temp_files_are_not_objects(file_store: FileStore) -> None:
    put_bytes(file_store, "site/snapshots/a", b"a")
    crashed = file_store.root / "site" / "snapshots" / ".b.k3x9q.tmp"
    crashed.write_bytes(b"half an upload")
    assert file_store.list() == ["site/snapshots/a"]
    assert file_store.list("site/snapshots/") == ["site/snapshots/a"]
    with pytest.raises(ObjectNotFound):
        file_store.stat("site/snapshots/b")


def test_file_store_fsyncs_before_renaming(
    file_store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    put_bytes(file_store, KEY, b"durable")
    assert events == ["fsync", "replace", "fsync"]


def test_file_store_failed_rename_leaves_no_object_and_no_temp(
    file_store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def replace(src: str | Path, dst: str | Path) -> None:
        raise OSError(28, "No space left on device", str(dst))

    put_bytes(file_store, "site/keep", b"x")
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(StoreError, match="No space left on device") as raised:
        put_bytes(file_store, KEY, b"x" * MiB)
    assert str(file_store.root / KEY) in str(raised.value)
    monkeypatch.undo()
    assert file_store.list() == ["site/keep"]
    assert not any(p.name.endswith(".tmp") for p in file_store.root.rglob("*"))


def test_file_store_hides_lock_metadata(file_store: FileStore, fake_clock: FakeClock) -> None:
    put_bytes(file_store, KEY, b"x")
    file_store.lock(KEY, fake_clock.now + timedelta(days=1))
    assert (file_store.root / ".locks").is_dir()
    assert file_store.list() == [KEY]
    fake_clock.advance(days=2)
    file_store.delete(KEY)
    assert list(file_store.root.iterdir()) == []


def test_file_store_unreadable_lock_metadata_is_a_store_error(file_store: FileStore) -> None:
    put_bytes(file_store, "k", b"x")
    (file_store.root / ".locks").mkdir()
    (file_store.root / ".locks" / "k.json").write_text("not json")
    with pytest.raises(StoreError, match="lock metadata"):
        file_store.delete("k")


def test_file_store_delete_prunes_empty_directories(file_store: FileStore) -> None:
    put_bytes(file_store, "a/b/c", b"x")
    put_bytes(file_store, "a/d", b"y")
    file_store.delete("a/b/c")
    assert not (file_store.root / "a" / "b").exists()
    assert (file_store.root / "a").is_dir()
    file_store.delete("a/d")
    assert file_store.root.is_dir()
    assert list(file_store.root.iterdir()) == []


def test_file_store_os_errors_name_the_path_and_reason(tmp_path: Path) -> None:
    root = tmp_path / "a-file"
    root.write_bytes(b"")
    store = FileStore(root)
    with pytest.raises(StoreError) as raised:
        put_bytes(store, "k", b"x")
    cause = raised.value.__cause__
    assert isinstance(cause, OSError) and cause.strerror
    assert str(root) in str(raised.value)
    assert cause.strerror in str(raised.value)


# open_store


def test_open_store_file_url(tmp_path: Path) -> None:
    store = open_store("file://" + str(tmp_path / "s"))
    assert isinstance(store, FileStore)
    assert store.url == f"file://{tmp_path / 's'}"
    put_bytes(store, KEY, b"hello")
    assert read_all(open_store(store.url), KEY) == b"hello"


def test_open_store_relative_file_url_uses_base_dir(tmp_path: Path) -> None:
    store = open_store("file://./store", base_dir=tmp_path)
    put_bytes(store, "k", b"x")
    assert (tmp_path / "store" / "k").read_bytes() == b"x"


def test_open_store_mem_is_shared_by_name() -> None:
    url = f"mem://conformance-{uuid4().hex}"
    first = open_store(url)
    assert isinstance(first, MemStore)
    assert first.url == url
    put_bytes(first, "k", b"x")
    assert open_store(url) is first
    assert read_all(open_store(url), "k") == b"x"
    assert open_store(url + "-other").list() == []
