"""The database dump stored in content-defined chunks: an increment stores only what changed,
names its parent's chunks for the rest, and every chunk is checked like any part.

Real file:// stores, real zstd and age (the `age` CLI opens a chunk), real SQLite snapshots of
the demo site.
"""

from __future__ import annotations

import dataclasses
import io
import random
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import pytest
from pyrage import x25519
from site_support import db_dump, db_of, root_of, site, walk_tree

from tma_ops.chunked_parts import MAX_CHUNK, MIN_CHUNK, chunk_index, upload_chunked_part
from tma_ops.config import Site
from tma_ops.errors import IntegrityError
from tma_ops.model import Encryption, ObjectLock
from tma_ops.parts import Part, Sealing, reading_part
from tma_ops.progress import SILENT
from tma_ops.prune import plan_prune
from tma_ops.pruning import entry_of
from tma_ops.restore import restore_snapshot
from tma_ops.retention import Retention
from tma_ops.snapshot import Manifest, create_snapshot, delete_snapshot, list_snapshots
from tma_ops.stores.file import FileStore

pytestmark = pytest.mark.integration
_FIXTURES = (site,)

MiB = 1 << 20


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


@pytest.fixture
def age_key(tmp_path: Path) -> tuple[Path, str]:
    identity = x25519.Identity.generate()
    key_file = tmp_path / "age-key.txt"
    key_file.write_text(f"{identity}\n")
    return key_file, str(identity.to_public())


def dump_like(seed: int, size: int) -> bytes:
    """Text rows like a dump's INSERTs: compressible, and every position distinct."""
    rows = random.Random(seed)
    lines = []
    total = 0
    while total < size:
        line = f"INSERT INTO wp_posts VALUES ({total},'{rows.getrandbits(160):040x}');\n"
        lines.append(line.encode())
        total += len(line)
    return b"".join(lines)


def source_of(data: bytes) -> object:
    @contextmanager
    def open_source() -> Iterator[BinaryIO]:
        yield io.BytesIO(data)

    return open_source


def upload(store: FileStore, stem: str, data: bytes, sealing: Sealing, reuse: Part | None) -> Part:
    return upload_chunked_part(
        store,
        stem,
        source_of(data),  # type: ignore[arg-type]
        sealing=sealing,
        progress=SILENT,
        reuse=chunk_index(reuse),
    )


def joined(store: FileStore, part: Part, sealing: Sealing) -> bytes:
    with reading_part(store, part, sealing, SILENT, "read") as plain:
        return plain.readall()


def test_a_changed_row_stores_only_the_chunks_around_it(store: FileStore) -> None:
    first_dump = dump_like(1, 24 * MiB)
    first = upload(store, "s/1/db.sql", first_dump, Sealing(), None)
    assert len(first.chunks) >= 24 * MiB // MAX_CHUNK
    assert all(MIN_CHUNK <= c.plain_size <= MAX_CHUNK for c in first.chunks[:-1])
    assert [c.key for c in first.chunks] == [
        f"s/1/db.sql.{n:05d}.zst" for n in range(len(first.chunks))
    ]

    middle = len(first_dump) // 2
    second_dump = (
        first_dump[:middle] + b"INSERT INTO wp_posts VALUES (-1,'new row');\n" + first_dump[middle:]
    )
    second = upload(store, "s/2/db.sql", second_dump, Sealing(), first)

    stored = [c for c in second.chunks if c.key.startswith("s/2/")]
    named = [c for c in second.chunks if c.key.startswith("s/1/")]
    assert 1 <= len(stored) <= 2 and len(stored) + len(named) == len(second.chunks)
    assert store.list("s/2/") == sorted(c.key for c in stored)
    assert sum(c.plain_size for c in stored) <= 2 * MAX_CHUNK < len(second_dump) / 2
    assert joined(store, second, Sealing()) == second_dump
    assert joined(store, first, Sealing()) == first_dump

    unchanged = upload(store, "s/3/db.sql", second_dump, Sealing(), second)
    assert store.list("s/3/") == [] and unchanged.chunks == second.chunks


