"""Signed run heads put in real stores (files, the S3 API server with Object Lock) and read back."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.s3server import TEST_SECRET, MotoServer, s3_spec

from tma_ops.config import Inventory, Site, load_inventory
from tma_ops.demo.workspace import build_workspace
from tma_ops.errors import ObjectLocked
from tma_ops.journal import Journal
from tma_ops.journal_heads import (
    HEAD_STEP,
    check_against_heads,
    head_key,
    head_published_after,
    list_heads,
    publish_after_run,
    publish_run_head,
    signer_for,
)
from tma_ops.model import ObjectLock, StoreSpec
from tma_ops.stores import open_store

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).parents[2] / "inventories" / "demo" / "tma.yaml"
LOCK = ObjectLock(mode="governance", days=1)


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMA_DEMO_PORT", "1")  # smoke URLs only: no server is needed
        inventory_file = build_workspace(tmp_path_factory.mktemp("heads") / "ws", TEMPLATE)
        yield load_inventory(inventory_file).site("blog")


def with_store(site: Site, spec: StoreSpec, state_dir: Path) -> tuple[Site, Inventory]:
    moved = site.model_copy(update={"store": spec})
    return moved, Inventory(sites={site.name: moved}, state_dir=state_dir, files=[])


@pytest.fixture(params=["file", "s3"])
def locked_spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    if request.param == "file":
        return StoreSpec(url=f"file://{tmp_path / 'store'}", object_lock=LOCK)
    server: MotoServer = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    return s3_spec(server.endpoint, bucket, "agency", object_lock=LOCK)


def run(journal: Journal, run_id: str, events: int = 3) -> None:
    for _ in range(events):
        journal.append(run_id=run_id, site="blog", step="step", status="done")


def test_heads_are_put_locked_listed_oldest_first_and_match(
    locked_spec: StoreSpec, tmp_path: Path
) -> None:
    store = open_store(locked_spec)
    signer = signer_for(tmp_path / "state", None)
    with Journal(tmp_path / "journal.sqlite") as journal:
        keys = []
        for number in range(1, 4):
            run(journal, f"run-{number}", events=4 + number)
            keys.append(
                publish_run_head(
                    journal,
                    store,
                    signer,
                    f"run-{number}",
                    "blog",
                    object_lock=locked_spec.object_lock,
                )
            )
        again = publish_run_head(journal, store, signer, "run-3-again", "blog")
        events, local, journal_id = journal.events(), journal.verify(), journal.journal_id
    assert keys == [head_key(journal_id, n) for n in (5, 11, 18)]
    assert again == keys[-1]  # nothing new to sign: the stored head stays as it was
    heads = list_heads(store, journal_id)
    assert [h["key"] for h in heads] == keys
    assert [h["head"]["run_id"] for h in heads] == ["run-1", "run-2", "run-3"]
    report = check_against_heads(events, heads, signer.public_pem, local=local)
    assert report.ok and report.matching == 3 and report.newest_matching == 18
    oldest = heads[0]["key"]
    assert store.stat(oldest).locked_until is not None
    with pytest.raises(ObjectLocked):
        store.delete(oldest)


def test_a_damaged_document_in_the_bucket_is_named(
    s3_server: MotoServer, s3_bucket: str, tmp_path: Path
) -> None:
    store = open_store(s3_spec(s3_server.endpoint, s3_bucket, "agency"))
    signer = signer_for(tmp_path, None)
    with Journal(tmp_path / "journal.sqlite") as journal:
        run(journal, "run-1")
        publish_run_head(journal, store, signer, "run-1", "blog")
        run(journal, "run-2")
        publish_run_head(journal, store, signer, "run-2", "blog")
        events, journal_id = journal.events(), journal.journal_id
    damaged = head_key(journal_id, 3)
    store.put(damaged, io.BytesIO(b'{"head": {"last_id": 3}, "signature": "x"}'))
    heads = list_heads(store, journal_id)
    report = check_against_heads(events, heads, signer.public_pem, journal_id=journal_id)
    assert report.problems == [
        f"forged or damaged head {damaged}: head must have exactly the fields "
        "journal_id, key_id, last_hash, last_id, run_id, signed_at, site"
    ]
    assert report.matching == 1 and not report.ok


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_store_does_not_fail_the_run_and_is_journaled(
    blog: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = s3_spec(f"http://127.0.0.1:{closed_port()}", "gone", "agency")
    site, inventory = with_store(blog, spec, tmp_path)
    with Journal(tmp_path / "journal.sqlite", secrets=inventory.secrets()) as journal:
        with head_published_after(journal, inventory, tmp_path, site):
            run(journal, "run-1")
        with (
            pytest.raises(RuntimeError, match="the run's own failure"),
            head_published_after(journal, inventory, tmp_path, site, run_id="run-2"),
        ):
            run(journal, "run-2")
            raise RuntimeError("the run's own failure")
        failures = [e for e in journal.events() if e.step == HEAD_STEP]
        assert journal.verify().ok
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 2
    assert all(
        w.startswith("tma-ops: warning: blog: the journal's signed head was not copied")
        and "127.0.0.1" in w
        and w.endswith("the next run's head will cover it")
        for w in warnings
    )
    assert [(e.run_id, e.status) for e in failures] == [("run-1", "failed"), ("run-2", "failed")]
    assert all("127.0.0.1" in e.data["error"] for e in failures)
    assert TEST_SECRET not in "".join(warnings) + str([e.data for e in failures])


def test_a_store_refusing_the_head_does_not_fail_the_run(blog: Site, tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "journal").write_text("a file where the heads' folder would be\n")
    site, inventory = with_store(blog, StoreSpec(url=f"file://{tmp_path / 'store'}"), tmp_path)
    told: list[str] = []
    with Journal(tmp_path / "journal.sqlite") as journal:
        run(journal, "run-1")
        assert publish_after_run(journal, inventory, tmp_path, site, warn=told.append) is None
        (tmp_path / "store" / "journal").unlink()
        key = publish_after_run(journal, inventory, tmp_path, site, warn=told.append)
        last_id = journal.head()[0]
        journal_id = journal.journal_id
    assert len(told) == 1 and "was not copied to the store" in told[0]
    assert key == head_key(journal_id, last_id)  # the failure event is covered by this head
    assert last_id == 4
