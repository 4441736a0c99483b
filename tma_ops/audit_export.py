"""The audit export: restore tests of a period, with the journal's proof that they happened.

What is gathered (signing and the three file formats are in `audit_export_render`):
- every restore test whose final event (passed or failed) falls in [from, to);
- the local chain verification and the signed run heads found in the sites' stores, each
  checked against the journal's public key and against the local event it names;
- a chain proof: the exported events in full, the hash skeleton (id, prev_hash, hash) from the
  first exported event to the newest signed head that covers it, and that head's document.
  Exported events newer than every signed head are listed as not yet covered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tma_ops.audit_verifier import EXPORT_FORMAT, canonical_json
from tma_ops.errors import StoreError, TmaError, one_line
from tma_ops.journal import Event, VerifyReport
from tma_ops.journal_heads import check_against_heads, heads_prefix, key_for_head, list_heads
from tma_ops.signing import verify_signature
from tma_ops.stores import Store

EXPORT_VERSION = 1
RESTORE_TEST_STEP = "restore-test"
FINAL_STATUSES = ("passed", "failed")
RANGE_HELP = "a date (YYYY-MM-DD, the whole UTC day) or a UTC time (YYYY-MM-DDTHH:MM:SSZ)"


@dataclass(frozen=True)
class TimeRange:
    start: datetime  # included
    end: datetime  # excluded

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class HeadRecord:
    """One signed head document read from a store, and what checking it found."""

    store: str
    key: str
    last_id: int | None
    run_id: str | None
    site: str | None
    signed_at: str | None
    key_id: str | None
    signature_ok: bool
    matches_journal: bool
    problem: str | None
    document: dict[str, Any] | None


# --- the period ---------------------------------------------------------------------------


def parse_moment(text: str, option: str, *, end_of_day: bool) -> datetime:
    """A bound of the period; a plain date means the start of that day, or its end for --to."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise TmaError(f"{option} {text!r}: expected {RANGE_HELP}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_range(start_text: str, end_text: str) -> TimeRange:
    start = parse_moment(start_text, "--from", end_of_day=False)
    end = parse_moment(end_text, "--to", end_of_day=True)
    if start >= end:
        raise TmaError(
            f"--from {start_text!r} is not before --to {end_text!r}; expected a period that "
            "starts before it ends"
        )
    return TimeRange(start, end)


def event_moment(event: Event) -> datetime:
    return datetime.fromisoformat(event.time.replace("Z", "+00:00"))


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- restore tests ------------------------------------------------------------------------


def final_restore_events(
    events: Iterable[Event], period: TimeRange, site: str | None = None
) -> list[Event]:
    """Final events (passed/failed) of the restore tests that ended within the period."""
    return [
        event
        for event in events
        if event.step == RESTORE_TEST_STEP
        and event.status in FINAL_STATUSES
        and (site is None or event.site == site)
        and period.holds(event_moment(event))
    ]


def exported_events(events: Iterable[Event], finals: Sequence[Event]) -> list[Event]:
    """Every restore-test event of the runs whose final events are exported, in id order."""
    runs = {(event.site, event.run_id) for event in finals}
    return [
        event
        for event in events
        if event.step == RESTORE_TEST_STEP and (event.site, event.run_id) in runs
    ]


def restore_test_row(final: Event, covered_through: int | None) -> dict[str, Any]:
    return {
        "site": final.site,
        "run_id": final.run_id,
        "event_id": final.id,
        "event_time": final.time,
        "status": final.status,
        **final.data,
        "covered_by_signed_head": covered_through is not None and final.id <= covered_through,
    }


def event_record(event: Event) -> dict[str, Any]:
    return asdict(event)


# --- signed heads -------------------------------------------------------------------------


def read_heads(
    store: Store, journal_id: str, public_pem: bytes | Sequence[bytes], hashes: Mapping[int, str]
) -> list[HeadRecord]:
    """Every head of this journal in one store, oldest first, each judged by `journal_heads`."""
    try:
        stored = list_heads(store, journal_id)
    except StoreError as exc:
        where = heads_prefix(journal_id)
        return [unreadable_record(store.url, where, f"cannot read the heads: {one_line(exc)}")]
    return [head_record(store.url, head, journal_id, public_pem, hashes) for head in stored]


