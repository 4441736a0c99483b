"""Pure parts of the audit export and of its offline verifier: tables of decisions."""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tma_ops.audit_export import (
    HeadRecord,
    TimeRange,
    build_skeleton,
    covering_head,
    final_restore_events,
    head_record,
    parse_range,
    read_heads,
)
from tma_ops.audit_export_render import csv_cell, human_duration, script_safe_json
from tma_ops.audit_verifier import (
    VerificationFailed,
    check_events_in_skeleton,
    check_events_rehash,
    check_skeleton,
    split_signature_line,
    uncovered_ids,
)
from tma_ops.errors import TmaError
from tma_ops.journal import GENESIS_HASH, Event, canonical_json, event_hash
from tma_ops.journal_heads import head_key
from tma_ops.signing import Signer
from tma_ops.stores import open_store

pytestmark = pytest.mark.unit


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def chain(specs: list[tuple[str, str, str, str]]) -> list[Event]:
    """Events hashed like the journal: (time, site, step, status) each."""
    events, prev = [], GENESIS_HASH
    for number, (time, site, step, status) in enumerate(specs, start=1):
        fields: dict[str, Any] = {
            "id": number,
            "time": time,
            "run_id": f"r{number}",
            "site": site,
            "step": step,
            "status": status,
            "data": {"n": number},
            "prev_hash": prev,
        }
        digest = event_hash(fields)
        events.append(Event(**fields, hash=digest))
        prev = digest
    return events


# --- the period ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2024-05-01", "2024-05-31", (utc(2024, 5, 1), utc(2024, 6, 1))),
        ("2024-05-01", "2024-05-01", (utc(2024, 5, 1), utc(2024, 5, 2))),
        (
            "2024-05-01T10:00:00Z",
            "2024-05-01T11:30:00Z",
            (utc(2024, 5, 1, 10), utc(2024, 5, 1, 11, 30)),
        ),
        ("2024-05-01T12:00:00+02:00", "2024-05-02", (utc(2024, 5, 1, 10), utc(2024, 5, 3))),
        ("2024-05-01T10:00", "2024-05-01T10:01", (utc(2024, 5, 1, 10), utc(2024, 5, 1, 10, 1))),
        (" 2024-12-31 ", "2024-12-31", (utc(2024, 12, 31), utc(2025, 1, 1))),
    ],
)
def test_period_bounds(start: str, end: str, expected: tuple[datetime, datetime]) -> None:
    assert parse_range(start, end) == TimeRange(*expected)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2024-13-01", "2024-12-31", "--from '2024-13-01': expected a date (YYYY-MM-DD"),
        ("2024-05-01", "last week", "--to 'last week': expected a date"),
        ("2024-05-02", "2024-05-01", "--from '2024-05-02' is not before --to '2024-05-01'"),
        ("2024-05-01T10:00Z", "2024-05-01T10:00Z", "--from '2024-05-01T10:00Z' is not before"),
    ],
)
def test_bad_period_is_one_line_naming_the_option(start: str, end: str, message: str) -> None:
    with pytest.raises(TmaError, match="^" + re.escape(message)):
        parse_range(start, end)


# --- which restore tests are exported -----------------------------------------------------

EVENTS = chain(
    [
        ("2024-04-30T23:59:59.999999Z", "blog", "restore-test", "passed"),  # 1: before
        ("2024-05-01T00:00:00.000000Z", "blog", "restore-test", "passed"),  # 2: first instant
        ("2024-05-10T08:00:00.000000Z", "shop", "restore-test", "failed"),  # 3
        ("2024-05-10T08:00:01.000000Z", "shop", "restore-test", "started"),  # 4: not final
        ("2024-05-11T08:00:00.000000Z", "shop", "snapshot", "passed"),  # 5: other step
        ("2024-06-01T00:00:00.000000Z", "blog", "restore-test", "passed"),  # 6: end excluded
    ]
)


@pytest.mark.parametrize(
    ("site", "expected_ids"),
    [(None, [2, 3]), ("blog", [2]), ("shop", [3]), ("nowhere", [])],
)
def test_final_events_in_the_period(site: str | None, expected_ids: list[int]) -> None:
    period = parse_range("2024-05-01", "2024-05-31")
    assert [e.id for e in final_restore_events(EVENTS, period, site)] == expected_ids


# --- heads --------------------------------------------------------------------------------


def summary_record(last_id: int | None, problem: str | None = None) -> HeadRecord:
    return HeadRecord(
        "file:///s",
        f"k{last_id}",
        last_id,
        "r",
        "blog",
        "t",
        "ed25519:x",
        problem is None,
        problem is None,
        problem,
        {"head": {"last_id": last_id}},
    )


