"""Snapshots and restores of a demo site, for real: tar, zstd, SQLite, a file:// and a mem:// store.

Trees and databases are compared by site_support's walker, independent of tma_ops.fingerprint.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from site_support import (
    MiB,
    db_dump,
    db_of,
    file_sha256,
    leftovers,
    modify_production,
    root_of,
    site,
    state_of,
    walk_tree,
)

from tma_ops.config import Site
from tma_ops.errors import IntegrityError, SnapshotError
from tma_ops.fingerprint import environment_fingerprint
from tma_ops.restore import restore_snapshot
from tma_ops.snapshot import (
    Manifest,
    create_snapshot,
    list_snapshots,
    load_manifest,
    manifest_key,
    resolve_snapshot,
    verify_snapshot,
)
from tma_ops.stores import Store, open_store
from tma_ops.stores.file import FileStore

pytestmark = pytest.mark.integration
_FIXTURES = (site,)


@pytest.fixture
def file_store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


@pytest.fixture(params=["file", "mem"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "file":
        yield FileStore(tmp_path / "store")
        return
    memory = open_store(f"mem://test-snapshot-restore-{uuid4().hex}")
    yield memory
    for key in memory.list():  # the named store lives as long as the process
        memory.delete(key)


# --- snapshot and restore ---------------------------------------------------------------------


def test_restore_into_staging_makes_it_identical_to_production(site: Site, store: Store) -> None:
    assert state_of(site, "staging") != state_of(site, "production")
    manifest = create_snapshot(site, "production", store, reason="test")
    assert (manifest.site, manifest.environment, manifest.reason) == ("blog", "production", "test")
    assert manifest.components == {"seo": "1.0.0", "gallery": "2.0.0"}
    assert store.list(f"blog/snapshots/{manifest.snapshot_id}/") == sorted(
        [stored.key for stored in manifest.objects()] + [manifest_key("blog", manifest.snapshot_id)]
    )

    restore_snapshot(site, manifest, "staging", store)

    staging_tree, staging_db = state_of(site, "staging")
    production_tree, production_db = state_of(site, "production")
    assert staging_tree == production_tree
    assert staging_db == production_db
    assert environment_fingerprint(site, "staging") == environment_fingerprint(site, "production")
    assert leftovers(site) == []


def test_restore_puts_production_back_exactly(site: Site, store: Store) -> None:
    before = state_of(site, "production")
    manifest = create_snapshot(site, "production", store)
    modify_production(site)
    assert state_of(site, "production") != before

    restore_snapshot(site, manifest, "production", store)

    tree, dump = state_of(site, "production")
    assert tree == before[0]
    assert dump == before[1]
    assert leftovers(site) == []


def test_verify_passes_on_a_sound_snapshot(site: Site, store: Store) -> None:
    manifest = create_snapshot(site, "production", store)
    verify_snapshot(store, manifest)
    assert load_manifest(store, "blog", manifest.snapshot_id) == manifest


def test_leftovers_of_interrupted_operations_are_not_snapshotted(site: Site, store: Store) -> None:
    root = root_of(site, "production")
    clean = walk_tree(root)
    (root / "plugins" / ".tma-old-seo").mkdir()
    (root / "plugins" / ".tma-old-seo" / "VERSION").write_text("0.9.0\n")
    (root / "uploads" / "photo.png.tma-restore").write_bytes(b"half a file")
    manifest = create_snapshot(site, "production", store)
    restore_snapshot(site, manifest, "staging", store)
    assert walk_tree(root_of(site, "staging")) == clean


# --- damaged snapshots ------------------------------------------------------------------------


def damage(path: Path, where: str) -> None:
    """Flip one bit of the stored object (at its start, middle or end), or cut it short."""
    data = bytearray(path.read_bytes())
    if where == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
        return
    offset = {"start": 8, "middle": len(data) // 2, "end": len(data) - 2}[where]
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["start", "middle", "end", "truncated"])
@pytest.mark.parametrize("part", ["db", "files"])
def test_a_damaged_snapshot_fails_verify_and_restore_touches_nothing(
    site: Site, file_store: FileStore, part: str, where: str
) -> None:
    manifest = create_snapshot(site, "production", file_store)
    key = manifest.parts[part].objects()[0].key
    damage(file_store.root / key, where)
    staging_before = state_of(site, "staging")

    with pytest.raises(IntegrityError, match=key):
        verify_snapshot(file_store, manifest)
    with pytest.raises(IntegrityError, match=key):
        restore_snapshot(site, manifest, "staging", file_store)

    assert state_of(site, "staging") == staging_before
    assert leftovers(site) == []


# --- listing and resolving --------------------------------------------------------------------


def take_snapshots(site: Site, store: Store, count: int) -> list[Manifest]:
    return [create_snapshot(site, "production", store, reason=f"n{n}") for n in range(count)]


def ids(manifests: list[Manifest]) -> list[str]:
    return [m.snapshot_id for m in manifests]


def unique_prefix(wanted: str, others: list[str]) -> str:
    for length in range(1, len(wanted) + 1):
        if not any(other.startswith(wanted[:length]) for other in others):
            return wanted[:length]
    raise AssertionError(f"{wanted} is a prefix of another id")


def test_list_and_resolve(site: Site, store: Store) -> None:
    first, second, third = taken = take_snapshots(site, store, 3)
    assert ids(list_snapshots(store, "blog")) == ids(taken)  # oldest first
    assert list_snapshots(store, "shop") == []
    assert resolve_snapshot(store, "blog", "latest") == third
    assert resolve_snapshot(store, "blog", first.snapshot_id) == first
    prefix = unique_prefix(second.snapshot_id, [first.snapshot_id, third.snapshot_id])
    assert resolve_snapshot(store, "blog", prefix) == second

    common = os.path.commonprefix(ids(taken))  # noqa: RUF071 - a string prefix is wanted
    with pytest.raises(SnapshotError, match=rf"'blog': 3 snapshots match '{common}'"):
        resolve_snapshot(store, "blog", common)
    with pytest.raises(SnapshotError, match="'blog': no snapshot matches 'nope'"):
        resolve_snapshot(store, "blog", "nope")
    with pytest.raises(SnapshotError, match="site 'shop' has no snapshot in"):
        resolve_snapshot(store, "shop", "latest")
    with pytest.raises(SnapshotError, match="site 'blog' has no snapshot 'nope'"):
        load_manifest(store, "blog", "nope")


def test_a_snapshot_without_manifest_is_not_listed(site: Site, store: Store) -> None:
    first, second = take_snapshots(site, store, 2)
    store.delete(manifest_key("blog", second.snapshot_id))  # crashed before the manifest
    assert ids(list_snapshots(store, "blog")) == [first.snapshot_id]
    assert resolve_snapshot(store, "blog", "latest") == first
    with pytest.raises(SnapshotError, match="no snapshot matches"):
        resolve_snapshot(store, "blog", second.snapshot_id)
    with pytest.raises(SnapshotError, match=f"has no snapshot '{second.snapshot_id}'"):
        load_manifest(store, "blog", second.snapshot_id)


def test_a_snapshot_interrupted_midway_is_not_listed(
    site: Site, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    (first,) = take_snapshots(site, store, 1)

    def crash(name: str) -> None:
        if name == "snapshot:after-db":  # the database part is stored, the files are not
            raise KeyboardInterrupt(name)

    monkeypatch.setattr("tma_ops.snapshot.pause_point", crash)
    with pytest.raises(KeyboardInterrupt):
        create_snapshot(site, "production", store)
    # Only the first one's objects: the unchanged dump is the first one's chunk, named, not stored.
    assert len(store.list("blog/snapshots/")) == 1 + len(first.objects())
    assert list_snapshots(store, "blog") == [first]


# --- bounded memory ---------------------------------------------------------------------------

BIG_TREE = 200 * MiB
PYTHON_PEAK_LIMIT = 64 * MiB
# zstd compresses with a few workers (streams.COMPRESSION_THREADS), each keeping its own buffers:
# measured about 40 MiB a worker, flat from 200 MiB to 1.6 GiB of data.
RSS_LIMIT = 64 * MiB + 48 * MiB * (os.cpu_count() or 1)


def grow_tree(directory: Path, total: int, files: int = 8) -> None:
    """`total` bytes of incompressible data, written a MiB at a time (never held whole)."""
    directory.mkdir(parents=True)
    for index in range(files):
        with (directory / f"video-{index}.bin").open("wb") as out:
            for _ in range(total // files // MiB):
                out.write(os.urandom(MiB))


def test_snapshot_memory_stays_bounded(site: Site, file_store: FileStore) -> None:
    grow_tree(root_of(site, "production") / "uploads" / "videos", BIG_TREE)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    tracemalloc.start()
    try:
        manifest = create_snapshot(site, "production", file_store)
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before

    assert manifest.parts["files"].plain_size > BIG_TREE
    assert file_store.stat(manifest.parts["files"].key).size > BIG_TREE  # random: incompressible
    assert python_peak < PYTHON_PEAK_LIMIT, f"Python allocations peaked at {python_peak} bytes"
    assert rss_growth < RSS_LIMIT, f"resident memory grew by {rss_growth} bytes"


# --- by hand, as the README says --------------------------------------------------------------


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.skip(
            f"command-line tool(s) {', '.join(missing)} not installed: the README's by-hand "
            "restore cannot be checked (CI installs them; under CI=true this skip fails)"
        )


def unpack_by_hand(folder: Path, target: Path, db_chunks: list[str]) -> None:
    """The README's commands, run in the snapshot's folder (pipefail: zstd must succeed too)."""
    script = 'for chunk in "${@:2}"; do zstd -dc "$chunk"; done > "$1"'
    subprocess.run(
        ["bash", "-o", "pipefail", "-c", script, "bash", str(target / "site.sqlite"), *db_chunks],
        cwd=folder,
        check=True,
        timeout=120,
    )
    script = 'mkdir -p "$1" && zstd -dc files.tar.zst | tar -C "$1" -xpf -'
    subprocess.run(
        ["bash", "-o", "pipefail", "-c", script, "bash", str(target / "www")],
        cwd=folder,
        check=True,
        timeout=120,
    )


def test_the_readme_by_hand_restore_works(
    site: Site, file_store: FileStore, tmp_path: Path
) -> None:
    require_tools("zstd", "tar", "sha256sum", "bash")
    manifest = create_snapshot(site, "production", file_store)
    folder = file_store.root / "blog" / "snapshots" / manifest.snapshot_id
    recorded = json.loads((folder / "manifest.json").read_text())["parts"]
    chunks = [chunk["key"].rsplit("/", 1)[-1] for chunk in recorded["db"]["chunks"]]
    assert chunks == [f"db.sqlite.{n:05d}.zst" for n in range(len(chunks))]

    sums = subprocess.run(
        ["sha256sum", *chunks, "files.tar.zst"],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert dict(zip(sums[1::2], sums[0::2], strict=True)) == {
        **{
            name: chunk["sha256"]
            for name, chunk in zip(chunks, recorded["db"]["chunks"], strict=True)
        },
        "files.tar.zst": recorded["files"]["sha256"],
    }

    target = tmp_path / "by-hand"
    target.mkdir()
    unpack_by_hand(folder, target, chunks)
    assert file_sha256(target / "site.sqlite") == recorded["db"]["plain_sha256"]
    assert walk_tree(target / "www") == walk_tree(root_of(site, "production"))
    assert db_dump(target / "site.sqlite") == db_dump(db_of(site, "production"))
