"""Business-time arithmetic and response compliance per ticket and per priority."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tma_ops.model_contract import BusinessHours, ContractSpec, effective_contract
from tma_ops.response_sla import business_elapsed, compliance, elapsed_on_clock
from tma_ops.tickets import Ticket

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")
OFFICE = BusinessHours()  # mon-fri 09:00-18:00
MAY_HOLIDAYS = BusinessHours(holidays=[date(2024, 5, 1), date(2024, 5, 8), date(2024, 5, 9)])
EASTER = BusinessHours(holidays=[date(2024, 4, 1)])
NIGHT_SHIFT = BusinessHours(days="mon-sun", start="01:00", end="04:00")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


@pytest.mark.parametrize(
    ("start", "end", "hours", "expected"),
    [
        pytest.param("2024-05-13 10:00", "2024-05-13 12:30", OFFICE, 2.5, id="same-day"),
        pytest.param("2024-05-13 07:00", "2024-05-13 10:00", OFFICE, 1, id="before-opening"),
        pytest.param("2024-05-13 17:00", "2024-05-14 10:00", OFFICE, 2, id="overnight"),
        pytest.param("2024-05-17 17:00", "2024-05-20 10:00", OFFICE, 2, id="over-a-weekend"),
        pytest.param("2024-05-18 10:00", "2024-05-19 17:00", OFFICE, 0, id="within-a-weekend"),
        pytest.param("2024-05-07 17:00", "2024-05-10 10:00", MAY_HOLIDAYS, 2, id="two-holidays"),
        pytest.param("2024-05-07 17:00", "2024-05-10 10:00", OFFICE, 20, id="no-holidays"),
        pytest.param("2024-05-13 12:00", "2024-05-13 11:00", OFFICE, 0, id="end-before-start"),
        # Paris goes from 02:00 to 03:00 on 31 March 2024: that night's window is 2 h long.
        pytest.param("2024-03-31 00:00", "2024-03-31 12:00", NIGHT_SHIFT, 2, id="dst-spring"),
        pytest.param("2024-10-27 00:00", "2024-10-27 12:00", NIGHT_SHIFT, 4, id="dst-autumn"),
        pytest.param("2024-03-29 17:00", "2024-04-02 10:00", EASTER, 2, id="dst-easter-monday"),
        pytest.param("2024-03-29 17:00", "2024-04-02 10:00", OFFICE, 11, id="dst-weekend"),
    ],
)
def test_business_elapsed(start: str, end: str, hours: BusinessHours, expected: float) -> None:
    elapsed = business_elapsed(at(start), at(end), hours, PARIS)
    assert elapsed == timedelta(hours=expected)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param("2024-03-30 12:00", "2024-03-31 12:00", 23, id="spring-day-is-23h"),
        pytest.param("2024-10-26 12:00", "2024-10-27 12:00", 25, id="autumn-day-is-25h"),
        pytest.param("2024-05-18 10:00", "2024-05-18 11:30", 1.5, id="saturday-counts"),
    ],
)
def test_round_the_clock_elapsed_is_real_time(start: str, end: str, expected: float) -> None:
    assert elapsed_on_clock("24/7", at(start), at(end), OFFICE, PARIS) == timedelta(hours=expected)


def test_instants_in_other_offsets_are_compared_in_real_time() -> None:
    opened = datetime.fromisoformat("2024-05-13T08:00:00+00:00")  # 10:00 in Paris
    answered = datetime.fromisoformat("2024-05-13T12:00:00+02:00")
    assert business_elapsed(opened, answered, OFFICE, PARIS) == timedelta(hours=2)


def ticket(priority: str, opened: str, first: str | None, resolved: str | None = None) -> Ticket:
    return Ticket(
        id=f"T-{priority}-{opened}",
        title="t",
        priority=priority,  # type: ignore[arg-type]
        kind="corrective",
        opened=at(opened),
        first_response=at(first) if first else None,
        resolved=at(resolved) if resolved else None,
        time_spent=timedelta(0),
        status=None,
        origin="test",
    )


AS_OF = at("2024-05-31 18:00")


@pytest.mark.parametrize(
    ("tier", "item", "response", "resolution"),
    [
        # critique: P0 on the clock around the clock, 2 h; resolution 8 h.
        ("critique", ticket("P0", "2024-05-18 22:00", "2024-05-18 23:30", "2024-05-19 05:00"),
         "met", "met"),
        ("critique", ticket("P0", "2024-05-18 22:00", "2024-05-19 00:30", "2024-05-19 05:30"),
         "late", "met"),
        ("critique", ticket("P0", "2024-05-18 22:00", "2024-05-18 23:00", "2024-05-19 08:00"),
         "met", "late"),
        ("critique", ticket("P0", "2024-05-31 09:00", None), "open-late", "open-late"),
        ("critique", ticket("P0", "2024-05-31 17:00", None), "pending", "pending"),
        # business: P0 within 4 business hours (a Saturday night waits for Monday 09:00).
        ("business", ticket("P0", "2024-05-18 22:00", "2024-05-20 12:00", "2024-05-20 16:00"),
         "met", "met"),
        ("business", ticket("P0", "2024-05-17 16:00", "2024-05-20 12:00", "2024-05-20 14:30"),
         "late", "met"),
        # essentiel: P0 within 8 business hours.
        ("essentiel", ticket("P0", "2024-05-17 16:00", "2024-05-20 12:00"), "met", "open-late"),
        # P1: 8 business hours.
        ("business", ticket("P1", "2024-05-13 10:00", "2024-05-13 18:00"), "met", None),
        ("business", ticket("P1", "2024-05-13 10:00", "2024-05-14 10:00"), "late", None),
        ("business", ticket("P1", "2024-05-30 10:00", None), "open-late", None),
        ("business", ticket("P1", "2024-05-31 11:00", None), "pending", None),
        # P2: 3 business days (27 business hours on 09:00-18:00).
        ("business", ticket("P2", "2024-05-13 10:00", "2024-05-16 10:00"), "met", None),
        ("business", ticket("P2", "2024-05-13 10:00", "2024-05-16 11:00"), "late", None),
        ("business", ticket("P2", "2024-05-27 10:00", None), "open-late", None),
        ("business", ticket("P2", "2024-05-30 10:00", None), "pending", None),
        # P3: next sprint or batch, no timed target.
        ("business", ticket("P3", "2024-05-02 10:00", "2024-05-30 10:00"), "untimed", None),
        ("business", ticket("P3", "2024-05-02 10:00", None), "untimed", None),
    ],
)  # fmt: skip
def test_ticket_compliance(tier: str, item: Ticket, response: str, resolution: str | None) -> None:
    contract = effective_contract(ContractSpec(), tier)
    result = compliance([item], contract.targets, contract.business_hours, PARIS, AS_OF)
    [judged] = result.tickets
    assert judged.first_response.status == response
    assert (judged.resolution.status if judged.resolution else None) == resolution
    assert judged.missed == (
        response in ("late", "open-late") or resolution in ("late", "open-late")
    )


def test_summary_counts_and_rate_per_priority() -> None:
    contract = effective_contract(ContractSpec(), "business")
    items = [
        ticket("P1", "2024-05-13 10:00", "2024-05-13 11:00"),
        ticket("P1", "2024-05-14 10:00", "2024-05-15 12:00"),
        ticket("P1", "2024-05-15 10:00", "2024-05-15 12:00"),
        ticket("P1", "2024-05-31 17:00", None),
        ticket("P3", "2024-05-20 10:00", None),
    ]
    result = compliance(items, contract.targets, contract.business_hours, PARIS, AS_OF)
    summary = {s.priority: s for s in result.priorities}
    assert list(summary) == ["P0", "P1", "P2", "P3"]
    p1 = summary["P1"]
    assert (p1.tickets, p1.met, p1.late, p1.pending) == (4, 2, 1, 1)
    assert p1.rate == pytest.approx(2 / 3)
    assert summary["P0"].rate is None and summary["P3"].untimed == 1
    document = result.to_json()
    assert document["priorities"][1]["rate"] == 0.6667
    assert document["missed"] == [items[1].id]
