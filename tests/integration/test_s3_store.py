"""What only the S3 store has: parts and checksums, bounded memory, the URL's prefix,
pagination, versions, Object Lock enforced by the server, retries. Against moto_server over HTTP
(harness), through a fault-injecting proxy where a test needs one.

The shared behaviour (round trips, listing, locks, key rules) is in test_store_conformance.py;
the errors of a misconfigured or unreachable service in test_s3_errors.py.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import re
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harness.s3proxy import FaultProxy
from harness.s3server import MotoServer, client, free_port, s3_spec

from tma_ops.errors import IntegrityError, ObjectLocked, StoreError
from tma_ops.model import ObjectLock
from tma_ops.stores import open_store
from tma_ops.stores.s3 import PART_SIZE, S3Store, part_size_for
from tma_ops.stores.s3_io import checksum_matches

pytestmark = pytest.mark.integration

MiB = 1 << 20
PREFIX = "tenant/backups"
KEY = "site/snapshots/20300101-abc123/files.tar.zst"


class Generated(io.RawIOBase):
    """`size` pseudo-random bytes (the same for a seed, however read), made on demand;
    optionally raising once `fail_after` bytes were given."""

    def __init__(self, size: int, seed: int = 0, fail_after: int | None = None) -> None:
        self._left = size
        self._rng = random.Random(seed)
        self._pending = b""
        self._fail_after = fail_after
        self._given = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._fail_after is not None and self._given >= self._fail_after:
            raise RuntimeError("source broke")
        wanted = MiB if size is None or size < 0 else size
        while len(self._pending) < wanted and self._left > 0:
            block = self._rng.randbytes(min(MiB, self._left))
            self._left -= len(block)
            self._pending += block
        data, self._pending = self._pending[:wanted], self._pending[wanted:]
        self._given += len(data)
        self.sha256.update(data)
        return data


def put_bytes(store: S3Store, key: str, data: bytes) -> int:
    return store.put(key, io.BytesIO(data))


def read_all(store: S3Store, key: str) -> bytes:
    with store.get(key) as stream:
        return stream.read()


def raw(store: S3Store) -> Any:
    return client(store.spec.endpoint_url or "")


def versions_of(store: S3Store, key: str) -> list[tuple[str, bool]]:
    listing = raw(store).list_object_versions(Bucket=store.bucket, Prefix=store.root + key)
    return [
        (item["VersionId"], marker)
        for marker, items in (
            (False, listing.get("Versions", [])),
            (True, listing.get("DeleteMarkers", [])),
        )
        for item in items
        if item["Key"] == store.root + key
    ]


def tamper(store: S3Store, operation: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Change what the server answered to `operation` before the store sees it."""

    def handler(parsed: dict[str, Any], **_: Any) -> None:
        change(parsed)

    store.client.meta.events.register(f"after-call.s3.{operation}", handler)


@pytest.fixture
def store(s3_server: MotoServer, s3_bucket: str) -> S3Store:
    return S3Store.open(s3_spec(s3_server.endpoint, s3_bucket, prefix=PREFIX))


# Parts and checksums