def test_encrypted_chunks_open_with_the_age_cli_and_join_into_the_dump(
    store: FileStore, age_key: tuple[Path, str]
) -> None:
    key_file, public = age_key
    sealing = Sealing((public,), str(key_file))
    data = dump_like(2, 6 * MiB)
    part = upload(store, "s/1/db.sql", data, sealing, None)
    assert part.key == "s/1/db.sql.zst.age" and all(c.key.endswith(".zst.age") for c in part.chunks)
    by_hand = b"".join(
        subprocess.run(
            f"age -d -i {key_file} {store.root / chunk.key} | zstd -dc",
            shell=True,
            check=True,
            capture_output=True,
        ).stdout
        for chunk in part.chunks
    )
    assert by_hand == data == joined(store, part, sealing)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_chunk_is_named_when_read(store: FileStore, damage: str) -> None:
    part = upload(store, "s/1/db.sql", dump_like(3, 8 * MiB), Sealing(), None)
    victim = part.chunks[len(part.chunks) // 2]
    path = store.root / victim.key
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[:-10]))
    else:
        path.unlink()
    with pytest.raises(Exception, match=victim.key) as raised:
        joined(store, part, Sealing())
    if damage != "delete":
        assert raised.type is IntegrityError


def test_chunks_in_the_wrong_order_fail_the_joined_digest(store: FileStore) -> None:
    part = upload(store, "s/1/db.sql", dump_like(4, 8 * MiB), Sealing(), None)
    swapped = dataclasses.replace(part, chunks=(part.chunks[1], part.chunks[0], *part.chunks[2:]))
    with pytest.raises(IntegrityError, match="does not match the manifest once joined"):
        joined(store, swapped, Sealing())


# --- snapshots of a site ----------------------------------------------------------------------


def test_an_increment_names_its_parents_unchanged_dump_and_restores_exactly(
    site: Site, store: FileStore
) -> None:
    full = create_snapshot(site, "production", store)
    (root_of(site, "production") / "uploads" / "new.txt").write_text("new\n")
    increment = create_snapshot(site, "production", store)
    assert increment.parent == full.snapshot_id
    assert increment.parts["db"].chunks == full.parts["db"].chunks
    assert [o.key for o in increment.own_objects()] == [increment.parts["files"].key]
    assert increment.total_size == increment.parts["files"].size

    restore_snapshot(site, increment, "staging", store)
    assert walk_tree(root_of(site, "staging")) == walk_tree(root_of(site, "production"))
    assert db_dump(db_of(site, "staging")) == db_dump(db_of(site, "production"))


def test_a_full_snapshot_names_nothing_and_other_encryption_is_never_named(
    site: Site, store: FileStore, age_key: tuple[Path, str]
) -> None:
    key_file, public = age_key
    first = create_snapshot(site, "production", store)
    sealed_site = site.model_copy(
        update={
            "store": site.store.model_copy(
                update={"encryption": Encryption(recipients=[public], identity_file=str(key_file))}
            )
        }
    )
    sealed = create_snapshot(sealed_site, "production", store)
    assert not set(sealed.parts["db"].chunks) & set(first.parts["db"].chunks)
    assert all(o.key.startswith(f"blog/snapshots/{sealed.snapshot_id}/") for o in sealed.objects())

    every_time = site.model_copy(update={"store": site.store.model_copy(update={"full_every": 1})})
    full = create_snapshot(every_time, "production", store)
    assert full.level == 0 and full.own_objects() == full.objects()


