"""The S3 store: `s3://bucket/prefix` on any S3 API (AWS, OVHcloud, Scaleway, MinIO, Garage...).

Keys are relative to the URL's prefix. Uploads stream through boto3's transfer machinery in
parts of PART_SIZE (larger when the caller expects a very large object) with at most
IN_MEMORY_PARTS parts held at once, and carry a SHA-256
checksum that the server checks on arrival; the checksum the server then reports for the stored
object is compared with the one computed here. Downloads ask the server for the checksum too
(botocore verifies it as the body is read). Throttling and 5xx answers are retried with backoff.

Retention locks are S3 Object Lock retention on the object's current version (the bucket needs
Object Lock, see `tma-ops store init`): the server enforces them with its own clock. On a
versioned bucket delete() removes every version of the key, so deleted data is really gone.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit
from uuid import uuid4

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tma_ops.errors import IntegrityError, InventoryError, StoreError
from tma_ops.model import StoreSpec
from tma_ops.stores import ObjectInfo
from tma_ops.stores.common import (
    active_lock,
    aware_utc,
    check_key,
    check_prefix,
    locked,
    not_found,
    refuse_shortening,
    utc_now,
)
from tma_ops.stores.s3_errors import Where, s3_errors, status_of, translate
from tma_ops.stores.s3_io import DownloadBody, UploadSource, checksum_matches
from tma_ops.streams import Readable

MiB = 1 << 20
PART_SIZE = 8 * MiB  # S3 allows 10,000 parts: 78 GiB, more when a size hint asks for it
MAX_PARTS = 10_000
IN_MEMORY_PARTS = 3  # parts read ahead and in flight: bounds an upload's memory
MAX_ATTEMPTS = 5  # first try included; backoff between tries (botocore's standard mode)
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60
PUT_TOKEN = "tma-put"  # user metadata naming each upload, to find its version again


def client_config(spec: StoreSpec, max_attempts: int = MAX_ATTEMPTS) -> Config:
    return Config(
        region_name=spec.region,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        # Path-style addressing: MinIO, Garage and most self-hosted servers have no per-bucket
        # DNS names. AWS itself is addressed virtual-host style.
        s3={"addressing_style": "path"} if spec.endpoint_url else {},
        # Checksums only where asked for (every put and get here) or required by the API:
        # some S3-compatible servers refuse the checksums newer botocore adds by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=IN_MEMORY_PARTS * 2,
    )


def make_client(spec: StoreSpec, where: Where, max_attempts: int = MAX_ATTEMPTS) -> Any:
    """A boto3 S3 client from the store's settings; boto3's default chain fills the gaps."""
    if bool(spec.access_key_id) != bool(spec.secret_access_key):
        raise InventoryError(
            f"store {spec.url}: expected both access_key_id and secret_access_key "
            "(or secret_access_key_file), or neither (profile or environment credentials)"
        )
    with s3_errors(where, "opening the store"):
        session = boto3.Session(profile_name=spec.profile) if spec.profile else boto3.Session()
        return session.client(
            "s3",
            endpoint_url=spec.endpoint_url,
            aws_access_key_id=spec.access_key_id,
            aws_secret_access_key=spec.secret_access_key,
            verify=spec.ca_bundle if spec.ca_bundle else None,
            config=client_config(spec, max_attempts),
        )


def part_size_for(size_hint: int | None) -> int:
    """PART_SIZE, or the whole MiBs that fit an object of about size_hint in S3's part limit."""
    if size_hint is None:
        return PART_SIZE
    # A margin: the hint is the plain size, and the stored bytes may come out a little larger.
    needed = -(-size_hint * 11 // 10 // MAX_PARTS)
    return max(PART_SIZE, -(-needed // MiB) * MiB)


def transfer_config(part_size: int = PART_SIZE) -> TransferConfig:
    config = TransferConfig(
        multipart_threshold=part_size,
        multipart_chunksize=part_size,
        max_concurrency=IN_MEMORY_PARTS,
        preferred_transfer_client="classic",
    )
    config.max_in_memory_upload_chunks = IN_MEMORY_PARTS  # s3transfer's knob, not in boto3's init
    return config


def split_url(url: str) -> tuple[str, str]:
    """(bucket, root prefix ending in '/' or empty) of s3://bucket/prefix."""
    parts = urlsplit(url)
    prefix = parts.path.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except StoreError as exc:
            raise InventoryError(f"store {url}: invalid prefix in the URL: {exc}") from exc
    return parts.netloc, prefix + "/" if prefix else ""


def retention(head: dict[str, Any]) -> datetime | None:
    until = head.get("ObjectLockRetainUntilDate")
    return until.astimezone(UTC) if isinstance(until, datetime) else None


def whole_seconds_up(when: datetime) -> datetime:
    """S3 servers keep retention dates to the second at best: never round a lock shorter."""
    if when.microsecond:
        return when.replace(microsecond=0) + timedelta(seconds=1)
    return when


class S3Store:
    def __init__(self, spec: StoreSpec, *, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.spec = spec
        self.bucket, self.root = split_url(spec.url)
        self.url = f"s3://{self.bucket}/{self.root}".rstrip("/")
        endpoint = spec.endpoint_url or f"the AWS S3 endpoint of {spec.region or 'the region'}"
        self.where = Where(self.url, self.bucket, endpoint, spec.secret_access_key)
        self.client = make_client(spec, self.where, max_attempts)
        self._bucket_seen = False

    @classmethod
    def open(cls, spec: StoreSpec) -> S3Store:
        return cls(spec)

    # The Store protocol

    def put(self, key: str, source: Readable, size_hint: int | None = None) -> int:
        name = self._name(key)
        self._refuse_locked(key, self._head_or_none(key))
        token = uuid4().hex
        part_size = part_size_for(size_hint)
        upload = UploadSource(source, part_size)
        extra = {"ChecksumAlgorithm": "SHA256", "Metadata": {PUT_TOKEN: token}}
        # The source's own exceptions pass through s3transfer unchanged, after it has aborted
        # the multipart upload: the previous object stays, no new one appears.
        with s3_errors(self.where, f"uploading {key!r}"):
            self.client.upload_fileobj(
                upload, self.bucket, name, ExtraArgs=extra, Config=transfer_config(part_size)
            )
        self._verify_upload(key, token, upload)
        return upload.size

    def get(self, key: str) -> BinaryIO:
        name = self._name(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=name, ChecksumMode="ENABLED")
        except ClientError as exc:
            if status_of(exc) == 404 and _code(exc) != "NoSuchBucket":
                raise not_found(self.url, key) from exc
            raise translate(self.where, exc, f"reading {key!r}") from exc
        except BotoCoreError as exc:
            raise translate(self.where, exc, f"reading {key!r}") from exc
        return cast(BinaryIO, DownloadBody(response["Body"], self.where, key))

    def stat(self, key: str) -> ObjectInfo:
        head = self._head(key)
        return ObjectInfo(key, int(head["ContentLength"]), active_lock(retention(head), utc_now()))

    def delete(self, key: str) -> None:
        current = self._head(key)
        versions = self._versions(self._name(key))
        if not versions or all(version_id == "null" for version_id, _ in versions):
            self._refuse_locked(key, current)  # a bucket without versioning: one object
            self._delete_version(key, None)
            return
        current_id = current.get("VersionId")
        older = [(vid, marker) for vid, marker in versions if vid != current_id]
        self._refuse_locked(key, current)
        for version_id, is_marker in older:
            if not is_marker:
                self._refuse_locked(key, self._head_or_none(key, version_id))
        # The current version last: a failure midway leaves the object as it was.
        for version_id, _ in older:
            self._delete_version(key, version_id)
        if current_id is not None:
            self._delete_version(key, current_id)

    def lock(self, key: str, until: datetime) -> None:
        until = whole_seconds_up(aware_utc(key, until))
        head = self._head(key)
        now = utc_now()
        current = active_lock(retention(head), now)
        refuse_shortening(self.url, key, current, until)
        if until <= now:
            return  # a lock in the past has no effect
        configured = self.spec.object_lock.mode if self.spec.object_lock else "governance"
        mode = head.get("ObjectLockMode") if current else configured.upper()
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._name(key)}
        if head.get("VersionId") and head["VersionId"] != "null":
            params["VersionId"] = head["VersionId"]
        with s3_errors(self.where, f"locking {key!r} (the bucket needs Object Lock)"):
            self.client.put_object_retention(
                **params, Retention={"Mode": mode, "RetainUntilDate": until}
            )

    def list(self, prefix: str = "") -> builtins.list[str]:
        check_prefix(prefix)
        return sorted(self._iter_keys(prefix))

    # Helpers

    def _name(self, key: str) -> str:
        return self.root + check_key(key)

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.root + prefix
        )
        with s3_errors(self.where, f"listing {prefix!r}" if prefix else "listing the store"):
            for page in pages:
                for item in page.get("Contents", ()):
                    key = item["Key"][len(self.root) :]
                    if _is_key(key):  # not folder markers or other tools' dot files
                        yield key

    def _head(self, key: str, version_id: str | None = None) -> dict[str, Any]:
        head = self._head_or_none(key, version_id)
        if head is None:
            raise not_found(self.url, key)
        return head

    def _head_or_none(self, key: str, version_id: str | None = None) -> dict[str, Any] | None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._name(key)}
        if version_id is not None:
            params["VersionId"] = version_id
        try:
            head: dict[str, Any] = self.client.head_object(**params, ChecksumMode="ENABLED")
        except ClientError as exc:
            if status_of(exc) == 404:
                self._require_bucket()
                return None
            # A HEAD error has no body, hence no code: a GET of the same key says what it is.
            raise self._diagnose(key, exc) from exc
        except BotoCoreError as exc:
            raise translate(self.where, exc, f"reading {key!r}") from exc
        self._bucket_seen = True
        return head

    def _diagnose(self, key: str, head_error: ClientError) -> StoreError:
        action = f"reading {key!r}"
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=self._name(key), Range="bytes=0-0"
            )
        except (ClientError, BotoCoreError) as exc:
            return cast(StoreError, translate(self.where, exc, action))
        response["Body"].close()
        return cast(StoreError, translate(self.where, head_error, action))

    def _require_bucket(self) -> None:
        """A 404 from HEAD means no object or no bucket: tell which, once per store."""
        if self._bucket_seen:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if status_of(exc) == 404:
                raise translate(self.where, _no_such_bucket(exc), "opening the bucket") from exc
            return  # 403 and the like: not allowed to ask; the bucket may well exist
        except BotoCoreError as exc:
            raise translate(self.where, exc, "opening the bucket") from exc
        self._bucket_seen = True

    def _refuse_locked(self, key: str, head: dict[str, Any] | None) -> None:
        until = active_lock(retention(head), utc_now()) if head else None
        if until is not None:
            raise locked(self.url, key, until)

    def _versions(self, name: str) -> builtins.list[tuple[str, bool]] | None:
        """(version id, is delete marker) of exactly this object name: every version of it."""
        found: builtins.list[tuple[str, bool]] = []
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=name
        )
        try:
            for page in pages:
                for item in page.get("Versions", ()):
                    if item["Key"] == name:
                        found.append((item["VersionId"], False))
                for item in page.get("DeleteMarkers", ()):
                    if item["Key"] == name:
                        found.append((item["VersionId"], True))
        except ClientError as exc:
            if _code(exc) in {"NotImplemented", "501"}:
                return None
            raise translate(self.where, exc, "listing versions") from exc
        except BotoCoreError as exc:
            raise translate(self.where, exc, "listing versions") from exc
        return found

    def _delete_version(self, key: str, version_id: str | None) -> None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._name(key)}
        if version_id is not None:
            params["VersionId"] = version_id
        with s3_errors(self.where, f"deleting {key!r} (a retention lock also refuses it)"):
            self.client.delete_object(**params)

    def _verify_upload(self, key: str, token: str, upload: UploadSource) -> None:
        head = self._uploaded_version(key, token)
        if head is None:
            return  # replaced by a concurrent put on an unversioned bucket: nothing to check
        if int(head["ContentLength"]) != upload.size:
            raise IntegrityError(
                f"store {self.url}: {key!r} was stored with {head['ContentLength']} bytes, "
                f"{upload.size} were sent"
            )
        reported = head.get("ChecksumSHA256")
        expected, parts = upload.expected_checksum()
        if reported and not checksum_matches(reported, expected, parts):
            count = f"-{parts}" if parts else ""
            raise IntegrityError(
                f"store {self.url}: {key!r} stored with SHA-256 checksum {reported}, "
                f"expected {expected}{count} from the bytes sent"
            )

    def _uploaded_version(self, key: str, token: str) -> dict[str, Any] | None:
        """HEAD of the version this put created, found by its token if another put followed."""
        head = self._head_or_none(key)
        if head is not None and head.get("Metadata", {}).get(PUT_TOKEN) == token:
            return head
        for version_id, is_marker in self._versions(self._name(key)) or []:
            if not is_marker:
                older = self._head_or_none(key, version_id)
                if older is not None and older.get("Metadata", {}).get(PUT_TOKEN) == token:
                    return older
        return None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _no_such_bucket(exc: ClientError) -> ClientError:
    response = dict(exc.response)
    response["Error"] = {"Code": "NoSuchBucket", "Message": "The specified bucket does not exist"}
    return ClientError(cast(Any, response), exc.operation_name)


def _is_key(key: str) -> bool:
    try:
        check_key(key)
    except StoreError:
        return False
    return True
