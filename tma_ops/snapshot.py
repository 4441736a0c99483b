"""Snapshots in the open format: a database dump, a files archive and manifest.json.

    <site>/snapshots/<id>/manifest.json
    <site>/snapshots/<id>/db.<ext>.<n>.zst[.age]     (the dump's chunks not in the parent)
    <site>/snapshots/<id>/files.tar.zst[.age]        (full)
    <site>/snapshots/<id>/files.<n>.tar.zst[.age]    (increment n of a chain)

The manifest is written last: a snapshot without one is incomplete and never listed. It stays in
clear, so listing and checking stored digests need no private key. The dump is cut into
chunks by content (`chunked_parts`): an increment names its parent's unchanged chunks. Format 1
(a dump in one object) is still read.
"""

from __future__ import annotations

import io
import json
import secrets
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta

from tma_ops.chunked_parts import chunk_index, upload_chunked_part
from tma_ops.config import Site
from tma_ops.dbs import database_of
from tma_ops.errors import ObjectLocked, ObjectNotFound, SnapshotError, StoreError
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
from tma_ops.parts import (
    Part,
    Sealing,
    check_stored_bytes,
    check_stored_digest,
    reading_part,
    upload_part,
)
from tma_ops.progress import SILENT, TransferProgress
from tma_ops.stacks.registry import driver_for
from tma_ops.stores import Store
from tma_ops.streams import HashingReader

FORMAT_VERSION = 2
READABLE_FORMATS = (1, FORMAT_VERSION)


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
        record = asdict(self)
        record["parts"] = {name: _part_record(part) for name, part in self.parts.items()}
        return json.dumps(record, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, key: str) -> Manifest:
        try:
            data = json.loads(raw)
            if data.get("format") not in READABLE_FORMATS:
                raise SnapshotError(f"{key}: unsupported snapshot format {data.get('format')!r}")
            data["parts"] = {name: Part.from_record(part) for name, part in data["parts"].items()}
            return cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SnapshotError(f"{key}: not a valid snapshot manifest ({exc})") from exc

    @property
    def total_size(self) -> int:
        """Bytes this snapshot added to the store (chunks named from its parent not counted)."""
        return sum(stored.size for stored in self.own_objects())

    def objects(self) -> list[Part]:
        """Every stored object a restore of this snapshot reads from its own parts."""
        return [stored for part in self.parts.values() for stored in part.objects()]

    def own_objects(self) -> list[Part]:
        prefix = f"{snapshots_prefix(self.site)}{self.snapshot_id}/"
        return [stored for stored in self.objects() if stored.key.startswith(prefix)]


def _part_record(part: Part) -> dict[str, object]:
    record: dict[str, object] = {
        "key": part.key,
        "size": part.size,
        "sha256": part.sha256,
        "plain_size": part.plain_size,
        "plain_sha256": part.plain_sha256,
    }
    if part.chunks:
        record["chunks"] = [_part_record(chunk) for chunk in part.chunks]
    return record


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
    db_part = upload_chunked_part(
        store,
        f"{prefix}db.{database.extension}",
        lambda: database.dump(db_executor),
        sealing=sealing,
        progress=progress,
        reuse=_reusable_chunks(earlier, plan, database.name, sealing),
    )
    pause_point("snapshot:after-db")
    work_state = f"{state_path(env.root)}.{snapshot_id}"
    try:
        files_plan = plan
        plan, files_part = _upload_files(
            executor, env.root, store, prefix, plan, work_state, sealing, progress
        )
        if plan.parent is None and files_plan.parent is not None:
            db_part = _own_copy(store, db_part, prefix)
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
        # Chunks named from earlier snapshots get this one's retention too: it needs them as long.
        lock_objects(store, site.store.object_lock, [o.key for o in manifest.objects()])
        store.put(manifest_key(site.name, snapshot_id), io.BytesIO(manifest.to_json()))
        lock_objects(store, site.store.object_lock, [manifest_key(site.name, snapshot_id)])
    except BaseException:
        discard_state(executor, work_state)
        raise
    adopt_state(executor, env.root, work_state)
    return manifest


def _reusable_chunks(
    earlier: list[Manifest], plan: FilesPlan, engine: str, sealing: Sealing
) -> dict[tuple[str, int], Part]:
    """The parent's dump chunks an increment may name. Only an increment's parent: a snapshot's
    objects then all belong to its chain, which pruning keeps whole while the snapshot stays."""
    parent = next((m for m in earlier if m.snapshot_id == plan.parent), None)
    if parent is None or parent.database_engine != engine:
        return {}
    if (parent.encryption == "age") != sealing.encrypts:
        return {}
    return chunk_index(parent.parts["db"])


def _own_copy(store: Store, part: Part, prefix: str) -> Part:
    """The part with the chunks it names from other snapshots copied under `prefix`: a snapshot
    redone in full must not depend on an earlier one."""
    chunks = []
    for chunk in part.chunks:
        if chunk.key.startswith(prefix):
            chunks.append(chunk)
            continue
        key = prefix + chunk.key.rsplit("/", 1)[-1]
        with store.get(chunk.key) as stream:
            copied = HashingReader(stream)
            store.put(key, copied, size_hint=chunk.size)
        check_stored_digest(chunk, copied)
        chunks.append(replace(chunk, key=key))
    return replace(part, chunks=tuple(chunks))


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
        except ObjectLocked:
            continue  # a chunk named from an earlier snapshot, already locked for longer
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
    """Manifest first: an interrupted delete leaves unlisted parts, never a listed broken one.
    Chunks it names from earlier snapshots are theirs, and stay."""
    store.delete(manifest_key(manifest.site, manifest.snapshot_id))
    for stored in manifest.own_objects():
        store.delete(stored.key)


def created_at(manifest: Manifest) -> datetime:
    return datetime.fromisoformat(manifest.created_at.replace("Z", "+00:00"))
