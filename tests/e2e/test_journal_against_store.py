"""`tma-ops journal verify --against-store`: a journal rewritten so well that its own chain and head
row check out is still caught by the signed heads every run left in the store."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Workspace, make_workspace

from tma_ops.errors import EXIT_INTEGRITY, EXIT_OK
from tma_ops.journal import Journal, canonical_json, event_hash
from tma_ops.journal_heads import HEAD_STEP, head_key
from tma_ops.signing import load_or_create_signer

pytestmark = pytest.mark.e2e

COLUMNS = ("id", "time", "run_id", "site", "step", "status", "data", "prev_hash", "hash")
RUNS = (  # every kind of run that leaves a signed head behind
    ("cycle", "blog"),
    ("rollback", "blog", "--yes"),
    ("snapshot", "blog"),
    ("restore", "blog", "latest", "--to", "staging"),
    ("prune", "blog"),
)


@dataclass
class Head:
    last_id: int
    run_id: str
    signed_at: str


@dataclass
class Journaled:
    workspace: Workspace
    journal_id: str
    heads: list[Head]  # oldest first, one per run of RUNS

    def heads_dir(self) -> Path:
        return self.workspace.root / "store" / "journal" / self.journal_id / "heads"

    def state_copy(self, into: Path) -> Path:
        shutil.copytree(self.workspace.root / "state", into)
        return into


@pytest.fixture(scope="module")
def journaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journaled]:
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("against-store") / "ws"
        for workspace in make_workspace(root, patch):
            for run in RUNS:
                done = workspace.cli(*run)
                assert done.returncode == EXIT_OK, (run, done.stdout, done.stderr)
                assert "warning" not in done.stderr, done.stderr
            with Journal(root / "state" / "journal.sqlite") as journal:
                journal_id = journal.journal_id
            heads_dir = root / "store" / "journal" / journal_id / "heads"
            heads = [head_of(path) for path in sorted(heads_dir.iterdir())]
            yield Journaled(workspace, journal_id, heads)


def head_of(path: Path) -> Head:
    head = json.loads(path.read_text())["head"]
    return Head(head["last_id"], head["run_id"], head["signed_at"])


def test_every_run_leaves_a_signed_head_that_the_untouched_journal_matches(
    journaled: Journaled,
) -> None:
    assert len(journaled.heads) == len(RUNS)
    assert journaled.heads[0].run_id != journaled.heads[1].run_id
    result = journaled.workspace.cli("journal", "verify", "--against-store")
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    newest = journaled.heads[-1].last_id
    assert f"{len(RUNS)} signed head(s) match (newest: event {newest})" in result.stdout


# --- an attacker with the journal file: rewrite, then rechain and fix the head row -----------

Rows = list[dict[str, Any]]


def rewrite_journal(path: Path, change: Callable[[Rows], Rows]) -> None:
    """Apply `change` to the events, then renumber, rehash and rechain them and set the head row,
    so that the journal's own verification finds nothing wrong."""
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.row_factory = sqlite3.Row
        rows = [dict(row) for row in connection.execute("SELECT * FROM events ORDER BY id")]
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='trigger'"):
            connection.execute(f"DROP TRIGGER {name}")
        connection.execute("DELETE FROM events")
        prev_hash = "0" * 64
        for number, row in enumerate(change(rows), start=1):
            fields = {**row, "id": number, "prev_hash": prev_hash, "data": json.loads(row["data"])}
            fields.pop("hash")
            prev_hash = event_hash(fields)
            values = {**fields, "data": canonical_json(fields["data"]), "hash": prev_hash}
            connection.execute(
                f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * 9)})",
                [values[column] for column in COLUMNS],
            )
            last_id = number
        connection.execute("UPDATE head SET last_id = ?, last_hash = ?", (last_id, prev_hash))


def edited(event_id: int) -> Callable[[Rows], Rows]:
    def change(rows: Rows) -> Rows:
        row = rows[event_id - 1]
        row["data"] = canonical_json({**json.loads(row["data"]), "outcome": "nothing happened"})
        return rows

    return change


def deleted(event_id: int) -> Callable[[Rows], Rows]:
    return lambda rows: rows[: event_id - 1] + rows[event_id:]


def swapped(event_id: int) -> Callable[[Rows], Rows]:
    def change(rows: Rows) -> Rows:
        rows[event_id - 1], rows[event_id] = rows[event_id], rows[event_id - 1]
        return rows

    return change


def cut_after(event_id: int) -> Callable[[Rows], Rows]:
    return lambda rows: rows[:event_id]


def rewrite_message(changed: Head, bound: Head, later: int) -> str:
    return (
        f"event {changed.last_id} differs from the signed head of run {changed.run_id} signed "
        f"at {changed.signed_at}: the journal was rewritten at or before event "
        f"{changed.last_id}, after event {bound.last_id} (which matches the head of run "
        f"{bound.run_id}); {later} later head(s) differ too"
    )


def truncation_message(newest: Head, local_end: int) -> str:
    return (
        f"journal truncated: the store's head of run {newest.run_id} says event "
        f"{newest.last_id}, the local journal ends at {local_end}"
    )


