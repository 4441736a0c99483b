"""Plan consumption: allowances per tier, carry-over, unlimited tickets, over-consumption; and the
contract's defaults and overrides."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from tma_ops.model_contract import ContractSpec, effective_contract, parse_duration
from tma_ops.plan_consumption import Month, Usage, consumption, month_consumption
from tma_ops.tickets import Ticket

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")


def usage(tickets: int, hours: float) -> Usage:
    return Usage(tickets, timedelta(hours=hours))


@pytest.mark.parametrize(
    ("tier", "spec", "used", "previous", "expected"),
    [
        pytest.param("business", {}, usage(3, 1.5), usage(0, 0), (5, 0, 0, 1.5, 2.0, 0, False),
                     id="business-within"),
        pytest.param("business", {}, usage(6, 2.5), usage(0, 0), (5, 0, 1, 2.5, 2.0, 0.5, True),
                     id="business-over-both"),
        pytest.param("essentiel", {}, usage(2, 0.5), usage(0, 0), (2, 0, 0, 0.5, 0.0, 0.5, True),
                     id="essentiel-has-no-evolutive-hours"),
        pytest.param("critique", {}, usage(40, 4), usage(0, 0), (None, 0, 0, 4, 4.0, 0, False),
                     id="critique-unlimited-tickets"),
        pytest.param("business", {"tickets_per_month": "unlimited"}, usage(9, 0), usage(0, 0),
                     (None, 0, 0, 0, 2.0, 0, False), id="unlimited-written"),
        pytest.param("business", {"carry_over": {"max_hours": 4}}, usage(0, 3.5), usage(0, 0.5),
                     (5, 0, 0, 3.5, 3.5, 0, False), id="carry-over-hours"),
        pytest.param("business", {"carry_over": {"max_hours": 1}}, usage(0, 3.5), usage(0, 0),
                     (5, 0, 0, 3.5, 3.0, 0.5, True), id="carry-over-capped"),
        pytest.param("business", {"carry_over": {"max_hours": 4}}, usage(0, 2), usage(0, 3),
                     (5, 0, 0, 2, 2.0, 0, False), id="nothing-left-to-carry"),
        pytest.param("business", {}, usage(0, 2.5), usage(0, 0), (5, 0, 0, 2.5, 2.0, 0.5, True),
                     id="no-carry-over-rule"),
        pytest.param("business", {"carry_over": {"max_tickets": 2}}, usage(7, 0), usage(3, 0),
                     (5, 2, 0, 0, 2.0, 0, False), id="carry-over-tickets"),
        pytest.param("critique", {"carry_over": {"max_tickets": 2}}, usage(7, 0), usage(0, 0),
                     (None, 0, 0, 0, 4.0, 0, False), id="unlimited-carries-nothing"),
        pytest.param("business", {"evolutive_hours": 6, "tickets_per_month": 1}, usage(2, 6),
                     usage(0, 0), (1, 0, 1, 6, 6.0, 0, True), id="allowances-written"),
    ],
)  # fmt: skip
def test_consumption(
    tier: str,
    spec: dict[str, Any],
    used: Usage,
    previous: Usage,
    expected: tuple[Any, ...],
) -> None:
    result = consumption(effective_contract(ContractSpec(**spec), tier), "2024-05", used, previous)
    got = (
        result.corrective_allowance,
        result.corrective_carried,
        result.corrective_over,
        result.evolutive_used_hours,
        result.evolutive_available_hours,
        result.evolutive_over_hours,
        result.over,
    )
    assert got == pytest.approx(expected)
    document = result.to_json()
    assert document["corrective"]["unlimited"] == (result.corrective_allowance is None)
    assert document["over"] is result.over


def ticket(opened: str, kind: str, minutes: int) -> Ticket:
    moment = datetime.fromisoformat(opened)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=PARIS)
    return Ticket(opened, "t", "P2", kind, moment, None, None, timedelta(minutes=minutes), None, "")  # type: ignore[arg-type]


def test_month_counts_tickets_opened_in_the_client_time_zone() -> None:
    tickets = [
        ticket("2024-04-30T23:30:00+00:00", "corrective", 0),  # 1 May 01:30 in Paris
        ticket("2024-05-31 23:59", "corrective", 0),
        ticket("2024-04-12 10:00", "evolutive", 30),  # April: 1.5 h left to carry
        ticket("2024-05-10 10:00", "evolutive", 150),
        ticket("2024-06-01 00:00", "corrective", 0),
    ]
    contract = effective_contract(ContractSpec(carry_over={"max_hours": 1}), "business")
    result = month_consumption(contract, tickets, Month(2024, 5), PARIS)
    assert (result.corrective_used, result.evolutive_used_hours) == (2, 2.5)
    assert result.evolutive_carried_hours == 1.0
    assert not result.over


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2024-05", Month(2024, 5)), (" 2023-12 ", Month(2023, 12))],
)
def test_month_parse(text: str, expected: Month) -> None:
    assert Month.parse(text) == expected
    assert expected.previous.following == expected


@pytest.mark.parametrize("text", ["2024-13", "2024-5", "May 2024", ""])
def test_month_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected a month written YYYY-MM"):
        Month.parse(text)


@pytest.mark.parametrize(
    ("tier", "priority", "spec", "expected"),
    [
        ("critique", "P0", {}, (2, 8, "24/7")),
        ("business", "P0", {}, (4, 8, "business")),
        ("essentiel", "P0", {}, (8, 8, "business")),
        ("business", "P1", {}, (8, None, "business")),
        ("business", "P2", {}, (27, None, "business")),
        ("business", "P3", {}, (None, None, "business")),
        ("business", "P1", {"P1": {"first_response": "4h"}}, (4, None, "business")),
        ("business", "P2", {"P2": {"first_response": None}}, (None, None, "business")),
        ("business", "P3", {"P3": {"first_response": "5d", "clock": "24/7"}}, (120, None, "24/7")),
        ("critique", "P0", {"P0": {"resolution": "1h30"}}, (2, 1.5, "24/7")),
    ],
)
def test_targets_from_tier_and_overrides(
    tier: str, priority: str, spec: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    target = effective_contract(ContractSpec(response=spec), tier).targets[priority]

    def hours(span: timedelta | None) -> float | None:
        return None if span is None else span.total_seconds() / 3600

    assert (hours(target.first_response), hours(target.resolution), target.clock) == expected


def test_business_days_follow_the_business_hours_length() -> None:
    spec = ContractSpec(business_hours={"start": "08:00", "end": "12:00"})
    assert effective_contract(spec, "business").targets["P2"].first_response == timedelta(hours=12)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ({"business_hours": {"days": "mon-fry"}}, "expected weekday names"),
        ({"business_hours": {"start": "9h"}}, "expected a time of day HH:MM"),
        ({"business_hours": {"start": "18:00", "end": "09:00"}}, "expected start before end"),
        ({"response": {"P1": {"first_response": "soon"}}}, "expected a duration like 2h"),
        ({"response": {"P4": {"first_response": "2h"}}}, "P4"),
        ({"tickets_per_month": -1}, "greater than or equal to 0"),
        ({"carry_over": {"max_days": 3}}, "max_days"),
    ],
)
def test_contract_refuses(written: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ContractSpec(**written)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2h", (0, 2)), ("90m", (0, 1.5)), ("1h30", (0, 1.5)), ("3d", (3, 0)), ("1d4h", (1, 4))],
)
def test_parse_duration(text: str, expected: tuple[float, float]) -> None:
    assert parse_duration(text) == expected