def test_multipart_object_round_trips_with_its_composite_checksum(store: S3Store) -> None:
    size = 2 * PART_SIZE + 3 * MiB + 5
    source = Generated(size, seed=1)
    assert store.put(KEY, source) == size
    head = raw(store).head_object(Bucket=store.bucket, Key=store.root + KEY, ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-3")  # three parts went up
    again = Generated(size, seed=1)
    data = b"".join(again.read(PART_SIZE) for _ in range(3))
    digests = b"".join(
        hashlib.sha256(data[i : i + PART_SIZE]).digest() for i in range(0, size, PART_SIZE)
    )
    composite = base64.b64encode(hashlib.sha256(digests).digest()).decode()
    assert checksum_matches(head["ChecksumSHA256"], composite, 3)
    with store.get(KEY) as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == source.sha256.hexdigest()


def test_a_size_hint_beyond_the_part_limit_makes_the_parts_larger(store: S3Store) -> None:
    hint = 100 * PART_SIZE * 1000  # 781 GiB: 8 MiB parts could not hold it in 10,000 parts
    part = part_size_for(hint)
    assert part > PART_SIZE
    size = 2 * part + 5
    source = Generated(size, seed=2)
    assert store.put(KEY, source, size_hint=hint) == size
    head = raw(store).head_object(Bucket=store.bucket, Key=store.root + KEY)
    assert head["ETag"].strip('"').endswith("-3")  # two whole parts of the larger size, and 5 B
    with store.get(KEY) as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == source.sha256.hexdigest()


@pytest.mark.parametrize("size", [5_000, PART_SIZE + 1], ids=["single-part", "multipart"])
def test_a_checksum_the_server_reports_wrong_is_an_integrity_error(
    store: S3Store, size: int
) -> None:
    def wrong(parsed: dict[str, Any]) -> None:
        if "ChecksumSHA256" in parsed:
            parsed["ChecksumSHA256"] = base64.b64encode(b"\0" * 32).decode()

    tamper(store, "HeadObject", wrong)
    with pytest.raises(IntegrityError) as raised:
        store.put(KEY, Generated(size))
    assert repr(KEY) in str(raised.value) and "SHA-256" in str(raised.value)


def test_checksum_comparison_accepts_the_part_count_suffix() -> None:
    assert checksum_matches("abc=", "abc=", None)
    assert checksum_matches("abc=-3", "abc=", 3)
    assert checksum_matches("abc=", "abc=", 3)  # moto and some servers leave out "-N"
    assert not checksum_matches("abc=-2", "abc=", 3)
    assert not checksum_matches("abd=", "abc=", None)


def test_bytes_corrupted_on_the_way_back_are_an_integrity_error(
    s3_bucket: str, fault_proxy: FaultProxy
) -> None:
    store = S3Store.open(s3_spec(fault_proxy.endpoint, s3_bucket, prefix=PREFIX))
    put_bytes(store, KEY, b"precious bytes" * 1000)
    fault_proxy.corrupt_next("GET")
    with pytest.raises(IntegrityError, match="SHA-256"), store.get(KEY) as stream:
        stream.read()


def test_a_put_that_breaks_midway_aborts_its_multipart_upload(store: S3Store) -> None:
    put_bytes(store, KEY, b"v1")
    with pytest.raises(RuntimeError, match="source broke"):
        store.put(KEY, Generated(3 * PART_SIZE, fail_after=PART_SIZE + 4 * MiB))
    assert read_all(store, KEY) == b"v1"
    assert store.list() == [KEY]
    uploads = raw(store).list_multipart_uploads(Bucket=store.bucket)
    assert uploads.get("Uploads", []) == []


def test_memory_stays_bounded_while_a_large_stream_goes_up(store: S3Store) -> None:
    size = 200 * MiB
    tracemalloc.start()
    try:
        assert store.put(KEY, Generated(size, seed=7)) == size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store.stat(KEY).size == size
    # IN_MEMORY_PARTS parts read ahead or in flight, one more being assembled (held twice while
    # its 1 MiB reads are joined): about 80 MiB here, whatever the object's size.
    assert peak < 6 * PART_SIZE, f"Python allocations peaked at {peak / MiB:.0f} MiB"


# Keys, listing, versions


def test_keys_are_relative_to_the_url_prefix(s3_server: MotoServer, store: S3Store) -> None:
    put_bytes(store, "a/b", b"x")
    s3 = raw(store)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=store.bucket)["Contents"]] == [
        f"{PREFIX}/a/b"
    ]
    s3.put_object(Bucket=store.bucket, Key=f"{PREFIX}/folder/", Body=b"")  # a console's folder
    s3.put_object(Bucket=store.bucket, Key=f"{PREFIX}/.hidden", Body=b"")
    s3.put_object(Bucket=store.bucket, Key=f"{PREFIX}-other/c", Body=b"")
    assert store.list() == ["a/b"]
    neighbour = S3Store.open(s3_spec(s3_server.endpoint, store.bucket, prefix=f"{PREFIX}-other"))
    assert neighbour.list() == ["c"]
    whole = open_store(s3_spec(s3_server.endpoint, store.bucket, prefix=""))
    assert isinstance(whole, S3Store) and whole.url == f"s3://{store.bucket}"
    assert whole.list(f"{PREFIX}/") == [f"{PREFIX}/a/b"]


def test_list_pages_through_more_than_a_thousand_keys(store: S3Store) -> None:
    keys = [f"many/{i:05d}" for i in range(1_100)]
    s3 = raw(store)

    def put(key: str) -> None:
        s3.put_object(Bucket=store.bucket, Key=store.root + key, Body=b"")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))
    put("other")
    pages: list[int] = []
    store.client.meta.events.register(
        "after-call.s3.ListObjectsV2", lambda parsed, **_: pages.append(parsed.get("KeyCount", 0))
    )
    assert store.list("many/") == keys
    assert len(pages) >= 2 and sum(pages) == len(keys)
    assert len(store.list()) == len(keys) + 1