@pytest.mark.parametrize(
    ("heads", "first_id", "expected"),
    [
        ([summary_record(5), summary_record(9)], 4, 9),  # the newest sound head
        ([summary_record(5), summary_record(9, "forged")], 4, 5),  # a bad head never covers
        ([summary_record(3)], 4, None),  # ends before the first exported event
        ([summary_record(4)], 4, 4),  # reaches exactly the first one
        ([summary_record(None, "unreadable")], 1, None),
        ([], 1, None),
        ([summary_record(5)], None, None),  # nothing exported
    ],
)
def test_covering_head(heads: list[HeadRecord], first_id: int | None, expected: int | None) -> None:
    chosen = covering_head(heads, first_id)
    assert (chosen.last_id if chosen else None) == expected


HASHES = {1: "a" * 64, 2: "b" * 64, 3: "c" * 64}
JOURNAL_SIGNER = Signer(Ed25519PrivateKey.generate(), Path("journal-signing-key.pem"))
OTHER_SIGNER = Signer(Ed25519PrivateKey.generate(), Path("other.pem"))
FORGED = f"forged or damaged head {head_key('J', 2)}: its signature does not verify with key"


def stored_head(
    signer: Signer = JOURNAL_SIGNER, key: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A head as `list_heads` returns it: event 2 of journal J, unless `fields` say otherwise."""
    head = {
        "journal_id": "J",
        "last_id": 2,
        "last_hash": "b" * 64,
        "run_id": "R",
        "site": "blog",
        "signed_at": "T",
        "key_id": JOURNAL_SIGNER.key_id,
        **fields,
    }
    signature = signer.sign(canonical_json(head).encode("utf-8"))
    return {
        "key": key or head_key(str(head["journal_id"]), int(head["last_id"])),
        "head": head,
        "signature": signature,
    }


@pytest.mark.parametrize(
    ("stored", "hashes", "signature_ok", "matches", "problem"),
    [
        pytest.param(stored_head(), HASHES, True, True, None, id="sound"),
        pytest.param(stored_head(OTHER_SIGNER), HASHES, False, True, FORGED, id="forged"),
        pytest.param(
            stored_head(journal_id="K"),
            HASHES,
            True,
            False,
            f"forged or damaged head {head_key('K', 2)}: it signs journal K, not this one",
            id="other-journal",
        ),
        pytest.param(
            stored_head(key=head_key("J", 3)),
            HASHES,
            True,
            True,
            f"forged or damaged head {head_key('J', 3)}: it signs event 2, not its key's",
            id="moved-to-another-key",
        ),
        pytest.param(
            stored_head(last_id=7),
            HASHES,
            True,
            False,
            "journal truncated: the store's head of run R says event 7, "
            "the local journal ends at 3",
            id="truncated",
        ),
        pytest.param(
            stored_head(last_hash="f" * 64),
            HASHES,
            True,
            False,
            "event 2 differs from the signed head of run R signed at T: the journal was rewritten "
            "at or before event 2",
            id="rewritten",
        ),
        pytest.param(
            stored_head(),
            {1: "a" * 64, 3: "c" * 64},
            True,
            False,
            "event 2 is missing from the local journal from the signed head of run R",
            id="event-removed",
        ),
    ],
)
def test_a_head_is_judged_against_the_key_and_the_local_hashes(
    stored: dict[str, Any],
    hashes: dict[int, str],
    signature_ok: bool,
    matches: bool,
    problem: str | None,
) -> None:
    record = head_record("mem://s", stored, "J", JOURNAL_SIGNER.public_pem, hashes)
    assert (record.signature_ok, record.matches_journal) == (signature_ok, matches)
    assert record.problem == problem if problem is None else problem in (record.problem or "")
    assert record.key == stored["key"] and record.last_id == stored["head"]["last_id"]
    assert record.document == {"head": stored["head"], "signature": stored["signature"]}


def test_a_damaged_head_is_named_without_fields() -> None:
    stored = {"key": head_key("J", 2), "damaged": "not JSON"}
    record = head_record("mem://s", stored, "J", JOURNAL_SIGNER.public_pem, HASHES)
    assert record.problem == f"forged or damaged head {head_key('J', 2)}: not JSON"
    assert (record.last_id, record.signature_ok, record.document) == (None, False, None)


def test_heads_are_read_from_the_store_oldest_first_each_judged() -> None:
    store = open_store(f"mem://audit-heads-{uuid.uuid4().hex}")
    for stored in (stored_head(last_id=3, last_hash="c" * 64), stored_head()):
        document = {"head": stored["head"], "signature": stored["signature"]}
        store.put(stored["key"], io.BytesIO(canonical_json(document).encode("utf-8")))
    store.put(head_key("J", 9), io.BytesIO(b"{not json"))
    records = read_heads(store, "J", JOURNAL_SIGNER.public_pem, HASHES)
    assert [(r.last_id, r.problem) for r in records] == [
        (2, None),
        (3, None),
        (None, f"forged or damaged head {head_key('J', 9)}: not JSON"),
    ]


# --- the skeleton -------------------------------------------------------------------------

SKELETON_EVENTS = chain([("2024-05-01T00:00:00Z", "blog", "x", "done")] * 6)


@pytest.mark.parametrize(("first", "last", "ids"), [(2, 5, [2, 3, 4, 5]), (6, 6, [6]), (7, 9, [])])
def test_build_skeleton(first: int, last: int, ids: list[int]) -> None:
    skeleton = build_skeleton(SKELETON_EVENTS, first, last)
    assert [entry[0] for entry in skeleton] == ids
    check_skeleton(skeleton)


def _skeleton() -> list[list[Any]]:
    return build_skeleton(SKELETON_EVENTS, 1, 6)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda s: s.pop(2), "skeleton: event 3 is missing (after event 2, next is 4)"),
        (lambda s: s.insert(3, s.pop(2)), "event 3 is missing"),  # reordered
        (lambda s: s[3].__setitem__(1, "0" * 64), "event 4 does not link to event 3"),
        (lambda s: s[3].__setitem__(2, "0" * 64), "event 5 does not link to event 4"),
    ],
)
def test_skeleton_breaks_are_named(tamper: Any, message: str) -> None:
    skeleton = _skeleton()
    tamper(skeleton)
    with pytest.raises(VerificationFailed, match=re.escape(message)):
        check_skeleton(skeleton)


def test_events_are_rehashed_and_found_in_the_skeleton() -> None:
    records = [dict(vars(event)) for event in SKELETON_EVENTS[1:3]]
    check_events_rehash(records)
    check_events_in_skeleton(records, _skeleton())
    records[1]["data"] = {"n": 99}
    with pytest.raises(VerificationFailed, match="event 3: hash does not match its content"):
        check_events_rehash(records)
    with pytest.raises(VerificationFailed, match="event 2: not in the hash skeleton"):
        check_events_in_skeleton(records, _skeleton()[2:])


@pytest.mark.parametrize(
    ("covered_through", "expected"), [(None, [2, 5]), (1, [2, 5]), (2, [5]), (5, []), (9, [])]
)
def test_uncovered_ids(covered_through: int | None, expected: list[int]) -> None:
    assert uncovered_ids([{"id": 2}, {"id": 5}], covered_through) == expected


# --- file formats -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "prefix", "suffix", "expected"),
    [
        (
            b"a,b\n# tma-ops-signature ed25519 ed25519:k c2ln\n",
            "# tma-ops-signature ",
            "",
            (b"a,b\n", "ed25519:k", "c2ln"),
        ),
        (
            b"a,b\n# tma-ops-signature ed25519 ed25519:k c2ln",
            "# tma-ops-signature ",
            "",
            (b"a,b\n", "ed25519:k", "c2ln"),
        ),
        (
            b"<p>\n</html>\n<!-- tma-ops-signature ed25519 ed25519:k c2ln -->\n",
            "<!-- tma-ops-signature ",
            " -->",
            (b"<p>\n</html>\n", "ed25519:k", "c2ln"),
        ),
    ],
)
def test_signature_line_is_split_from_the_signed_bytes(
    data: bytes, prefix: str, suffix: str, expected: tuple[bytes, str, str]
) -> None:
    assert split_signature_line(data, prefix, suffix) == expected


@pytest.mark.parametrize(
    "data",
    [b"a,b\nc,d\n", b"a\n# tma-ops-signature rsa k s\n", b"a\n# tma-ops-signature ed25519 k\n"],
)
def test_a_missing_or_malformed_signature_line_is_refused(data: bytes) -> None:
    with pytest.raises(VerificationFailed, match=r"^signature: "):
        split_signature_line(data, "# tma-ops-signature ")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (7.75, "7.8 s"),
        (59.94, "59.9 s"),
        (61, "1 min 01 s"),
        (3600, "1 h 00 min"),
        (86400.5, "24 h 00 min"),
        (3 * 86400 + 7200, "3 d 2 h"),
    ],
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("name", "row", "cell"),
    [
        ("cause", {"cause": None}, ""),
        ("cause", {"cause": "=HYPERLINK(1)"}, "'=HYPERLINK(1)"),
        ("time_to_recovery_s", {"time_to_recovery_s": -0.5}, "-0.5"),
        ("covered_by_signed_head", {"covered_by_signed_head": False}, "no"),
        (
            "smoke",
            {"smoke": [{"name": "home", "kind": "http", "ok": False, "detail": "500"}]},
            "home (http): FAILED 500",
        ),
        (
            "parts",
            {
                "parts": [
                    {
                        "name": "db",
                        "snapshot_id": "s",
                        "sha256": "ab",
                        "size": 1,
                        "stored_size": 2,
                        "key": "k",
                    }
                ]
            },
            "db s sha256=ab size=1 stored=2 key=k",
        ),
    ],
)
def test_csv_cells(name: str, row: dict[str, Any], cell: str) -> None:
    assert csv_cell(name, row) == cell


def test_embedded_json_cannot_close_its_script_element() -> None:
    text = script_safe_json({"cause": "</script><b>&"})
    assert "</script>" not in text and "<" not in text
    assert json.loads(text) == {"cause": "</script><b>&"}
