"""Incremental files archives and age encryption, end to end through real tar, zstd and age."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyrage import x25519
from site_support import db_dump, db_of, leftovers, modify_production, root_of, site, walk_tree

from tma_ops.config import Site
from tma_ops.errors import IntegrityError, InventoryError, ObjectLocked, SnapshotError
from tma_ops.files_archive import state_path
from tma_ops.model import Encryption, ObjectLock
from tma_ops.restore import restore_snapshot
from tma_ops.snapshot import Manifest, create_snapshot, list_snapshots, manifest_key
from tma_ops.stores.file import FileStore

pytestmark = pytest.mark.integration
_FIXTURES = (site,)


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


def with_store(site: Site, **settings: object) -> Site:
    return site.model_copy(update={"store": site.store.model_copy(update=settings)})


def production_state(site: Site) -> tuple[object, list[str]]:
    return walk_tree(root_of(site, "production")), db_dump(db_of(site, "production"))


def staging_state(site: Site) -> tuple[object, list[str]]:
    return walk_tree(root_of(site, "staging")), db_dump(db_of(site, "staging"))


def archived_files(store: FileStore, manifest: Manifest) -> set[str]:
    """Names of the non-directory members of a snapshot's files archive."""
    part = store.root / manifest.parts["files"].key
    listing = subprocess.run(
        f"zstd -dc {part} | tar -tvf -", shell=True, check=True, capture_output=True, text=True
    ).stdout
    names = set()
    for line in listing.splitlines():
        if line and not line.startswith("d"):
            name = line.split(" ./", 1)[1].split(" -> ")[0]
            names.add(f"./{name}")
    return names


def touch_one_file(site: Site, name: str) -> None:
    (root_of(site, "production") / "uploads" / name).write_text(f"{name}\n")


# --- incremental chains -----------------------------------------------------------------------