def test_delete_removes_every_version_and_delete_marker(store: S3Store) -> None:
    for data in (b"v1", b"v2"):
        put_bytes(store, KEY, data)
    raw(store).delete_object(Bucket=store.bucket, Key=store.root + KEY)  # a delete marker
    put_bytes(store, KEY, b"v3")
    put_bytes(store, KEY + ".sha256", b"sibling")
    assert [marker for _, marker in versions_of(store, KEY)].count(False) == 3

    store.delete(KEY)
    assert versions_of(store, KEY) == []
    assert len(versions_of(store, KEY + ".sha256")) == 1
    assert store.list() == [KEY + ".sha256"]


# Object Lock


@pytest.mark.parametrize("mode", ["governance", "compliance"])
def test_object_lock_is_enforced_by_the_server(
    s3_server: MotoServer, s3_bucket: str, mode: str
) -> None:
    spec = s3_spec(s3_server.endpoint, s3_bucket, prefix=PREFIX, object_lock=ObjectLock(mode=mode))
    store = S3Store.open(spec)
    put_bytes(store, KEY, b"v1")
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    store.lock(KEY, until)
    head = raw(store).head_object(Bucket=s3_bucket, Key=store.root + KEY)
    assert head["ObjectLockMode"] == mode.upper()
    assert store.stat(KEY).locked_until == until

    with pytest.raises(ObjectLocked) as refused_delete:
        store.delete(KEY)
    with pytest.raises(ObjectLocked) as refused_put:
        put_bytes(store, KEY, b"v2")
    for message in (str(refused_delete.value), str(refused_put.value)):
        assert repr(KEY) in message and until.isoformat() in message
    with pytest.raises(Exception, match="AccessDenied"):  # the server, not only the store
        raw(store).delete_object(
            Bucket=s3_bucket, Key=store.root + KEY, VersionId=head["VersionId"]
        )
    assert read_all(store, KEY) == b"v1"
    assert len(versions_of(store, KEY)) == 1


def test_delete_is_refused_whole_while_an_older_version_is_locked(store: S3Store) -> None:
    put_bytes(store, KEY, b"v1")
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    store.lock(KEY, until)
    raw(store).put_object(Bucket=store.bucket, Key=store.root + KEY, Body=b"v2")  # not via store
    with pytest.raises(ObjectLocked, match=re.escape(until.isoformat())):
        store.delete(KEY)
    assert len(versions_of(store, KEY)) == 2
    assert read_all(store, KEY) == b"v2"


def test_lock_without_object_lock_on_the_bucket_says_so(s3_server: MotoServer) -> None:
    bucket = "plain-" + str(free_port())
    raw_client = client(s3_server.endpoint)
    raw_client.create_bucket(Bucket=bucket)
    store = S3Store.open(s3_spec(s3_server.endpoint, bucket))
    put_bytes(store, KEY, b"x")
    with pytest.raises(StoreError, match="Object Lock") as raised:
        store.lock(KEY, datetime.now(UTC) + timedelta(days=1))
    assert store.url in str(raised.value)
    store.delete(KEY)  # versioning off: the plain delete
    assert store.list() == []


# Retries


@pytest.mark.parametrize("size", [1_000, PART_SIZE + MiB], ids=["single-part", "multipart"])
def test_throttled_puts_are_retried(s3_bucket: str, fault_proxy: FaultProxy, size: int) -> None:
    store = S3Store.open(s3_spec(fault_proxy.endpoint, s3_bucket, prefix=PREFIX))
    source = Generated(size, seed=3)
    fault_proxy.fail_next(3, "PUT")
    assert store.put(KEY, source) == size
    puts = [status for method, _, status in fault_proxy.seen if method == "PUT"]
    assert puts[:4] == [503, 503, 503, 200], fault_proxy.seen
    with store.get(KEY) as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == source.sha256.hexdigest()


def test_a_server_that_keeps_failing_is_a_clear_error(
    s3_bucket: str, fault_proxy: FaultProxy
) -> None:
    store = S3Store(s3_spec(fault_proxy.endpoint, s3_bucket, prefix=PREFIX), max_attempts=2)
    fault_proxy.fail_next(5, "PUT")
    with pytest.raises(StoreError) as raised:
        put_bytes(store, KEY, b"x")
    message = str(raised.value)
    assert store.url in message and "SlowDown" in message and "2 attempt(s)" in message
    assert store.list() == []