def head_record(
    store_url: str,
    stored: Mapping[str, Any],
    journal_id: str,
    public_pem: bytes | Sequence[bytes],
    hashes: Mapping[int, str],
) -> HeadRecord:
    """A head as `list_heads` returns it, checked against the key and the local journal's hashes.

    The problem (forged or damaged, truncation, rewrite) is worded by `check_against_heads`.
    """
    report = check_against_heads(hashes, [stored], public_pem, journal_id=journal_id)
    problem = "; ".join(report.problems) or None
    key = str(stored.get("key", "?"))
    if "head" not in stored:
        return unreadable_record(store_url, key, problem)
    head, signature = stored["head"], stored["signature"]
    checking = key_for_head(head, public_pem)
    signature_ok = verify_signature(checking, canonical_json(head).encode("utf-8"), signature)
    return HeadRecord(
        store=store_url,
        key=key,
        last_id=head["last_id"],
        run_id=head["run_id"],
        site=head["site"],
        signed_at=head["signed_at"],
        key_id=head["key_id"],
        signature_ok=signature_ok,
        matches_journal=matches_local(head, journal_id, hashes),
        problem=problem,
        document={"head": head, "signature": signature},
    )


def matches_local(head: Mapping[str, Any], journal_id: str, hashes: Mapping[int, str]) -> bool:
    """Whether the head names this journal and the hash the local journal has for its event."""
    return head["journal_id"] == journal_id and hashes.get(head["last_id"]) == head["last_hash"]


def unreadable_record(store_url: str, key: str, problem: str | None) -> HeadRecord:
    return HeadRecord(store_url, key, None, None, None, None, None, False, False, problem, None)


def covering_head(heads: Sequence[HeadRecord], first_id: int | None) -> HeadRecord | None:
    """The newest sound head that reaches the first exported event (None if there is none)."""
    if first_id is None:
        return None
    sound = [h for h in heads if h.problem is None and h.last_id is not None]
    reaching = [h for h in sound if h.last_id is not None and h.last_id >= first_id]
    return max(reaching, key=lambda h: h.last_id or 0, default=None)


def build_skeleton(events: Iterable[Event], first_id: int, last_id: int) -> list[list[Any]]:
    """(id, prev_hash, hash) of every event from first_id to last_id, both included."""
    return [
        [event.id, event.prev_hash, event.hash]
        for event in events
        if first_id <= event.id <= last_id
    ]


# --- the document -------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportInputs:
    journal_id: str
    head: tuple[int, str]
    verify: VerifyReport
    events: list[Event]  # the whole journal, id order
    heads: list[HeadRecord]
    period: TimeRange
    site: str | None
    generated_at: datetime


def build_export(inputs: ExportInputs) -> dict[str, Any]:
    finals = final_restore_events(inputs.events, inputs.period, inputs.site)
    exported = exported_events(inputs.events, finals)
    first_id = exported[0].id if exported else None
    cover = covering_head(inputs.heads, first_id)
    covered_through = cover.last_id if cover is not None else None
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "generated_at": iso_z(inputs.generated_at),
        "range": {"from": iso_z(inputs.period.start), "to": iso_z(inputs.period.end)},
        "site": inputs.site,
        "journal": {
            "journal_id": inputs.journal_id,
            "last_id": inputs.head[0],
            "last_hash": inputs.head[1],
            "verify": asdict(inputs.verify),
        },
        "signed_heads": [_head_summary(head) for head in inputs.heads],
        "restore_tests": [restore_test_row(final, covered_through) for final in finals],
        "proof": _proof(inputs.events, exported, cover),
    }


def _proof(
    events: Sequence[Event], exported: Sequence[Event], cover: HeadRecord | None
) -> dict[str, Any]:
    covered_through = cover.last_id if cover is not None else None
    skeleton: list[list[Any]] = []
    if exported:
        last_id = max(exported[-1].id, covered_through or 0)
        skeleton = build_skeleton(events, exported[0].id, last_id)
    return {
        "events": [event_record(event) for event in exported],
        "skeleton": skeleton,
        "covering_head": cover.document if cover is not None else None,
        "not_yet_covered": [
            e.id for e in exported if covered_through is None or e.id > covered_through
        ],
    }


def _head_summary(head: HeadRecord) -> dict[str, Any]:
    summary = asdict(head)
    summary["covers"] = (
        f"events 1 to {head.last_id} of the journal" if head.last_id is not None else None
    )
    return summary
