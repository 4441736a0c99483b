"""Snapshots in the open format: a database dump, a files archive and manifest.json.

    <site>/snapshots/<id>/manifest.json
    <site>/snapshots/<id>/db.<ext>.zst[.age]
    <site>/snapshots/<id>/files.tar.zst[.age]        (full)
    <site>/snapshots/<id>/files.<n>.tar.zst[.age]    (increment n of a chain)

The manifest is written last: a snapshot without one is incomplete and never listed. It stays in
clear, so listing and checking stored digests need no private key.
"""

from __future__ import annotations

import io
import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from tma_ops.config import Site
from tma_ops.dbs import database_of
from tma_ops.errors import ObjectNotFound, SnapshotError, StoreError
from tma_ops.executors import Executor, open_executor
from tma_ops.faults import pause_point
from tma_ops.files_archive import (
    FULL_FORMAT,
    INCREMENTAL_FORMAT,
    FilesPlan,
    adopt_state,
    archive_stream,
    current_directory_ids,
    discard_state,
    plan_files,
    read_state,
    renamed_directories,
    state_digest,
    state_path,
)
from tma_ops.model import ObjectLock
from tma_ops.parts import Part, Sealing, check_stored_bytes, reading_part, upload_part
from tma_ops.progress import SILENT, TransferProgress
from tma_ops.stacks.registry import driver_for
from tma_ops.stores import Store

FORMAT_VERSION = 1


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
    # Increments only: the snapshots whose files archives come before this one, oldest first.
    chain: list[str] = field(default_factory=list)
    level: int = 0
    files_format: str = FULL_FORMAT
    files_state_sha256: str | None = None
    encryption: str | None = None
    # Rows of the site's user-data tables when the dump was taken: what a rollback would lose.
    user_data_rows: dict[str, int] = field(default_factory=dict)
    dumped_at: str | None = None  # when the database dump started (UTC, ISO 8601)
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
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
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
    sealing = Sealing.of(site.store.encryption)
    snapshot_id = new_snapshot_id()
    prefix = f"{snapshots_prefix(site.name)}{snapshot_id}/"
    components = {c.name: c.version for c in driver_for(site.stack).inventory(env.code())}
    earlier = list_snapshots(store, site.name)
    plan = plan_files(
        earlier, env_name, state_digest(executor, state_path(env.root)), site.store.full_every
    )

    dumped_at = _utc_now()
    user_data_rows = {t.table: database.count_rows(db_executor, t.table) for t in site.user_data}
    db_part = upload_part(
        store,
        sealing.key_for(f"{prefix}db.{database.extension}.zst"),
        lambda: database.dump(db_executor),
        sealing=sealing,
        progress=progress,
        total=None,
    )
    pause_point("snapshot:after-db")
    work_state = f"{state_path(env.root)}.{snapshot_id}"
    try:
        plan, files_part = _upload_files(
            executor, env.root, store, prefix, plan, work_state, sealing, progress
        )
        manifest = Manifest(
            site=site.name,
            environment=env_name,
            snapshot_id=snapshot_id,
            created_at=_utc_now(),
            database_engine=database.name,
            components=components,
            parts={"db": db_part, "files": files_part},
            reason=reason,
            parent=plan.parent,
            chain=_chain_before(earlier, plan),
            level=plan.level,
            files_format=INCREMENTAL_FORMAT,
            files_state_sha256=state_digest(executor, work_state),
            encryption="age" if sealing.encrypts else None,
            user_data_rows=user_data_rows,
            dumped_at=dumped_at,
        )
        lock_objects(store, site.store.object_lock, [p.key for p in manifest.parts.values()])
        store.put(manifest_key(site.name, snapshot_id), io.BytesIO(manifest.to_json()))
        lock_objects(store, site.store.object_lock, [manifest_key(site.name, snapshot_id)])
    except BaseException:
        discard_state(executor, work_state)
        raise
    adopt_state(executor, env.root, work_state)
    return manifest


def _utc_now() -> str:
    # Microseconds: snapshots taken within the same second must still sort in order.
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _upload_files(
    executor: Executor,
    root: str,
    store: Store,
    prefix: str,
    plan: FilesPlan,
    work_state: str,
    sealing: Sealing,
    progress: TransferProgress,
) -> tuple[FilesPlan, Part]:
    """The files archive as planned; an increment in which tar saw renames is redone in full."""
    total = tree_size(executor, root)

    def upload(files: FilesPlan) -> Part:
        return upload_part(
            store,
            sealing.key_for(prefix + files.key_stem),
            lambda: archive_stream(executor, root, files, work_state),
            sealing=sealing,
            progress=progress,
            total=total,
        )

    part = upload(plan)
    if plan.level == 0:
        return plan, part
    state = read_state(executor, state_path(root))
    if not renamed_directories(state, current_directory_ids(executor, root)):
        return plan, part
    store.delete(part.key)
    full = FilesPlan(None, 0)
    return full, upload(full)


def lock_objects(store: Store, object_lock: ObjectLock | None, keys: list[str]) -> None:
    """Put the configured retention on a snapshot's objects; parts before the manifest, so that
    a listed snapshot is always a protected one."""
    if object_lock is None:
        return
    until = datetime.now(UTC) + timedelta(days=object_lock.days)
    for key in keys:
        try:
            store.lock(key, until)
        except StoreError as exc:
            raise StoreError(
                f"{key}: cannot set the Object Lock retention ({exc}); "
                "run `tma-ops store init SITE` or remove object_lock from the store settings"
            ) from exc


def _chain_before(earlier: list[Manifest], plan: FilesPlan) -> list[str]:
    if plan.parent is None:
        return []
    parent = next(m for m in earlier if m.snapshot_id == plan.parent)
    return [*parent.chain, plan.parent]


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


def verify_snapshot(
    store: Store,
    manifest: Manifest,
    progress: TransferProgress = SILENT,
    sealing: Sealing | None = None,
) -> None:
    """Read every stored part back and check its digests.

    The stored bytes' digest needs no key; the plain bytes' digest is checked too when the parts
    are in clear or the private key is at hand.
    """
    sealing = sealing or Sealing()
    for name, part in manifest.parts.items():
        label = f"verify {name}"
        if manifest.encryption and not sealing.identity_file:
            check_stored_bytes(store, part, progress, label)
            continue
        with reading_part(store, part, sealing, progress, label):
            pass


def chain_of(store: Store, manifest: Manifest) -> list[Manifest]:
    """The manifests whose files archives rebuild this snapshot's tree, oldest first."""
    chain = []
    for snapshot_id in manifest.chain:
        try:
            chain.append(load_manifest(store, manifest.site, snapshot_id))
        except SnapshotError as exc:
            raise SnapshotError(
                f"snapshot {manifest.snapshot_id} is an increment of {snapshot_id}, which "
                f"is missing from {store.url}; it cannot be restored"
            ) from exc
    return [*chain, manifest]


def delete_snapshot(store: Store, manifest: Manifest) -> None:
    """Manifest first: an interrupted delete leaves unlisted parts, never a listed broken one."""
    store.delete(manifest_key(manifest.site, manifest.snapshot_id))
    for part in manifest.parts.values():
        store.delete(part.key)


def created_at(manifest: Manifest) -> datetime:
    return datetime.fromisoformat(manifest.created_at.replace("Z", "+00:00"))
