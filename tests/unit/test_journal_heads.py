"""Signed run heads: the document, its parsing, and the journal checked against the heads."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tma_ops.cli import Interrupted
from tma_ops.config import Inventory
from tma_ops.errors import TmaError
from tma_ops.journal import Journal, VerifyReport, canonical_json
from tma_ops.journal_heads import (
    check_against_heads,
    configured_signing_key,
    head_key,
    is_interruption,
    key_for_head,
    parse_head,
    sign_head,
    signer_for,
    signing_key_path,
    trusted_public_keys,
)
from tma_ops.model_journal import JournalSettings
from tma_ops.signing import Signer, load_or_create_signer, public_key_path, verify_signature

pytestmark = pytest.mark.unit

RUN_ENDS = {"run-1": 3, "run-2": 6, "run-3": 9}  # run -> id of its last event
LOCAL_END = 10  # one event after the newest head: not signed yet


@dataclass(frozen=True)
class Signed:
    journal_id: str
    hashes: dict[int, str]
    heads: list[dict[str, Any]]
    signer: Signer
    other: Signer  # a key that signed nothing of this journal


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    """A real journal of 10 events whose runs ended at events 3, 6 and 9, each head signed."""
    root = tmp_path_factory.mktemp("heads")
    signer = load_or_create_signer(root / "key.pem")
    heads = []
    with Journal(root / "journal.sqlite") as journal:
        for run_id, last in RUN_ENDS.items():
            while journal.head()[0] < last:
                journal.append(run_id=run_id, site="blog", step="step", status="done")
            document = sign_head(journal, signer, run_id, "blog")
            heads.append({"key": head_key(journal.journal_id, last), **document})
        journal.append(run_id="run-4", site="blog", step="run", status="started")
        hashes = {event.id: event.hash for event in journal.events()}
        journal_id = journal.journal_id
    return Signed(journal_id, hashes, heads, signer, load_or_create_signer(root / "other.pem"))


def rewritten_from(first: int) -> Callable[[dict[int, str]], dict[int, str]]:
    """Events from `first` on were rewritten (so every hash from there on changes)."""
    return lambda hashes: {i: h if i < first else "f" * 64 for i, h in hashes.items()}


def cut_after(last: int) -> Callable[[dict[int, str]], dict[int, str]]:
    return lambda hashes: {i: h for i, h in hashes.items() if i <= last}


def deleted(event_id: int) -> Callable[[dict[int, str]], dict[int, str]]:
    """One event deleted, the later ones renumbered and rechained: one id fewer, all changed."""
    return lambda hashes: {
        i: h if i < event_id else "e" * 64 for i, h in hashes.items() if i < max(hashes)
    }


@pytest.mark.parametrize(
    ("tamper", "problems", "bounds"),
    [
        (lambda h: h, [], (None, None)),
        (rewritten_from(10), [], (None, None)),  # after the newest head: nothing signed it
        (
            rewritten_from(5),
            [
                "event 6 differs from the signed head of run run-2 signed at {run-2}: the journal "
                "was rewritten at or before event 6, after event 3 (which matches the head of run "
                "run-1); 1 later head(s) differ too"
            ],
            (3, 6),
        ),
        (
            rewritten_from(1),
            [
                "event 3 differs from the signed head of run run-1 signed at {run-1}: the journal "
                "was rewritten at or before event 3; 2 later head(s) differ too"
            ],
            (0, 3),
        ),
        (
            cut_after(7),
            [
                "journal truncated: the store's head of run run-3 says event 9, the local journal "
                "ends at 7"
            ],
            (None, None),
        ),
        (
            cut_after(2),
            [
                "journal truncated: the store's head of run run-3 says event 9, the local journal "
                "ends at 2 (2 other head(s) beyond it too)"
            ],
            (None, None),
        ),
        (
            deleted(5),
            [
                "event 6 differs from the signed head of run run-2 signed at {run-2}: the journal "
                "was rewritten at or before event 6, after event 3 (which matches the head of run "
                "run-1); 1 later head(s) differ too"
            ],
            (3, 6),
        ),
        (
            deleted(8),
            [
                "event 9 differs from the signed head of run run-3 signed at {run-3}: the journal "
                "was rewritten at or before event 9, after event 6 (which matches the head of run "
                "run-2)"
            ],
            (6, 9),
        ),
        (
            lambda h: cut_after(8)(deleted(2)(h)),
            [
                "journal truncated: the store's head of run run-3 says event 9, the local journal "
                "ends at 8",
                "event 3 differs from the signed head of run run-1 signed at {run-1}: the journal "
                "was rewritten at or before event 3; 1 later head(s) differ too",
            ],
            (0, 3),
        ),
    ],
    ids=[
        "intact",
        "after-newest-head",
        "edited",
        "edited-first",
        "cut",
        "cut-deep",
        "deleted",
        "deleted-last-run",
        "deleted-and-cut",
    ],
)
def test_the_local_events_against_the_heads_name_the_fault(
    signed: Signed,
    tamper: Callable[[dict[int, str]], dict[int, str]],
    problems: list[str],
    bounds: tuple[int | None, int | None],
) -> None:
    local = tamper(dict(signed.hashes))
    report = check_against_heads(
        local, signed.heads, signed.signer.public_pem, journal_id=signed.journal_id
    )
    times = {h["head"]["run_id"]: h["head"]["signed_at"] for h in signed.heads}
    assert report.problems == [p.format(**times) for p in problems]
    assert report.ok is (not problems)
    assert (report.rewritten_after, report.rewritten_by) == bounds
    assert report.heads == 3


def forged_by_other_key(signed: Signed, stored: dict[str, Any]) -> dict[str, Any]:
    head = stored["head"]
    return {**stored, "signature": signed.other.sign(canonical_json(head).encode("utf-8"))}


def hash_changed(signed: Signed, stored: dict[str, Any]) -> dict[str, Any]:
    return {**stored, "head": {**stored["head"], "last_hash": "0" * 64}}


def from_other_journal(signed: Signed, stored: dict[str, Any]) -> dict[str, Any]:
    head = {**stored["head"], "journal_id": "f" * 32}
    return {**stored, "head": head, "signature": signed.signer.sign(canonical_json(head).encode())}


def under_other_key(signed: Signed, stored: dict[str, Any]) -> dict[str, Any]:
    return {**stored, "key": head_key(signed.journal_id, 5)}


def unreadable(signed: Signed, stored: dict[str, Any]) -> dict[str, Any]:
    return {"key": stored["key"], **parse_head(b"{not json")}


@pytest.mark.parametrize(
    ("spoil", "named"),
    [
        (forged_by_other_key, "its signature does not verify with key {key_id}"),
        (hash_changed, "its signature does not verify with key {key_id}"),
        (from_other_journal, "it signs journal ffffffffffffffffffffffffffffffff, not this one"),
        (under_other_key, "it signs event 6, not its key's"),
        (unreadable, "not JSON"),
    ],
    ids=["other-key", "edited-hash", "other-journal", "moved", "not-json"],
)
def test_a_head_that_cannot_be_trusted_is_named_and_fails_the_check(
    signed: Signed, spoil: Callable[[Signed, dict[str, Any]], dict[str, Any]], named: str
) -> None:
    heads = [signed.heads[0], spoil(signed, signed.heads[1]), signed.heads[2]]
    report = check_against_heads(
        signed.hashes, heads, signed.signer.public_pem, journal_id=signed.journal_id
    )
    key = heads[1]["key"]
    assert report.problems == [
        f"forged or damaged head {key}: " + named.format(key_id=signed.signer.key_id)
    ]
    assert not report.ok
    assert (report.heads, report.matching, report.newest_matching) == (3, 2, 9)


def test_heads_checked_with_another_public_key_are_all_named(signed: Signed) -> None:
    report = check_against_heads(signed.hashes, signed.heads, signed.other.public_pem)
    assert len(report.problems) == 3
    assert all(
        f"it names key {signed.signer.key_id}" in problem and problem.startswith("forged")
        for problem in report.problems
    )


def test_a_broken_local_chain_fails_even_when_the_heads_match(signed: Signed) -> None:
    local = VerifyReport(False, 4, 5, "event 5: hash does not match its content")
    report = check_against_heads(signed.hashes, signed.heads, signed.signer.public_pem, local=local)
    assert report.problems == ["local chain: event 5: hash does not match its content"]
    assert not report.ok and report.matching == 3


def test_events_or_their_hashes_give_the_same_report(tmp_path: Path, signed: Signed) -> None:
    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.append(run_id="r", site="blog", step="run", status="started")
        head = sign_head(journal, signed.signer, "r", "blog")
        stored = [{"key": head_key(journal.journal_id, 1), **head}]
        events = journal.events()
    from_events = check_against_heads(events, stored, signed.signer.public_pem)
    from_hashes = check_against_heads({1: events[0].hash}, stored, signed.signer.public_pem)
    assert from_events == from_hashes
    assert from_events.ok and from_events.matching == 1


def test_no_head_is_no_fault_but_is_counted(signed: Signed) -> None:
    report = check_against_heads(signed.hashes, [], signed.signer.public_pem)
    assert report.ok and (report.heads, report.matching, report.local_end) == (0, 0, 10)


def test_a_signed_head_is_the_documented_document(tmp_path: Path) -> None:
    signer = signer_for(tmp_path, None)
    assert signer.path == tmp_path / "journal-signing-key.pem"
    assert public_key_path(signer.path).exists()
    with Journal(tmp_path / "journal.sqlite") as journal:
        event = journal.append(run_id="r1", site="blog", step="run", status="started")
        document = sign_head(journal, signer, "r1", "blog")
        journal_id = journal.journal_id
    head = document["head"]
    assert set(document) == {"head", "signature"}
    assert {k: v for k, v in head.items() if k != "signed_at"} == {
        "journal_id": journal_id,
        "last_id": 1,
        "last_hash": event.hash,
        "run_id": "r1",
        "site": "blog",
        "key_id": signer.key_id,
    }
    assert head["signed_at"].endswith("Z")
    assert len(base64.b64decode(document["signature"])) == 64
    payload = canonical_json(head).encode("utf-8")
    assert verify_signature(signer.public_pem, payload, document["signature"])
    assert parse_head(canonical_json(document).encode()) == document


def test_a_configured_signing_key_is_used_instead_of_the_state_one(tmp_path: Path) -> None:
    configured = tmp_path / "keys" / "signing.pem"
    signer = signer_for(tmp_path / "state", configured)
    assert signer.path == configured and configured.exists()
    assert not (tmp_path / "state" / "journal-signing-key.pem").exists()
    assert signer_for(tmp_path / "state", str(configured)).key_id == signer.key_id


def test_head_keys_sort_in_event_order() -> None:
    keys = [head_key("j", n) for n in (10, 9, 100, 1)]
    assert sorted(keys) == [head_key("j", n) for n in (1, 9, 10, 100)]
    assert head_key("j", 42) == "journal/j/heads/000000000042.json"


GOOD_HEAD = {
    "journal_id": "j",
    "last_id": 3,
    "last_hash": "a" * 64,
    "run_id": "r",
    "site": "blog",
    "signed_at": "2026-01-01T00:00:00.000000Z",
    "key_id": "ed25519:00",
}


@pytest.mark.parametrize(
    ("document", "damaged"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[]", "expected an object with exactly 'head' and 'signature'"),
        (json.dumps({"head": GOOD_HEAD}).encode(), "expected an object with exactly"),
        (json.dumps({"head": GOOD_HEAD, "signature": 1}).encode(), "signature is not a string"),
        (
            json.dumps({"head": {**GOOD_HEAD, "extra": 1}, "signature": "s"}).encode(),
            "head must have exactly the fields",
        ),
        (
            json.dumps({"head": {**GOOD_HEAD, "last_id": "3"}, "signature": "s"}).encode(),
            "head last_id is '3', expected an integer",
        ),
        (
            json.dumps({"head": {**GOOD_HEAD, "last_id": True}, "signature": "s"}).encode(),
            "head last_id is True, expected an integer",
        ),
        (json.dumps({"head": GOOD_HEAD, "signature": "s"}).encode(), None),
    ],
    ids=["binary", "list", "no-signature", "number-signature", "extra", "str-id", "bool-id", "ok"],
)
def test_stored_documents_are_parsed_strictly(document: bytes, damaged: str | None) -> None:
    parsed = parse_head(document)
    if damaged is None:
        assert parsed == {"head": GOOD_HEAD, "signature": "s"}
    else:
        assert set(parsed) == {"damaged"} and parsed["damaged"].startswith(damaged)


@pytest.mark.parametrize(
    ("exc", "interrupted"),
    [
        (KeyboardInterrupt(), True),
        (SystemExit(1), True),
        (Interrupted("interrupted by SIGTERM"), True),
        (TmaError("step failed"), False),
        (RuntimeError("bug"), False),
    ],
)
def test_only_an_interruption_skips_the_head(exc: BaseException, interrupted: bool) -> None:
    assert is_interruption(exc) is interrupted


def inventory_with(settings: JournalSettings) -> Inventory:
    return Inventory(sites={}, state_dir=Path("/state"), files=[], journal=settings)


@pytest.mark.parametrize(
    ("inventory", "expected"),
    [
        (None, None),
        (Inventory(sites={}, state_dir=Path("/state"), files=[]), None),
        (inventory_with(JournalSettings()), None),
        (inventory_with(JournalSettings(signing_key=Path("/k/s.pem"))), Path("/k/s.pem")),
    ],
)
def test_the_signing_key_setting_is_read_when_the_inventory_has_it(
    inventory: Inventory | None, expected: Path | None
) -> None:
    assert configured_signing_key(inventory) == expected
    assert signing_key_path(Path("/state"), inventory) == (
        expected or Path("/state/journal-signing-key.pem")
    )


def test_heads_signed_by_a_former_key_stay_trusted_when_it_is_listed(signed: Signed) -> None:
    """After a key change: the heads signed before it name the former key, the newer ones the
    current key. Each is checked with the key it names, among the trusted ones."""
    newest = signed.heads[2]
    resigned = {**newest, "head": {**newest["head"], "key_id": signed.other.key_id}}
    payload = canonical_json(resigned["head"]).encode("utf-8")
    resigned["signature"] = signed.other.sign(payload)
    heads = [signed.heads[0], signed.heads[1], resigned]

    rotated = [signed.other.public_pem, signed.signer.public_pem]  # current first, then former
    report = check_against_heads(signed.hashes, heads, rotated, journal_id=signed.journal_id)
    assert report.ok and report.matching == 3, report.problems

    only_current = check_against_heads(signed.hashes, heads, signed.other.public_pem)
    assert [p.split(":", 1)[0] for p in only_current.problems] == [
        f"forged or damaged head {heads[0]['key']}",
        f"forged or damaged head {heads[1]['key']}",
    ]


@pytest.mark.parametrize(
    ("names", "expected"),
    [("current", "current"), ("former", "former"), ("unknown", "current")],
)
def test_a_head_is_checked_with_the_trusted_key_it_names(
    signed: Signed, names: str, expected: str
) -> None:
    keys = {"current": signed.other, "former": signed.signer}
    key_id = keys[names].key_id if names in keys else "ed25519:0000000000000000"
    trusted = [signed.other.public_pem, signed.signer.public_pem]
    assert key_for_head({"key_id": key_id}, trusted) == keys[expected].public_pem
    assert key_for_head({"key_id": key_id}, signed.signer.public_pem) == signed.signer.public_pem


def test_former_public_keys_are_read_and_checked(tmp_path: Path, signed: Signed) -> None:
    former = tmp_path / "former.pub"
    former.write_bytes(signed.signer.public_pem)
    inventory = inventory_with(JournalSettings(former_public_keys=[former]))
    assert trusted_public_keys(signed.other.public_pem, inventory) == [
        signed.other.public_pem,
        signed.signer.public_pem,
    ]
    assert trusted_public_keys(b"pem", None) == [b"pem"]
    former.write_text("not a key\n")
    with pytest.raises(
        TmaError, match=rf"journal.former_public_keys: {former}: expected an Ed25519"
    ):
        trusted_public_keys(signed.other.public_pem, inventory)
    with pytest.raises(TmaError, match=r"journal\.former_public_keys: cannot read"):
        trusted_public_keys(
            b"pem", inventory_with(JournalSettings(former_public_keys=[tmp_path / "gone"]))
        )
