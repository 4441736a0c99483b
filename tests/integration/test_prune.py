"""Pruning a real file:// store with a real journal: what remains, what is said, how it exits.

Snapshots are written straight into the store (manifest JSON and part objects) with controlled
creation times and parents, so each test states exactly what the store holds.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tma_ops import cli
from tma_ops.config import Retention, Site, load_inventory
from tma_ops.errors import EXIT_ERROR, EXIT_LOCK_HELD, EXIT_OK, EXIT_WARNINGS
from tma_ops.journal import Journal
from tma_ops.lock import SiteLock
from tma_ops.progress import SILENT
from tma_ops.prune_operation import prune_site
from tma_ops.snapshot import Manifest, Part, list_snapshots, manifest_key
from tma_ops.steps import RunContext
from tma_ops.steps.backup import prune_snapshots
from tma_ops.stores import ObjectInfo
from tma_ops.stores.file import FileStore

pytestmark = pytest.mark.integration

DEMO = Path(__file__).parents[2] / "inventories" / "demo" / "tma.yaml"
PARTS = ("db.sqlite.zst", "files.tar.zst")
LOCK_END = datetime.now(UTC) + timedelta(days=30)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """The demo inventory, keeping the 2 newest snapshots, its store and state in tmp_path."""
    document = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    document["defaults"]["retention"] = {
        "keep_last": 2,
        "keep_daily": 0,
        "keep_weekly": 0,
        "keep_monthly": 0,
    }
    path = tmp_path / "tma.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def site(inventory: Path) -> Site:
    return load_inventory(inventory).site("blog")


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "state" / "journal.sqlite") as journal:
        yield journal


def key(snapshot_id: str, name: str) -> str:
    return f"blog/snapshots/{snapshot_id}/{name}"


def put_snapshot(
    store: FileStore, snapshot_id: str, day: int, parent: str | None = None
) -> Manifest:
    """A snapshot of blog taken on 2024-03-<day> at 10:00 UTC, with two small parts."""
    parts = {}
    for name in PARTS:
        data = f"{snapshot_id} {name}".encode()
        digest = hashlib.sha256(data).hexdigest()
        size = store.put(key(snapshot_id, name), io.BytesIO(data))
        parts[name.split(".")[0]] = Part(key(snapshot_id, name), size, digest, size, digest)
    manifest = Manifest(
        site="blog",
        environment="production",
        snapshot_id=snapshot_id,
        created_at=f"2024-03-{day:02}T10:00:00.000000Z",
        database_engine="sqlite",
        components={},
        parts=parts,
        reason="test",
        parent=parent,
    )
    store.put(manifest_key("blog", snapshot_id), io.BytesIO(manifest.to_json()))
    return manifest


def put_orphan(store: FileStore, snapshot_id: str) -> list[str]:
    """What a snapshot killed before its manifest leaves: parts and no manifest."""
    keys = [key(snapshot_id, name) for name in PARTS]
    for k in keys:
        store.put(k, io.BytesIO(b"partial"))
    return keys


def listed(store: FileStore) -> list[str]:
    return [m.snapshot_id for m in list_snapshots(store, "blog")]


def objects_of(store: FileStore, snapshot_id: str) -> list[str]:
    return store.list(f"blog/snapshots/{snapshot_id}/")


def with_retention(site: Site, **rules: int) -> Site:
    policy = Retention(keep_daily=0, keep_weekly=0, keep_monthly=0, **rules)
    return site.model_copy(update={"retention": policy})


def prune(site: Site, store: FileStore, journal: Journal, tmp_path: Path, **kw: Any) -> Any:
    return prune_site(site, store, journal, tmp_path / "state", **kw)


# --- the operation -------------------------------------------------------------------------


def test_retention_deletes_old_snapshots_whole_and_journals_it(
    site: Site, store: FileStore, journal: Journal, tmp_path: Path
) -> None:
    for day, snapshot_id in enumerate(["a", "b", "c", "d"], start=1):
        put_snapshot(store, snapshot_id, day)
    result = prune(site, store, journal, tmp_path)
    assert listed(store) == ["c", "d"]
    assert store.list("blog/snapshots/") == sorted(
        [key(s, n) for s in "cd" for n in ("manifest.json", *PARTS)]
    )
    assert {k.snapshot_id: k.reasons for k in result.plan.kept} == {
        "d": ("last",),
        "c": ("last",),
    }
    events = [e for e in journal.events(site="blog") if e.step == "prune"]
    assert [e.status for e in events] == ["started", "done"]
    assert sorted(events[-1].data["pruned"]) == ["a", "b"]
    assert journal.verify().ok


def test_a_locked_object_is_never_deleted(
    site: Site, store: FileStore, journal: Journal, tmp_path: Path
) -> None:
    for day, snapshot_id in enumerate(["a", "b", "c", "d"], start=1):
        put_snapshot(store, snapshot_id, day)
    store.lock(key("a", "files.tar.zst"), LOCK_END)
    orphan = put_orphan(store, "x")
    store.lock(orphan[0], LOCK_END)
    result = prune(site, store, journal, tmp_path)
    assert listed(store) == ["a", "c", "d"]
    assert len(objects_of(store, "a")) == 3  # kept whole, not only the locked part
    assert objects_of(store, "x") == [orphan[0]]
    (kept_a,) = [k for k in result.plan.kept if k.snapshot_id == "a"]
    assert kept_a.reasons[0].startswith("locked until ")
    assert result.refused == []


def test_the_parent_chain_of_a_kept_incremental_is_kept(
    site: Site, store: FileStore, journal: Journal, tmp_path: Path
) -> None:
    put_snapshot(store, "full", 1)
    put_snapshot(store, "other", 2)
    put_snapshot(store, "inc1", 3, parent="full")
    put_snapshot(store, "inc2", 4, parent="inc1")
    result = prune(with_retention(site, keep_last=1), store, journal, tmp_path)
    assert listed(store) == ["full", "inc1", "inc2"]
    reasons = {k.snapshot_id: k.reasons for k in result.plan.kept}
    assert reasons["full"] == ("needed by incremental inc1",)
    assert reasons["inc1"] == ("needed by incremental inc2",)


def killed_cycle(journal: Journal, run_id: str, first: str, pre_promotion: str) -> None:
    """The events of a cycle killed while promoting, as the runner writes them."""

    def event(step: str, status: str, data: dict[str, Any] | None = None) -> None:
        journal.append(run_id=run_id, site="blog", step=step, status=status, data=data or {})

    event("run", "started", {"tier": "business"})
    for step, data in [
        ("preflight", {}),
        ("snapshot", {"snapshot_id": first, "stored_bytes": 10, "components": {}}),
        ("verify", {"snapshot_id": first}),
        ("refresh_staging", {"snapshot_id": first}),
        ("plan", {"updates": [{"component": "seo"}], "held": []}),
        ("apply_staging", {"applied": ["seo"]}),
        ("smoke_staging", {"ok": True, "results": []}),
        ("pre_promotion_snapshot", {"snapshot_id": pre_promotion, "stored_bytes": 10}),
    ]:
        event(step, "started")
        event(step, "done", data)
    event("promote", "started")  # killed here


def test_the_snapshots_a_pending_run_needs_are_kept_until_it_finishes(
    site: Site, store: FileStore, journal: Journal, tmp_path: Path
) -> None:
    for day, snapshot_id in enumerate(["first", "pre", "c", "d"], start=1):
        put_snapshot(store, snapshot_id, day)
    killed_cycle(journal, "r1", "first", "pre")
    result = prune(site, store, journal, tmp_path)
    assert listed(store) == ["first", "pre", "c", "d"]
    reasons = {k.snapshot_id: k.reasons for k in result.plan.kept}
    assert reasons["pre"] == ("pending rollback of run r1",)
    assert reasons["first"] == ("pending resume of run r1",)

    journal.append(run_id="r1", site="blog", step="run", status="finished", data={})
    prune(site, store, journal, tmp_path)
    assert listed(store) == ["c", "d"]


def test_orphan_parts_of_an_interrupted_snapshot_are_removed(
    site: Site, store: FileStore, journal: Journal, tmp_path: Path
) -> None:
    put_snapshot(store, "a", 1)
    put_orphan(store, "x")
    result = prune(site, store, journal, tmp_path)
    assert store.list("blog/snapshots/") == sorted(key("a", n) for n in ("manifest.json", *PARTS))
    assert objects_of(store, "x") == []
    assert not (tmp_path / "store" / "blog" / "snapshots" / "x").exists()
    assert result.deleted_orphans == [key("x", n) for n in PARTS]


def test_dry_run_deletes_nothing_and_journals_nothing(
    site: Site, store: FileStore, journal: Journal, tmp_path: Path
) -> None:
    for day, snapshot_id in enumerate(["a", "b", "c"], start=1):
        put_snapshot(store, snapshot_id, day)
    put_orphan(store, "x")
    before = store.list("blog/")
    result = prune(site, store, journal, tmp_path, dry_run=True)
    assert store.list("blog/") == before
    assert [d.snapshot_id for d in result.plan.deleted] == ["a"]
    assert result.deleted == [] and result.deleted_orphans == []
    assert journal.events(site="blog") == []


class StatBlindStore(FileStore):
    """A store whose stat misses locks, as when a lock is set between the stat and the delete."""

    def stat(self, key: str) -> ObjectInfo:
        info = super().stat(key)
        return ObjectInfo(info.key, info.size, None)


def test_a_refused_delete_is_reported_and_the_rest_goes_on(
    site: Site, journal: Journal, tmp_path: Path
) -> None:
    store = StatBlindStore(tmp_path / "store")
    put_snapshot(store, "full", 1)
    put_snapshot(store, "inc", 2, parent="full")
    put_snapshot(store, "c", 3)
    put_snapshot(store, "d", 4)
    store.lock(manifest_key("blog", "inc"), LOCK_END)
    result = prune(with_retention(site, keep_last=1), store, journal, tmp_path)
    # inc could not go, so its parent stays with it; c was deleted all the same.
    assert listed(store) == ["full", "inc", "d"]
    assert result.deleted == ["c"]
    assert len(result.refused) == 2
    assert "locked until" in result.refused[0]
    assert result.refused[1] == "full: kept, incremental inc could not be deleted"
    assert not result.clean


def test_the_cycle_step_keeps_the_snapshots_of_its_run(
    site: Site, store: FileStore, journal: Journal
) -> None:
    for day, snapshot_id in enumerate(["mine", "b", "c", "d"], start=1):
        put_snapshot(store, snapshot_id, day)
    outputs: dict[str, dict[str, Any]] = {"snapshot": {"snapshot_id": "mine"}}
    said: list[str] = []
    ctx = RunContext(site, store, journal, "r9", outputs, SILENT, said.append)
    data = prune_snapshots(ctx)
    assert listed(store) == ["mine", "c", "d"]
    assert data["pruned"] == ["b"]
    assert data["kept_reasons"]["mine"] == ["snapshot of the current run r9"]
    assert said == ["blog: retention: pruned 1 old snapshot(s) and 0 orphan object(s), kept 3"]


# --- the command ---------------------------------------------------------------------------


def test_cli_prints_each_kept_snapshot_with_its_reasons(
    inventory: Path, store: FileStore, capsys: pytest.CaptureFixture[str]
) -> None:
    for day, snapshot_id in enumerate(["a", "b", "c"], start=1):
        put_snapshot(store, snapshot_id, day)
    put_orphan(store, "x")
    code = cli.main(["-i", str(inventory), "prune", "blog"])
    out = capsys.readouterr().out.splitlines()
    assert code == EXIT_OK
    assert out[0] == "blog: retention keep_last 2"
    assert out[1] == "  keep          c  2024-03-03 10:00 UTC  last"
    assert out[2] == "  keep          b  2024-03-02 10:00 UTC  last"
    assert out[3] == "  deleted       a  2024-03-01 10:00 UTC"
    assert out[4].startswith(f"  deleted       {key('x', 'db.sqlite.zst')}  (no manifest")
    assert out[-1] == "blog: deleted 1 snapshot(s) and 2 orphan object(s), kept 2"
    assert listed(store) == ["b", "c"]


def test_cli_dry_run_says_would_delete_and_deletes_nothing(
    inventory: Path, store: FileStore, capsys: pytest.CaptureFixture[str]
) -> None:
    for day, snapshot_id in enumerate(["a", "b", "c"], start=1):
        put_snapshot(store, snapshot_id, day)
    code = cli.main(["-i", str(inventory), "prune", "blog", "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert code == EXIT_OK
    assert "  would delete  a  2024-03-01 10:00 UTC" in out
    assert out[-1] == (
        "blog: would delete 1 snapshot(s) and 0 orphan object(s), kept 2 (dry run: nothing deleted)"
    )
    assert listed(store) == ["a", "b", "c"]


def test_cli_json_prints_one_object_per_line(
    inventory: Path, store: FileStore, capsys: pytest.CaptureFixture[str]
) -> None:
    for day, snapshot_id in enumerate(["a", "b", "c"], start=1):
        put_snapshot(store, snapshot_id, day)
    code = cli.main(["-i", str(inventory), "--json", "prune", "--all"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == EXIT_OK
    blog = [line for line in lines if line["site"] == "blog"]
    assert blog[0] == {
        "site": "blog",
        "kind": "snapshot",
        "snapshot_id": "c",
        "created_at": "2024-03-03T10:00:00Z",
        "action": "keep",
        "dry_run": False,
        "reasons": ["last"],
    }
    assert [(x["snapshot_id"], x["action"]) for x in blog if x["kind"] == "snapshot"] == [
        ("c", "keep"),
        ("b", "keep"),
        ("a", "delete"),
    ]
    assert blog[-1]["kind"] == "summary" and blog[-1]["deleted"] == 1
    assert [line["site"] for line in lines if line["kind"] == "summary"] == ["blog", "shop"]


def test_cli_exits_1_when_a_delete_was_refused(
    inventory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    store = StatBlindStore(tmp_path / "store")
    monkeypatch.setattr("tma_ops.commands_prune.open_store", lambda _spec: store)
    for day, snapshot_id in enumerate(["a", "b", "c"], start=1):
        put_snapshot(store, snapshot_id, day)
    store.lock(manifest_key("blog", "a"), LOCK_END)
    code = cli.main(["-i", str(inventory), "prune", "blog"])
    out = capsys.readouterr().out
    assert code == EXIT_WARNINGS
    assert "  refused  store " in out and "is locked until" in out
    assert listed(store) == ["a", "b", "c"]


def test_cli_refuses_a_locked_site_with_exit_4(
    inventory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SiteLock(tmp_path / "state", "blog") as lock:
        lock.acquire("r-other")
        code = cli.main(["-i", str(inventory), "prune", "blog", "--dry-run"])
    err = capsys.readouterr().err
    assert code == EXIT_LOCK_HELD
    assert err.startswith("tma-ops: error: site 'blog' is locked by run r-other")
    assert len(err.splitlines()) == 1


def test_cli_needs_sites_or_all(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["-i", str(inventory), "prune"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert err == "tma-ops: error: name the sites to prune, or pass --all (not both)\n"