def test_pruning_an_increment_keeps_the_chunks_its_parent_holds(
    site: Site, store: FileStore
) -> None:
    full = create_snapshot(site, "production", store)
    increment = create_snapshot(site, "production", store)
    assert increment.parts["db"].chunks == full.parts["db"].chunks
    every_time = site.model_copy(update={"store": site.store.model_copy(update={"full_every": 1})})
    newest = create_snapshot(every_time, "production", store)

    entries = [entry_of(m) for m in list_snapshots(store, "blog")]
    only_last = Retention(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    protected = {full.snapshot_id: "pending rollback"}
    plan = plan_prune(
        "blog", entries, only_last, store.list("blog/snapshots/"), protected=protected
    )
    assert {k.snapshot_id for k in plan.kept} == {full.snapshot_id, newest.snapshot_id}
    (deleted,) = plan.deleted
    assert deleted.snapshot_id == increment.snapshot_id
    assert not set(deleted.keys) & {chunk.key for chunk in full.parts["db"].chunks}

    delete_snapshot(store, increment)
    restore_snapshot(site, full, "staging", store)
    assert db_dump(db_of(site, "staging")) == db_dump(db_of(site, "production"))


def test_a_format_1_snapshot_with_a_dump_in_one_object_still_restores(
    site: Site, store: FileStore
) -> None:
    manifest = create_snapshot(site, "production", store)
    dump = joined(store, manifest.parts["db"], Sealing())
    whole = "blog/snapshots/" + manifest.snapshot_id + "/db.sqlite.zst"
    single = upload_single(store, whole, dump)
    old = dataclasses.replace(manifest, parts={**manifest.parts, "db": single}, format=1)
    assert b'"chunks"' not in old.to_json()
    reread = Manifest.from_json(old.to_json(), "m")
    assert reread == old
    restore_snapshot(site, reread, "staging", store)
    assert db_dump(db_of(site, "staging")) == db_dump(db_of(site, "production"))


def upload_single(store: FileStore, key: str, data: bytes) -> Part:
    from tma_ops.parts import upload_part

    return upload_part(
        store,
        key,
        source_of(data),  # type: ignore[arg-type]
        sealing=Sealing(),
        progress=SILENT,
        total=len(data),
    )


def test_an_increment_redone_in_full_copies_the_chunks_it_named(
    site: Site, store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When tar saw a rename, the increment is redone as a full snapshot: it then depends on no
    earlier one, its dump's chunks included."""
    full = create_snapshot(site, "production", store)
    monkeypatch.setattr("tma_ops.snapshot.renamed_directories", lambda state, ids: ["moved"])
    redone = create_snapshot(site, "production", store)
    assert (redone.level, redone.parent) == (0, None)
    assert redone.own_objects() == redone.objects()
    copied = redone.parts["db"].chunks
    assert [(c.sha256, c.size) for c in copied] == [
        (c.sha256, c.size) for c in full.parts["db"].chunks
    ]

    delete_snapshot(store, full)
    restore_snapshot(site, redone, "staging", store)
    assert db_dump(db_of(site, "staging")) == db_dump(db_of(site, "production"))


def test_named_chunks_are_locked_as_long_as_the_newest_snapshot_naming_them(
    site: Site, store: FileStore
) -> None:
    def locked_for(days: int) -> Site:
        spec = site.store.model_copy(
            update={"object_lock": ObjectLock(mode="compliance", days=days)}
        )
        return site.model_copy(update={"store": spec})

    full = create_snapshot(locked_for(3), "production", store)
    (chunk,) = full.parts["db"].chunks
    first_lock = store.stat(chunk.key).locked_until
    increment = create_snapshot(locked_for(5), "production", store)
    assert increment.parts["db"].chunks == (chunk,)
    extended = store.stat(chunk.key).locked_until
    assert first_lock is not None and extended is not None
    assert (
        timedelta(days=2) - timedelta(minutes=5)
        < extended - first_lock
        < timedelta(days=2, minutes=5)
    )

    shorter = create_snapshot(locked_for(1), "production", store)  # never shortens a lock
    assert shorter.parts["db"].chunks == (chunk,)
    assert store.stat(chunk.key).locked_until == extended