@pytest.mark.parametrize("tampering", ["edit", "delete", "reorder", "truncate"])
def test_a_rechained_journal_passes_alone_and_is_named_against_the_store(
    journaled: Journaled, tmp_path: Path, tampering: str
) -> None:
    first, second, *_, newest = journaled.heads
    after_second = len(journaled.heads) - 2
    target = second.last_id - 1  # an event of the second run, which the first head does not sign
    change, expected = {
        "edit": (edited(target), [rewrite_message(second, first, after_second)]),
        "delete": (
            deleted(target),
            [
                truncation_message(newest, newest.last_id - 1),
                rewrite_message(second, first, after_second - 1),
            ],
        ),
        "reorder": (swapped(target - 1), [rewrite_message(second, first, after_second)]),
        "truncate": (
            cut_after(second.last_id),
            [
                truncation_message(newest, second.last_id)
                + f" ({len(journaled.heads) - 3} other head(s) beyond it too)"
            ],
        ),
    }[tampering]
    state = journaled.state_copy(tmp_path / "state")
    rewrite_journal(state / "journal.sqlite", change)
    cli = journaled.workspace.cli

    alone = cli("--state", str(state), "journal", "verify")
    assert alone.returncode == EXIT_OK, alone.stderr  # the rewrite fools the local check
    result = cli("--state", str(state), "journal", "verify", "--against-store")
    assert result.returncode == EXIT_INTEGRITY, result.stdout + result.stderr
    assert [line.removeprefix("  FAILED: ") for line in result.stdout.splitlines()[1:]] == expected
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert expected[0] in result.stderr

    report = json.loads(
        cli("--state", str(state), "journal", "verify", "--against-store", "--json").stdout
    )
    assert report["problems"] == expected and report["ok"] is False
    assert report["local"]["ok"] is True


def test_a_forged_head_is_named(journaled: Journaled, tmp_path: Path) -> None:
    newest = journaled.heads[-1]
    genuine = journaled.heads_dir() / f"{newest.last_id:012d}.json"
    document = json.loads(genuine.read_text())
    forger = load_or_create_signer(tmp_path / "forger.pem")
    head = {**document["head"], "last_id": newest.last_id + 1, "key_id": forger.key_id}
    key = head_key(journaled.journal_id, newest.last_id + 1)
    forged = journaled.workspace.root / "store" / key
    forged.write_text(
        canonical_json(
            {"head": head, "signature": forger.sign(canonical_json(head).encode("utf-8"))}
        )
    )
    try:
        result = journaled.workspace.cli("journal", "verify", "--against-store")
    finally:
        forged.unlink()
    assert result.returncode == EXIT_INTEGRITY, result.stdout + result.stderr
    problems = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert len(problems) == 1
    assert f"forged or damaged head {key}: its signature does not verify" in problems[0]
    assert f"it names key {forger.key_id}" in problems[0]


def test_heads_of_a_former_key_are_trusted_when_it_is_given(
    journaled: Journaled, tmp_path: Path
) -> None:
    """After a key change, the newest head is signed by the new key and the older ones by the
    former key: each verifies with the key it names once both are given."""
    newest = journaled.heads[-1]
    path = journaled.heads_dir() / f"{newest.last_id:012d}.json"
    genuine = path.read_text()
    new_key = load_or_create_signer(tmp_path / "new.pem")
    head = {**json.loads(genuine)["head"], "key_id": new_key.key_id}
    signature = new_key.sign(canonical_json(head).encode("utf-8"))
    path.write_text(canonical_json({"head": head, "signature": signature}))
    state = journaled.workspace.root / "state"
    former = state / "journal-signing-key.pem.pub"
    try:
        only_new = journaled.workspace.cli(
            "journal", "verify", "--against-store", "--public-key", str(tmp_path / "new.pem.pub")
        )
        both = journaled.workspace.cli(
            "journal",
            "verify",
            "--against-store",
            "--public-key",
            str(tmp_path / "new.pem.pub"),
            "--public-key",
            str(former),
        )
    finally:
        path.write_text(genuine)
    assert only_new.returncode == EXIT_INTEGRITY
    assert only_new.stdout.count("FAILED: forged or damaged head") == len(journaled.heads) - 1
    assert both.returncode == EXIT_OK, both.stdout + both.stderr


def test_another_machine_verifies_with_the_public_key_alone(
    journaled: Journaled, tmp_path: Path
) -> None:
    state = journaled.state_copy(tmp_path / "state")
    public = tmp_path / "journal-signing-key.pem.pub"
    (state / "journal-signing-key.pem.pub").rename(public)
    (state / "journal-signing-key.pem").unlink()
    cli = journaled.workspace.cli

    missing = cli("--state", str(state), "journal", "verify", "--against-store")
    assert missing.returncode != EXIT_OK
    assert "pass --public-key" in missing.stderr and missing.stderr.count("\n") == 1
    ok = cli(
        "--state",
        str(state),
        "journal",
        "verify",
        "--against-store",
        "--public-key",
        str(public),
        "--site",
        "blog",
    )
    assert ok.returncode == EXIT_OK, ok.stdout + ok.stderr
    wrong = tmp_path / "wrong.pem"
    load_or_create_signer(wrong)
    refused = cli(
        "--state",
        str(state),
        "journal",
        "verify",
        "--against-store",
        "--public-key",
        f"{wrong}.pub",
    )
    assert refused.returncode == EXIT_INTEGRITY
    assert refused.stdout.count("FAILED: forged or damaged head") == len(journaled.heads)
    assert state.joinpath("journal-signing-key.pem").exists() is False  # verifying makes no key


def test_a_head_the_store_refuses_does_not_fail_the_run(workspace: Workspace) -> None:
    blocker = workspace.root / "store" / "journal"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the heads' folder belongs\n")

    refused = workspace.cli("snapshot", "blog")
    assert refused.returncode == EXIT_OK, refused.stderr
    assert "the journal's signed head was not copied to the store" in refused.stderr
    with workspace.journal() as journal:
        failures = [e for e in journal.events() if e.step == HEAD_STEP]
    assert [e.status for e in failures] == ["failed"]

    blocker.unlink()
    published = workspace.cli("snapshot", "blog")
    assert published.returncode == EXIT_OK and "warning" not in published.stderr
    result = workspace.cli("journal", "verify", "--against-store")
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert "1 signed head(s) match" in result.stdout
