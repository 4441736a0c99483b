"""`tma-ops store init`: prepare a site's store once, before its first snapshot.

For an s3:// store, in this order, each step skipped when already in place:
- bucket: created when missing (with Object Lock when `object_lock` is configured: most servers
  only offer Object Lock to buckets created with it);
- versioning: enabled (Object Lock needs it; a deleted or overwritten object stays recoverable
  until tma-ops prunes it, and tma-ops deletes every version of what it prunes);
- object lock: enabled when configured, with NO default retention: tma-ops sets the retention
  of each snapshot object itself (mode and days from the inventory);
- lifecycle: a rule under the store's prefix aborting multipart uploads left incomplete by a
  killed run after ABORT_AFTER_DAYS days, so their parts stop costing storage. Existing rules
  are kept. No rule expiring noncurrent versions is added: that would delete data behind
  tma-ops' back; retention is tma-ops' job (prune).
For a file:// store: the directory is created; Object Lock does not exist there.

Each step gives a SetupResult: done, already (nothing to change), skipped (not asked for or not
applicable) or failed with the reason; a failed step never stops the steps that do not need it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from tma_ops.model import StoreSpec
from tma_ops.stores import file_url_path
from tma_ops.stores.s3 import S3Store
from tma_ops.stores.s3_errors import error_code, status_of, translate

ABORT_AFTER_DAYS = 7
RULE_ID = "tma-ops-abort-incomplete-uploads"
Status = Literal["done", "already", "skipped", "failed"]


@dataclass(frozen=True)
class SetupResult:
    setting: str
    status: Status
    detail: str = ""


def init_store(spec: StoreSpec) -> list[SetupResult]:
    if spec.scheme == "file":
        return init_file_store(spec)
    if spec.scheme == "s3":
        return init_s3_store(S3Store(spec))
    return [SetupResult("store", "skipped", f"{spec.scheme}:// stores need no preparation")]


def init_file_store(spec: StoreSpec) -> list[SetupResult]:
    path = file_url_path(spec.url, None)
    try:
        existed = path.is_dir()
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [SetupResult("directory", "failed", f"{path}: {exc.strerror or exc}")]
    lock_detail = (
        "Object Lock is not available on file:// stores: tma-ops keeps its retention records "
        "beside the snapshots, where anyone with write access can remove them; use an s3:// "
        "store with Object Lock for copies nobody can delete"
    )
    return [
        SetupResult("directory", "already" if existed else "done", str(path)),
        SetupResult("object lock", "failed" if spec.object_lock else "skipped", lock_detail),
    ]


def init_s3_store(store: S3Store) -> list[SetupResult]:
    results = [_step(store, "bucket", _bucket)]
    if results[0].status == "failed":
        reason = "not attempted: the bucket is not available"
        settings = ["versioning", "object lock", "lifecycle"]
        return results + [SetupResult(setting, "failed", reason) for setting in settings]
    results.append(_step(store, "versioning", _versioning))
    if store.spec.object_lock is None:
        detail = "not configured (object_lock in the inventory enables it)"
        results.append(SetupResult("object lock", "skipped", detail))
    else:
        results.append(_step(store, "object lock", _object_lock))
    results.append(_step(store, "lifecycle", _lifecycle))
    return results


def _step(
    store: S3Store, setting: str, action: Callable[[S3Store], tuple[Status, str]]
) -> SetupResult:
    try:
        status, detail = action(store)
    except (ClientError, BotoCoreError) as exc:
        message = str(translate(store.where, exc, f"setting {setting}"))
        return SetupResult(setting, "failed", message.removeprefix(f"store {store.url}: "))
    return SetupResult(setting, status, detail)


def _bucket(store: S3Store) -> tuple[Status, str]:
    try:
        store.client.head_bucket(Bucket=store.bucket)
        return "already", f"bucket {store.bucket!r} exists"
    except ClientError as exc:
        if status_of(exc) != 404:
            raise
    params: dict[str, Any] = {"Bucket": store.bucket}
    if store.spec.object_lock is not None:
        params["ObjectLockEnabledForBucket"] = True
    region = store.client.meta.region_name
    if region and region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    store.client.create_bucket(**params)
    lock = " with Object Lock" if store.spec.object_lock is not None else ""
    return "done", f"bucket {store.bucket!r} created{lock}"


def _versioning(store: S3Store) -> tuple[Status, str]:
    answer = store.client.get_bucket_versioning(Bucket=store.bucket)
    if answer.get("Status") == "Enabled":
        return "already", "enabled"
    store.client.put_bucket_versioning(
        Bucket=store.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    return "done", "enabled"


def _object_lock(store: S3Store) -> tuple[Status, str]:
    lock = store.spec.object_lock
    assert lock is not None
    per_object = f"tma-ops sets {lock.mode} retention of {lock.days} days on each snapshot object"
    try:
        answer = store.client.get_object_lock_configuration(Bucket=store.bucket)
        config = answer.get("ObjectLockConfiguration", {})
    except ClientError as exc:
        if error_code(exc) != "ObjectLockConfigurationNotFoundError":
            raise
        config = {}
    if config.get("ObjectLockEnabled") == "Enabled":
        default = config.get("Rule", {}).get("DefaultRetention")
        note = f"; note: the bucket also has a default retention {default}" if default else ""
        return "already", f"enabled; {per_object}{note}"
    store.client.put_object_lock_configuration(
        Bucket=store.bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
    )
    return "done", f"enabled without default retention; {per_object}"


def _lifecycle(store: S3Store) -> tuple[Status, str]:
    try:
        rules = store.client.get_bucket_lifecycle_configuration(Bucket=store.bucket)["Rules"]
    except ClientError as exc:
        if error_code(exc) != "NoSuchLifecycleConfiguration":
            raise
        rules = []
    existing = _abort_rule_covering(rules, store.root)
    if existing is not None:
        days = existing["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        return (
            "already",
            f"rule {existing.get('ID', '?')!r} aborts incomplete uploads after {days} days",
        )
    rule_id = f"{RULE_ID}:{store.root}" if store.root else RULE_ID
    ours = {
        "ID": rule_id[:255],
        "Status": "Enabled",
        "Filter": {"Prefix": store.root},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_AFTER_DAYS},
    }
    store.client.put_bucket_lifecycle_configuration(
        Bucket=store.bucket, LifecycleConfiguration={"Rules": [*rules, ours]}
    )
    where = f"under {store.root!r}" if store.root else "in the bucket"
    return "done", f"incomplete multipart uploads {where} aborted after {ABORT_AFTER_DAYS} days"


def _abort_rule_covering(rules: list[dict[str, Any]], root: str) -> dict[str, Any] | None:
    for rule in rules:
        if rule.get("Status") != "Enabled" or "AbortIncompleteMultipartUpload" not in rule:
            continue
        rule_filter = rule.get("Filter", {})
        if set(rule_filter) - {"Prefix"}:
            continue  # tags or sizes: does not cover every upload
        if root.startswith(rule_filter.get("Prefix", rule.get("Prefix", ""))):
            return rule
    return None
