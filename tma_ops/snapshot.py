"""Snapshots in the open format: db.<ext>.zst + files.tar.zst + manifest.json, streamed to a store.

    <site>/snapshots/<id>/manifest.json
    <site>/snapshots/<id>/db.sqlite.zst
    <site>/snapshots/<id>/files.tar.zst

The manifest is written last: a snapshot without one is incomplete and never listed.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, NoReturn

import zstandard

from tma_ops.config import Environment, Site
from tma_ops.dbs import database_of
from tma_ops.errors import IntegrityError, ObjectNotFound, SnapshotError
from tma_ops.executors import Executor, open_executor
from tma_ops.faults import pause_point
from tma_ops.progress import SILENT, TransferProgress
from tma_ops.stacks.archive import ArchiveStack
from tma_ops.stores import Store
from tma_ops.streams import HashingReader, compressing, decompressing

FORMAT_VERSION = 1
# Leftovers of interrupted updates and restores are never part of a snapshot.
TAR_EXCLUDES = ["--exclude=.tma-*", "--exclude=*.tma-restore"]


@dataclass(frozen=True)
class Part:
    key: str
    size: int
    sha256: str
    plain_size: int
    plain_sha256: str


@dataclass(frozen=True)
class Manifest:
    site: str
    environment: str
    snapshot_id: str
    created_at: str
    database_engine: str
    components: dict[str, str]
    parts: dict[str, Part]
    reason: str = ""
    parent: str | None = None
    format: int = FORMAT_VERSION
    tool: dict[str, str] = field(default_factory=lambda: {"name": "tma-ops"})

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, key: str) -> Manifest:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT_VERSION:
                raise SnapshotError(f"{key}: unsupported snapshot format {data.get('format')!r}")
            data["parts"] = {name: Part(**part) for name, part in data["parts"].items()}
            return cls(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise SnapshotError(f"{key}: not a valid snapshot manifest ({exc})") from exc

    @property
    def total_size(self) -> int:
        return sum(part.size for part in self.parts.values())


def snapshots_prefix(site: str) -> str:
    return f"{site}/snapshots/"


def manifest_key(site: str, snapshot_id: str) -> str:
    return f"{snapshots_prefix(site)}{snapshot_id}/manifest.json"


def new_snapshot_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def stack_of(site: Site) -> ArchiveStack:
    stack = site.stack
    return ArchiveStack(Path(stack.channel), stack.components_dir, stack.version_file)


def create_snapshot(
    site: Site,
    env_name: str,
    store: Store,
    *,
    reason: str = "",
    progress: TransferProgress = SILENT,
) -> Manifest:
    env = site.environment(env_name)
    executor = open_executor(env.executor)
    database, db_executor = database_of(env)
    snapshot_id = new_snapshot_id()
    prefix = f"{snapshots_prefix(site.name)}{snapshot_id}/"
    components = {c.name: c.version for c in stack_of(site).inventory(executor, env.root)}

    db_key = f"{prefix}db.{database.extension}.zst"
    db_part = _upload(store, db_key, lambda: database.dump(db_executor), progress, None)
    pause_point("snapshot:after-db")
    files_key = f"{prefix}files.tar.zst"
    files_part = _upload(
        store,
        files_key,
        lambda: executor.stream_out(tar_create(env)),
        progress,
        tree_size(executor, env.root),
    )
    manifest = Manifest(
        site=site.name,
        environment=env_name,
        snapshot_id=snapshot_id,
        # Microseconds: snapshots taken within the same second must still sort in order.
        created_at=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        database_engine=database.name,
        components=components,
        parts={"db": db_part, "files": files_part},
        reason=reason,
    )
    store.put(manifest_key(site.name, snapshot_id), io.BytesIO(manifest.to_json()))
    return manifest


def tar_create(env: Environment) -> list[str]:
    return ["tar", "-C", env.root, "--numeric-owner", *TAR_EXCLUDES, "-cf", "-", "."]


def _upload(
    store: Store,
    key: str,
    open_source: Callable[[], AbstractContextManager[BinaryIO]],
    progress: TransferProgress,
    total: int | None,
) -> Part:
    label = key.rsplit("/", 1)[-1]
    with progress.transfer(f"upload {label}", total) as advance, open_source() as source:
        plain = HashingReader(source, _first_chunk_pauses(f"upload:{label}", advance))
        stored = HashingReader(compressing(plain))
        size = store.put(key, stored)
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


def tree_size(executor: Executor, root: str) -> int | None:
    """Apparent size of a tree in bytes (for progress and disk checks), None when unknown."""
    result = executor.run(["du", "-sb", root], check=False)
    head = result.out.split("\t", 1)[0]
    return int(head) if result.ok and head.isdigit() else None


def load_manifest(store: Store, site: str, snapshot_id: str) -> Manifest:
    key = manifest_key(site, snapshot_id)
    try:
        with store.get(key) as stream:
            return Manifest.from_json(stream.read(), key)
    except ObjectNotFound as exc:
        raise SnapshotError(
            f"site {site!r} has no snapshot {snapshot_id!r} in {store.url}"
        ) from exc


def list_snapshots(store: Store, site: str) -> list[Manifest]:
    keys = [k for k in store.list(snapshots_prefix(site)) if k.endswith("/manifest.json")]
    manifests = []
    for key in keys:
        with store.get(key) as stream:
            manifests.append(Manifest.from_json(stream.read(), key))
    # Oldest first by creation time: ids of the same second differ only by their random part.
    return sorted(manifests, key=lambda m: (created_at(m), m.snapshot_id))


def resolve_snapshot(store: Store, site: str, wanted: str) -> Manifest:
    """`latest`, a full id, or an unambiguous id prefix."""
    snapshots = list_snapshots(store, site)
    if not snapshots:
        raise SnapshotError(f"site {site!r} has no snapshot in {store.url}")
    if wanted == "latest":
        return snapshots[-1]
    matches = [m for m in snapshots if m.snapshot_id.startswith(wanted)]
    if len(matches) != 1:
        what = "no snapshot matches" if not matches else f"{len(matches)} snapshots match"
        raise SnapshotError(f"site {site!r}: {what} {wanted!r}; see `tma-ops snapshots list SITE`")
    return matches[0]


def verify_snapshot(store: Store, manifest: Manifest, progress: TransferProgress = SILENT) -> None:
    """Read every stored part back and check both digests (stored and plain bytes)."""
    for name, part in manifest.parts.items():
        with (
            progress.transfer(f"verify {name}", part.size) as advance,
            store.get(part.key) as stream,
        ):
            stored = HashingReader(stream, advance)
            plain = HashingReader(decompressing(stored))
            try:
                plain.drain()
            except Exception as exc:
                raise_part_failure(part, stored, exc)
            stored.drain()
        check_part_digests(part, stored, plain)


def check_part_digests(part: Part, stored: HashingReader, plain: HashingReader) -> None:
    _check_stored_digest(part, stored)
    if plain.sha256 != part.plain_sha256 or plain.size != part.plain_size:
        raise IntegrityError(f"{part.key}: content does not match the manifest after decompression")


def _check_stored_digest(part: Part, stored: HashingReader) -> None:
    if stored.sha256 != part.sha256 or stored.size != part.size:
        raise IntegrityError(
            f"{part.key}: stored bytes do not match the manifest "
            f"(sha256 {stored.sha256[:12]}…, expected {part.sha256[:12]}…)"
        )


def raise_part_failure(part: Part, stored: HashingReader, exc: Exception) -> NoReturn:
    """Re-raise a failure met while decompressing or consuming a part, with its real cause.

    Damaged stored bytes make the decompressor, tar or the database check fail before the
    digests can be compared; such a failure is reported as an IntegrityError naming the key.
    A failure of the store itself, or one with intact stored bytes, is raised unchanged.
    """
    try:
        stored.drain()
    except Exception:
        raise exc  # noqa: B904 - the store failed too: the first failure is the one to report
    try:
        _check_stored_digest(part, stored)
    except IntegrityError as mismatch:
        raise mismatch from exc
    if isinstance(exc, zstandard.ZstdError):
        raise IntegrityError(f"{part.key}: cannot be decompressed ({exc})") from exc
    raise exc


def delete_snapshot(store: Store, manifest: Manifest) -> None:
    """Manifest first: an interrupted delete leaves unlisted parts, never a listed broken one."""
    store.delete(manifest_key(manifest.site, manifest.snapshot_id))
    for part in manifest.parts.values():
        store.delete(part.key)


def created_at(manifest: Manifest) -> datetime:
    return datetime.fromisoformat(manifest.created_at.replace("Z", "+00:00"))