def test_an_increment_holds_only_the_changes_and_restores_the_exact_tree(
    site: Site, store: FileStore
) -> None:
    site = with_store(site, full_every=5)
    full = create_snapshot(site, "production", store)
    # Directories are created before any is deleted: a freed directory inode taken by a new
    # directory would read as a rename, and the snapshot would rightly be a full one instead.
    (root_of(site, "production") / "new" / "dir").mkdir(parents=True)
    modify_production(site)
    # A file rewritten with its old mtime (as rsync or an unpacked archive would leave it).
    blob = root_of(site, "production") / "uploads" / "big" / "blob-2.bin"
    stamp = blob.stat()
    blob.write_bytes(os.urandom(stamp.st_size))
    os.utime(blob, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    expected = production_state(site)

    increment = create_snapshot(site, "production", store)

    assert (full.level, full.parent, full.chain) == (0, None, [])
    assert (increment.level, increment.parent, increment.chain) == (
        1,
        full.snapshot_id,
        [full.snapshot_id],
    )
    assert increment.parts["files"].key.endswith("/files.1.tar.zst")
    sent = archived_files(store, increment)
    assert {"./uploads/big/blob-0.bin", "./uploads/big/blob-2.bin", "./index.php"} <= sent
    assert "./new/dir/added.txt" in sent
    assert not {"./uploads/big/blob-3.bin", "./config.secret.php", "./empty.txt"} & sent
    restore_snapshot(site, increment, "staging", store)
    assert staging_state(site) == expected
    assert leftovers(site) == []


def test_a_chain_restores_every_link_and_a_full_comes_every_n(site: Site, store: FileStore) -> None:
    site = with_store(site, full_every=3)
    states, manifests = [], []
    for round_ in range(4):
        touch_one_file(site, f"round-{round_}.txt")
        if round_ == 2:
            (root_of(site, "production") / "uploads" / "round-0.txt").unlink()
        states.append(production_state(site))
        manifests.append(create_snapshot(site, "production", store))
    assert [m.level for m in manifests] == [0, 1, 2, 0]
    assert manifests[2].chain == [manifests[0].snapshot_id, manifests[1].snapshot_id]
    for state, manifest in zip(states, manifests, strict=True):
        restore_snapshot(site, manifest, "staging", store)
        assert staging_state(site) == state, manifest.level


def test_a_lost_or_foreign_state_file_means_a_full_archive(site: Site, store: FileStore) -> None:
    create_snapshot(site, "production", store)
    state = Path(state_path(str(root_of(site, "production"))))
    state.unlink()
    assert create_snapshot(site, "production", store).level == 0
    state.write_bytes(state.read_bytes() + b"\0")
    assert create_snapshot(site, "production", store).level == 0
    assert create_snapshot(site, "production", store).level == 1


def test_a_cache_wiped_and_rebuilt_never_makes_an_unrestorable_increment(
    site: Site, store: FileStore
) -> None:
    """A freed directory inode reused by a new directory reads to tar as a rename, which it then
    cannot extract; such an increment is redone in full (this happens most rounds on ext4)."""
    site = with_store(site, full_every=50)
    cache = root_of(site, "production") / "cache" / "pages"
    levels = []
    for round_ in range(6):
        shutil.rmtree(cache, ignore_errors=True)
        for name in ("b",) if round_ % 2 else ("a", "b"):
            (cache / name).mkdir(parents=True)
            (cache / name / "page.html").write_text(f"{round_}{name}\n")
        expected = production_state(site)
        manifest = create_snapshot(site, "production", store)
        levels.append(manifest.level)
        restore_snapshot(site, manifest, "staging", store)
        assert staging_state(site) == expected, f"round {round_}, level {manifest.level}"
    assert levels[0] == 0


def test_a_restore_restarts_the_chain_of_the_restored_environment(
    site: Site, store: FileStore
) -> None:
    first = create_snapshot(site, "production", store)
    restore_snapshot(site, first, "production", store)
    # Restored directories have new inodes; tar must not take a reused one for a rename.
    assert create_snapshot(site, "production", store).level == 0
    assert create_snapshot(site, "production", store).level == 1


def test_a_failed_snapshot_does_not_advance_the_chain(
    site: Site, store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = create_snapshot(site, "production", store)
    real_put = store.put

    def refuse_manifest(key: str, source: object, size_hint: int | None = None) -> int:
        if key.endswith("manifest.json"):
            raise OSError("store went away")
        return real_put(key, source, size_hint)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "put", refuse_manifest)
    touch_one_file(site, "lost.txt")
    with pytest.raises(OSError):
        create_snapshot(site, "production", store)
    monkeypatch.undo()
    touch_one_file(site, "kept.txt")
    expected = production_state(site)
    second = create_snapshot(site, "production", store)
    assert (second.level, second.parent) == (1, first.snapshot_id)
    restore_snapshot(site, second, "staging", store)
    assert staging_state(site) == expected
    root = root_of(site, "production")
    assert sorted(p.name for p in root.parent.iterdir() if ".tma-tar-state." in p.name) == []


def test_an_increment_without_its_parent_is_refused_naming_it(site: Site, store: FileStore) -> None:
    full = create_snapshot(site, "production", store)
    touch_one_file(site, "x.txt")
    increment = create_snapshot(site, "production", store)
    store.delete(manifest_key(site.name, full.snapshot_id))
    staging_before = staging_state(site)
    with pytest.raises(SnapshotError, match=f"increment of {full.snapshot_id}, which is missing"):
        restore_snapshot(site, increment, "staging", store)
    assert staging_state(site) == staging_before


# --- encryption -------------------------------------------------------------------------------


@pytest.fixture
def age_key(tmp_path: Path) -> tuple[Path, str]:
    identity = x25519.Identity.generate()
    key_file = tmp_path / "age-key.txt"
    key_file.write_text(f"# tma-ops test key\n{identity}\n")
    return key_file, str(identity.to_public())


def encrypted(site: Site, age_key: tuple[Path, str], with_identity: bool = True) -> Site:
    key_file, public = age_key
    identity = str(key_file) if with_identity else None
    return with_store(site, encryption=Encryption(recipients=[public], identity_file=identity))


def test_encrypted_parts_restore_and_open_with_the_age_cli(
    site: Site, store: FileStore, age_key: tuple[Path, str], tmp_path: Path
) -> None:
    site = encrypted(site, age_key)
    full = create_snapshot(site, "production", store)
    touch_one_file(site, "after.txt")
    expected = production_state(site)
    increment = create_snapshot(site, "production", store)

    assert increment.encryption == "age"
    assert all(part.key.endswith(".zst.age") for part in increment.parts.values())
    restore_snapshot(site, increment, "staging", store)
    assert staging_state(site) == expected

    # By hand, with standard tools only: age -d | zstd -d | tar, chain in order.
    target = tmp_path / "by-hand"
    target.mkdir()
    for manifest in (full, increment):
        part = store.root / manifest.parts["files"].key
        subprocess.run(
            f"age -d -i {age_key[0]} {part} | zstd -d | "
            f"tar -C {target} --listed-incremental=/dev/null -xpf -",
            shell=True,
            check=True,
        )
    assert walk_tree(target) == expected[0]


def test_a_snapshot_needs_no_private_key_but_a_restore_does(
    site: Site, store: FileStore, age_key: tuple[Path, str]
) -> None:
    scheduler = encrypted(site, age_key, with_identity=False)
    manifest = create_snapshot(scheduler, "production", store)
    assert [m.snapshot_id for m in list_snapshots(store, site.name)] == [manifest.snapshot_id]
    with pytest.raises(InventoryError, match=r"set store\.encryption\.identity_file"):
        restore_snapshot(scheduler, manifest, "staging", store)
    restore_snapshot(encrypted(site, age_key), manifest, "staging", store)
    assert staging_state(site) == production_state(site)


def test_a_flipped_byte_in_an_encrypted_part_is_named_and_changes_nothing(
    site: Site, store: FileStore, age_key: tuple[Path, str]
) -> None:
    site = encrypted(site, age_key)
    manifest = create_snapshot(site, "production", store)
    path = store.root / manifest.parts["files"].key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    before = staging_state(site)
    with pytest.raises(IntegrityError, match=manifest.parts["files"].key):
        restore_snapshot(site, manifest, "staging", store)
    assert staging_state(site) == before
    assert leftovers(site) == []


def test_a_manifest_is_plain_json_naming_its_chain(site: Site, store: FileStore) -> None:
    create_snapshot(site, "production", store)
    touch_one_file(site, "y.txt")
    increment = create_snapshot(site, "production", store)
    raw = (store.root / manifest_key(site.name, increment.snapshot_id)).read_bytes()
    assert Manifest.from_json(raw, "m") == increment
    assert b'"chain"' in raw and b'"files_format": "gnu-tar-listed-incremental"' in raw


def test_object_lock_protects_every_object_of_a_snapshot(site: Site, store: FileStore) -> None:
    site = with_store(site, object_lock=ObjectLock(mode="compliance", days=3))
    manifest = create_snapshot(site, "production", store)
    keys = store.list(f"{site.name}/snapshots/{manifest.snapshot_id}/")
    assert len(keys) == 3
    soon = datetime.now(UTC) + timedelta(days=3)
    for key in keys:
        locked_until = store.stat(key).locked_until
        assert locked_until is not None and abs(locked_until - soon) < timedelta(minutes=5)
        with pytest.raises(ObjectLocked):
            store.delete(key)
