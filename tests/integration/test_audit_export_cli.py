"""`tma-ops audit-log export` through the real CLI, checked by the standalone verifier alone.

A real SQLite journal holds restore tests of the shape of the restore-test command (two sites,
other runs interleaved), signed run heads sit in a real file:// store, and each export (json,
csv, html) is verified by a copy of audit_verifier.py run in an empty directory with only the
public key. Changed figures, a proof re-signed by another key, a changed event, a removed
skeleton link and a wrong public key are each refused.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.s3server import REGION, TEST_KEY_ID, TEST_SECRET, MotoServer

import tma_ops.audit_verifier
from tma_ops.cycle import new_run_id
from tma_ops.journal import Journal, canonical_json
from tma_ops.model import StoreSpec
from tma_ops.signing import Signer, load_or_create_signer
from tma_ops.stores import Store, open_store

pytestmark = pytest.mark.integration

VERIFIER = Path(tma_ops.audit_verifier.__file__)
SITES = ("blog", "shop")
PERIOD = ("2000-01-01", "2999-12-31")


# --- building a journal and a store like the real commands do -------------------------------


def write_inventory(root: Path, store: dict[str, Any] | str = "file://./store") -> Path:
    environments = {
        env: {
            "executor": "local://",
            "root": f"sites/{{site}}/{env}/www",
            "database": {"engine": "sqlite", "path": f"sites/{{site}}/{env}.sqlite"},
            "smoke": [{"url": "http://127.0.0.1:9/"}],
        }
        for env in ("production", "staging")
    }
    sites = {
        name: {"tier": "business", "environments": _with_site(environments, name)} for name in SITES
    }
    document = {
        "version": 1,
        "state_dir": "state",
        "defaults": {
            "store": store,
            "stack": {"kind": "archive", "channel": "channel", "components_dir": "plugins"},
        },
        "sites": sites,
    }
    path = root / "tma.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _with_site(value: Any, site: str) -> Any:
    if isinstance(value, dict):
        return {key: _with_site(item, site) for key, item in value.items()}
    return value.replace("{site}", site) if isinstance(value, str) else value


def now_z() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def run_restore_test(journal: Journal, site: str, snapshot: str, *, passed: bool) -> str:
    """The events a restore test journals (formats.md), passed or failed at the smoke stage."""
    run_id = new_run_id()
    started = {"snapshot_id": snapshot, "environment": "sandbox", "chosen": "latest"}
    journal.append(run_id=run_id, site=site, step="restore-test", status="started", data=started)
    for stage, seconds in (("fetch-verify", 1.5), ("restore", 2.25), ("start", 0.5)):
        data = {"stage": stage, "seconds": seconds}
        journal.append(run_id=run_id, site=site, step="restore-test", status="stage", data=data)
    final = {
        "snapshot_id": snapshot,
        "snapshot_created_at": "2024-05-01T02:00:00Z",
        "snapshot_age_s": 86400.5,
        "environment": "sandbox",
        "tested_at": now_z(),
        "parts": [
            {
                "name": "db",
                "snapshot_id": snapshot,
                "key": f"{site}/snapshots/{snapshot}/db",
                "sha256": "ab" * 32,
                "size": 4096,
                "stored_size": 1234,
            },
            {
                "name": "files",
                "snapshot_id": snapshot,
                "key": f"{site}/snapshots/{snapshot}/f",
                "sha256": "cd" * 32,
                "size": 81920,
                "stored_size": 40000,
            },
        ],
        "bytes_read": 41234,
        "time_to_recovery_s": 7.75 if passed else None,
        "smoke": [
            {
                "name": "home",
                "kind": "http",
                "ok": passed,
                "detail": "" if passed else "expected 'Atelier' in the page",
            }
        ],
        "failed_stage": None if passed else "smoke",
        "cause": None if passed else "smoke check home failed: expected 'Atelier' in the page",
        "teardown": "done",
    }
    status = "passed" if passed else "failed"
    journal.append(run_id=run_id, site=site, step="restore-test", status=status, data=final)
    return run_id


def other_run(journal: Journal, site: str) -> None:
    run_id = new_run_id()
    for step in ("snapshot", "refresh_staging", "apply"):
        journal.append(run_id=run_id, site=site, step=step, status="done", data={"n": 1})


def head_document(journal: Journal, signer: Signer, run_id: str, site: str) -> dict[str, Any]:
    last_id, last_hash = journal.head()
    head = {
        "journal_id": journal.journal_id,
        "last_id": last_id,
        "last_hash": last_hash,
        "run_id": run_id,
        "site": site,
        "signed_at": now_z(),
        "key_id": signer.key_id,
    }
    return {"head": head, "signature": signer.sign(canonical_json(head).encode("utf-8"))}


def put_head(store: Store, document: dict[str, Any]) -> None:
    head = document["head"]
    key = f"journal/{head['journal_id']}/heads/{head['last_id']:012d}.json"
    store.put(key, io.BytesIO(canonical_json(document).encode("utf-8")))


@dataclass
class World:
    root: Path
    inventory: Path
    public_key: Path
    signer: Signer
    covered_runs: list[str]
    uncovered_run: str
    journal_id: str

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "tma_ops", "-i", str(self.inventory), *args],
            capture_output=True,
            timeout=120,
            check=False,
            cwd=cwd or self.root,
        )


def build_world(root: Path, store_setting: dict[str, Any] | str = "file://./store") -> World:
    """Restore tests of two sites, other runs between them, heads after the first two tests."""
    root.mkdir(parents=True, exist_ok=True)
    inventory = write_inventory(root, store_setting)
    signer = load_or_create_signer(root / "state" / "journal-signing-key.pem")
    store = open_store(
        store_setting if isinstance(store_setting, str) else _spec(store_setting), base_dir=root
    )
    with Journal(root / "state" / "journal.sqlite") as journal:
        other_run(journal, "shop")
        first = run_restore_test(journal, "blog", "20240501T020000Z-aaaaaa", passed=True)
        other_run(journal, "shop")
        put_head(store, head_document(journal, signer, first, "blog"))
        second = run_restore_test(journal, "shop", "20240501T030000Z-bbbbbb", passed=False)
        other_run(journal, "blog")
        put_head(store, head_document(journal, signer, second, "shop"))
        other_run(journal, "shop")
        third = run_restore_test(journal, "blog", "20240502T020000Z-cccccc", passed=True)
        journal_id = journal.journal_id
    return World(
        root,
        inventory,
        root / "state" / "journal-signing-key.pem.pub",
        signer,
        [first, second],
        third,
        journal_id,
    )


def _spec(setting: dict[str, Any]) -> StoreSpec:
    return StoreSpec(**setting)


# --- the standalone verifier --------------------------------------------------------------


def standalone_verify(
    export: Path, public_key: Path, scratch: Path
) -> subprocess.CompletedProcess[str]:
    """audit_verifier.py copied alone into an empty directory, run isolated (-I)."""
    scratch.mkdir(parents=True)
    shutil.copy(VERIFIER, scratch / "audit_verifier.py")
    shutil.copy(export, scratch / export.name)
    shutil.copy(public_key, scratch / "journal-signing-key.pem.pub")
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-X",
            "importtime",
            "audit_verifier.py",
            export.name,
            "--public-key",
            "journal-signing-key.pem.pub",
        ],
        capture_output=True,
        text=True,
        cwd=scratch,
        timeout=60,
        check=False,
    )
    imported = [line for line in done.stderr.splitlines() if "import time:" in line]
    assert imported, done.stderr
    assert not [line for line in imported if "tma_ops" in line], "the verifier imported tma_ops"
    return done


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("audit") / "ws")


def export_file(world: World, fmt: str, name: str, *extra: str) -> Path:
    target = world.root / name
    done = world.cli(
        "audit-log",
        "export",
        "--from",
        PERIOD[0],
        "--to",
        PERIOD[1],
        "--format",
        fmt,
        "--output",
        str(target),
        *extra,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert f"wrote {target}".encode() in done.stdout
    return target


def resign(document: dict[str, Any], signer: Signer) -> None:
    payload = canonical_json(document["export"]).encode("utf-8")
    document["signature"] = {
        "algorithm": "ed25519",
        "key_id": signer.key_id,
        "value": signer.sign(payload),
    }


# --- exports that verify ------------------------------------------------------------------


def test_json_export_holds_the_restore_tests_and_a_proof_the_verifier_alone_accepts(
    world: World, tmp_path: Path
) -> None:
    export = export_file(world, "json", "all.json")
    document = json.loads(export.read_text())["export"]

    tests = document["restore_tests"]
    assert [(t["site"], t["run_id"], t["status"]) for t in tests] == [
        ("blog", world.covered_runs[0], "passed"),
        ("shop", world.covered_runs[1], "failed"),
        ("blog", world.uncovered_run, "passed"),
    ]
    assert tests[0]["parts"][0]["sha256"] == "ab" * 32 and tests[0]["time_to_recovery_s"] == 7.75
    assert tests[1]["failed_stage"] == "smoke" and "home failed" in tests[1]["cause"]
    assert [t["covered_by_signed_head"] for t in tests] == [True, True, False]
    assert document["journal"]["verify"]["ok"] and document["journal"]["last_id"] == 27
    assert [(h["last_id"], h["signature_ok"], h["problem"]) for h in document["signed_heads"]] == [
        (11, True, None),
        (19, True, None),
    ]
    proof = document["proof"]
    assert [e["id"] for e in proof["events"]] == [*range(4, 9), *range(12, 17), *range(23, 28)]
    assert [entry[0] for entry in proof["skeleton"]] == list(range(4, 28))
    assert proof["covering_head"]["head"]["last_id"] == 19
    assert proof["not_yet_covered"] == list(range(23, 28))

    done = standalone_verify(export, world.public_key, tmp_path / "auditor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signature: ok" in done.stdout
    assert "events: 15 exported event(s) re-hashed from their content, all match" in done.stdout
    assert "skeleton: 24 link(s) from event 4 to event 27" in done.stdout
    assert "covering head: event 19 of run" in done.stdout
    assert "not yet covered by a signed head: event(s) 23, 24, 25, 26, 27" in done.stdout


def test_site_and_period_select_the_restore_tests(world: World) -> None:
    done = world.cli(
        "audit-log", "export", "--from", PERIOD[0], "--to", PERIOD[1], "--site", "shop"
    )
    assert done.returncode == 0, done.stderr.decode()
    export = json.loads(done.stdout)["export"]
    assert [t["run_id"] for t in export["restore_tests"]] == [world.covered_runs[1]]
    # Only shop's events in full; the blog events between them appear as hashes only.
    assert {e["site"] for e in export["proof"]["events"]} == {"shop"}
    assert [entry[0] for entry in export["proof"]["skeleton"]] == list(range(12, 20))
    assert export["proof"]["not_yet_covered"] == []

    past = world.cli("audit-log", "export", "--from", "2001-01-01", "--to", "2001-01-31")
    assert past.returncode == 0, past.stderr.decode()
    empty = json.loads(past.stdout)["export"]
    assert empty["restore_tests"] == [] and empty["proof"]["skeleton"] == []


def test_csv_export_is_signed_and_says_it_has_no_chain_proof(world: World, tmp_path: Path) -> None:
    done = world.cli(
        "audit-log", "export", "--from", PERIOD[0], "--to", PERIOD[1], "--format", "csv"
    )
    assert done.returncode == 0, done.stderr.decode()
    export = tmp_path / "tests.csv"
    export.write_bytes(done.stdout)
    lines = done.stdout.decode().splitlines()
    assert lines[-1].startswith(f"# tma-ops-signature ed25519 {world.signer.key_id} ")
    rows = [line for line in lines if line.startswith(("blog,", "shop,"))]
    assert len(rows) == 3 and ",failed," in rows[1] and "sha256=" + "cd" * 32 in rows[0]

    verified = standalone_verify(export, world.public_key, tmp_path / "auditor")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "a csv carries no chain proof" in verified.stdout

    changed = tmp_path / "changed.csv"
    changed.write_bytes(done.stdout.replace(b",41234,", b",41235,", 1))
    refused = standalone_verify(changed, world.public_key, tmp_path / "auditor2")
    assert refused.returncode == 6
    assert "FAILED: signature: the signature does not verify" in refused.stdout


def test_html_export_is_readable_signed_and_carries_the_proof(world: World, tmp_path: Path) -> None:
    done = world.cli(
        "audit-log",
        "export",
        "--from",
        "2000-01-01",
        "--to",
        "2999-12-31",
        "--format",
        "html",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr.decode()
    page_path = tmp_path / "tma-audit-2000-01-01-2999-12-31.html"
    assert str(page_path.name) in done.stdout.decode()
    page = page_path.read_text()
    assert "<table>" in page and world.uncovered_run in page
    assert "not yet covered by a signed head" in page
    assert 'id="tma-audit-export"' in page
    assert page.splitlines()[-1].startswith("<!-- tma-ops-signature ed25519 ")

    verified = standalone_verify(page_path, world.public_key, tmp_path / "auditor")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "format: html" in verified.stdout and "covering head: event 19" in verified.stdout

    changed = tmp_path / "changed.html"
    changed.write_text(page.replace("40.3 KiB", "40.4 KiB", 1), encoding="utf-8")
    assert changed.read_text() != page
    refused = standalone_verify(changed, world.public_key, tmp_path / "auditor2")
    assert refused.returncode == 6 and "signature does not verify" in refused.stdout


def test_the_cli_verify_command_agrees_with_the_standalone_verifier(world: World) -> None:
    export = export_file(world, "json", "cli.json")
    done = world.cli("audit-log", "verify", str(export), "--public-key", str(world.public_key))
    assert done.returncode == 0, done.stderr.decode()
    assert b"covering head: event 19" in done.stdout
    assert b"ok: " in done.stdout


# --- exports that are refused -------------------------------------------------------------


def test_a_changed_figure_in_the_json_is_refused(world: World, tmp_path: Path) -> None:
    export = export_file(world, "json", "figure.json")
    text = export.read_text()
    assert '"time_to_recovery_s": 7.75' in text
    export.write_text(text.replace('"time_to_recovery_s": 7.75', '"time_to_recovery_s": 2.75', 1))
    done = standalone_verify(export, world.public_key, tmp_path / "auditor")
    assert done.returncode == 6
    assert "FAILED: signature: the signature does not verify" in done.stdout


def test_a_changed_event_re_signed_with_another_key_fails_on_the_key(
    world: World, tmp_path: Path
) -> None:
    export = export_file(world, "json", "forged.json")
    document = json.loads(export.read_text())
    event = document["export"]["proof"]["events"][4]  # blog's first final event
    event["data"]["time_to_recovery_s"] = 1.0
    document["export"]["restore_tests"][0]["time_to_recovery_s"] = 1.0
    attacker = load_or_create_signer(tmp_path / "attacker.pem")
    resign(document, attacker)
    export.write_text(json.dumps(document))
    done = standalone_verify(export, world.public_key, tmp_path / "auditor")
    assert done.returncode == 6
    assert f"signed by key {attacker.key_id}, which is not the given public key" in done.stdout


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        pytest.param(
            lambda proof: proof["events"][4]["data"].update(bytes_read=1),
            "event 8: hash does not match its content",
            id="changed-event",
        ),
        pytest.param(
            lambda proof: proof["skeleton"].pop(6),
            "skeleton: event 10 is missing",
            id="removed-skeleton-link",
        ),
        pytest.param(
            lambda proof: proof["skeleton"][2].__setitem__(2, "0" * 64),
            "skeleton: event 7 does not link to event 6",
            id="altered-skeleton-hash",
        ),
        pytest.param(
            lambda proof: proof.update(not_yet_covered=[]),
            "are not covered by the signed head",
            id="uncovered-claimed-covered",
        ),
        pytest.param(
            lambda proof: proof["covering_head"]["head"].update(last_hash="1" * 64),
            "signed head of event 19",
            id="altered-head",
        ),
    ],
)
def test_a_broken_proof_fails_even_when_signed_with_the_journal_key(
    world: World, tmp_path: Path, tamper: Any, expected: str
) -> None:
    export = export_file(world, "json", "proof.json")
    document = json.loads(export.read_text())
    tamper(document["export"]["proof"])
    resign(document, world.signer)
    export.write_text(json.dumps(document))
    done = standalone_verify(export, world.public_key, tmp_path / "auditor")
    assert done.returncode == 6, done.stdout
    assert "FAILED: " in done.stdout and expected in done.stdout


def test_a_wrong_public_key_is_refused(world: World, tmp_path: Path) -> None:
    export = export_file(world, "json", "key.json")
    other = load_or_create_signer(tmp_path / "other" / "key.pem")
    done = standalone_verify(export, tmp_path / "other" / "key.pem.pub", tmp_path / "auditor")
    assert done.returncode == 6
    assert f"not the given public key ({other.key_id})" in done.stdout


def test_a_forged_head_in_the_store_is_named_and_fails_the_export_check(
    tmp_path: Path,
) -> None:
    world = build_world(tmp_path / "ws")
    attacker = load_or_create_signer(tmp_path / "attacker.pem")
    with Journal(world.root / "state" / "journal.sqlite") as journal:
        forged = head_document(journal, attacker, world.uncovered_run, "blog")
    forged["head"]["key_id"] = world.signer.key_id
    forged["signature"] = base64.b64encode(b"\0" * 64).decode()
    put_head(open_store("file://./store", base_dir=world.root), forged)

    target = world.root / "forged-head.json"
    done = world.cli(
        "audit-log", "export", "--from", PERIOD[0], "--to", PERIOD[1], "--output", str(target)
    )
    assert done.returncode == 6, done.stderr.decode()
    assert b"forged or damaged head" in done.stderr
    export = json.loads(target.read_text())["export"]
    assert export["proof"]["covering_head"]["head"]["last_id"] == 19
    verified = standalone_verify(target, world.public_key, tmp_path / "auditor")
    assert verified.returncode == 6
    assert "000000000027.json" in verified.stdout and "forged or damaged head" in verified.stdout


def test_heads_in_an_s3_bucket_cover_the_export(
    tmp_path: Path, s3_server: MotoServer, s3_bucket: str
) -> None:
    setting = {
        "url": f"s3://{s3_bucket}/agency",
        "endpoint_url": s3_server.endpoint,
        "region": REGION,
        "access_key_id": TEST_KEY_ID,
        "secret_access_key": TEST_SECRET,
    }
    world = build_world(tmp_path / "ws", setting)
    export = export_file(world, "json", "s3.json")
    assert TEST_SECRET not in export.read_text()
    document = json.loads(export.read_text())["export"]
    assert {head["store"] for head in document["signed_heads"]} == {setting["url"]}
    assert document["proof"]["covering_head"]["head"]["last_id"] == 19
    done = standalone_verify(export, world.public_key, tmp_path / "auditor")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_journal_edited_behind_its_back_is_exported_flagged_and_refused(tmp_path: Path) -> None:
    world = build_world(tmp_path / "ws")
    with closing(sqlite3.connect(world.root / "state" / "journal.sqlite")) as connection:
        connection.execute("DROP TRIGGER events_no_update")
        connection.execute("UPDATE events SET data = replace(data, '7.75', '1.25') WHERE id = 8")
        connection.commit()
    target = world.root / "edited.json"
    done = world.cli(
        "audit-log", "export", "--from", PERIOD[0], "--to", PERIOD[1], "--output", str(target)
    )
    assert done.returncode == 6, done.stderr.decode()
    assert b"journal chain: event 8: hash does not match its content" in done.stderr
    export = json.loads(target.read_text())["export"]
    assert export["restore_tests"][0]["time_to_recovery_s"] == 1.25  # nothing hidden
    verified = standalone_verify(target, world.public_key, tmp_path / "auditor")
    assert verified.returncode == 6
    assert "FAILED: event 8: hash does not match its content" in verified.stdout


def test_the_verifier_also_runs_in_place_inside_the_installed_package(world: World) -> None:
    # Beside tma_ops' own modules (bisect.py shadows the standard library's when run there).
    export = export_file(world, "json", "in-place.json")
    done = subprocess.run(
        [sys.executable, str(VERIFIER), str(export), "--public-key", str(world.public_key)],
        capture_output=True,
        text=True,
        cwd=VERIFIER.parent,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ok: {export} verified" in done.stdout
