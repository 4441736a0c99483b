"""The maintenance contract of a site: ticket and evolutive-hour allowances, carry-over, the
business calendar and the response targets per priority.

What the inventory writes is kept as written (`ContractSpec`, every allowance optional);
`effective_contract(spec, tier)` fills what is left out from the tier's row of the engagement
table and turns target durations into time spans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Priority = Literal["P0", "P1", "P2", "P3"]
PRIORITIES: tuple[Priority, ...] = ("P0", "P1", "P2", "P3")
Clock = Literal["24/7", "business"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DURATION = re.compile(
    r"(?:(?P<days>\d+(?:\.\d+)?)d)?(?:(?P<hours>\d+(?:\.\d+)?)h(?P<after_hours>\d{1,2}(?![\dm]))?)?"
    r"(?:(?P<minutes>\d+)m)?"
)
UNLIMITED = "unlimited"

# The engagement tiers: corrective tickets a month (None: unlimited), evolutive hours a month,
# and the P0 first-response target with its clock.
TIER_TICKETS: dict[str, int | None] = {"essentiel": 2, "business": 5, "critique": None}
TIER_EVOLUTIVE_HOURS: dict[str, float] = {"essentiel": 0.0, "business": 2.0, "critique": 4.0}
TIER_P0_RESPONSE: dict[str, tuple[str, Clock]] = {
    "essentiel": ("8h", "business"),
    "business": ("4h", "business"),
    "critique": ("2h", "24/7"),
}
P0_RESOLUTION = "8h"  # on the P0 response's clock
OTHER_TARGETS: dict[Priority, tuple[str | None, Clock]] = {
    "P1": ("8h", "business"),
    "P2": ("3d", "business"),
    "P3": (None, "business"),  # next sprint or batch: no timed target
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_duration(text: str) -> tuple[float, float]:
    """'2h', '90m', '1h30', '3d', '1d4h' -> (days, hours). Days are the clock's days: business
    days on the business clock, 24 h on the 24/7 clock."""
    compact = text.replace(" ", "").lower() if isinstance(text, str) else ""
    match = DURATION.fullmatch(compact)
    if not compact or not match:
        raise ValueError(f"expected a duration like 2h, 90m, 1h30 or 3d; got {text!r}")
    days, hours, after_hours, minutes = match.group("days", "hours", "after_hours", "minutes")
    minutes_total = int(after_hours or 0) + int(minutes or 0)
    return float(days or 0), float(hours or 0) + minutes_total / 60


class CarryOver(_Frozen):
    """Unused allowance of the previous month carried into this one, capped."""

    max_hours: float = Field(0.0, ge=0)  # evolutive hours
    max_tickets: int = Field(0, ge=0)  # corrective tickets (when not unlimited)


class BusinessHours(_Frozen):
    """When the business clock runs, in the client's time zone."""

    days: str | list[str] = "mon-fri"  # a range (mon-fri), names separated by commas, or a list
    start: str = "09:00"
    end: str = "18:00"
    holidays: list[date] = []

    @field_validator("days")
    @classmethod
    def _known_days(cls, value: str | list[str]) -> str | list[str]:
        weekday_numbers(value)
        return value

    @field_validator("start", "end")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not CLOCK_TIME.match(value):
            raise ValueError(f"expected a time of day HH:MM like 09:00; got {value!r}")
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> BusinessHours:
        if self.start >= self.end:
            raise ValueError(f"expected start before end; got {self.start} to {self.end}")
        return self

    @property
    def opening(self) -> time:
        return time.fromisoformat(self.start)

    @property
    def closing(self) -> time:
        return time.fromisoformat(self.end)

    @property
    def weekdays(self) -> frozenset[int]:
        return weekday_numbers(self.days)

    @property
    def day_length(self) -> timedelta:
        return timedelta(hours=self.closing.hour - self.opening.hour) + timedelta(
            minutes=self.closing.minute - self.opening.minute
        )


def weekday_numbers(days: str | list[str]) -> frozenset[int]:
    """'mon-fri' -> {0..4}; 'mon,wed' or ['mon', 'wed'] -> {0, 2}."""
    names = [n.strip().lower() for n in (days.split(",") if isinstance(days, str) else days)]
    numbers: set[int] = set()
    for name in names:
        first, _, last = name.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(
                f"expected weekday names ({', '.join(WEEKDAYS)}) or a range like mon-fri; "
                f"got {name!r}"
            )
        start, stop = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        numbers.update(
            range(start, stop + 1) if start <= stop else [*range(start, 7), *range(stop + 1)]
        )
    if not numbers:
        raise ValueError("expected at least one weekday")
    return frozenset(numbers)


class TargetSpec(_Frozen):
    """A priority's targets as written; keys left out keep the default, null means no target."""

    first_response: str | None = None
    resolution: str | None = None
    clock: Clock = "business"

    @field_validator("first_response", "resolution")
    @classmethod
    def _is_duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class ContractSpec(_Frozen):
    """`contract:` of a site. Left out: the tier's allowances, no carry-over, Monday to Friday
    09:00-18:00, the priority matrix's targets, no ticket file."""

    tickets_per_month: Annotated[int, Field(ge=0)] | Literal["unlimited"] | None = None
    evolutive_hours: float | None = Field(None, ge=0)
    carry_over: CarryOver | None = None
    business_hours: BusinessHours = BusinessHours()
    tickets: str | None = None  # CSV or YAML file, relative to the inventory file
    response: dict[Priority, TargetSpec] = {}


@dataclass(frozen=True)
class Target:
    """A priority's effective targets: time spans on its clock; None means no timed target."""

    first_response: timedelta | None
    resolution: timedelta | None
    clock: Clock

    def to_json(self) -> dict[str, Any]:
        def hours(span: timedelta | None) -> float | None:
            return None if span is None else round(span.total_seconds() / 3600, 2)

        return {
            "first_response_hours": hours(self.first_response),
            "resolution_hours": hours(self.resolution),
            "clock": self.clock,
        }


@dataclass(frozen=True)
class Contract:
    tickets_per_month: int | None  # None: unlimited
    evolutive_hours: float
    carry_over_hours: float
    carry_over_tickets: int
    business_hours: BusinessHours
    targets: dict[str, Target] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "tickets_per_month": self.tickets_per_month,
            "evolutive_hours": self.evolutive_hours,
            "carry_over": {
                "max_hours": self.carry_over_hours,
                "max_tickets": self.carry_over_tickets,
            },
            "business_hours": {
                "days": sorted(self.business_hours.weekdays),
                "start": self.business_hours.start,
                "end": self.business_hours.end,
                "holidays": [d.isoformat() for d in self.business_hours.holidays],
            },
            "targets": {p: t.to_json() for p, t in self.targets.items()},
        }


def effective_contract(spec: ContractSpec, tier: str) -> Contract:
    """The contract with the tier's defaults filled in."""
    tickets = spec.tickets_per_month
    carry = spec.carry_over or CarryOver()
    return Contract(
        tickets_per_month=TIER_TICKETS[tier] if tickets is None else _limit(tickets),
        evolutive_hours=(
            TIER_EVOLUTIVE_HOURS[tier] if spec.evolutive_hours is None else spec.evolutive_hours
        ),
        carry_over_hours=carry.max_hours,
        carry_over_tickets=carry.max_tickets,
        business_hours=spec.business_hours,
        targets={p: _target(p, tier, spec, spec.business_hours.day_length) for p in PRIORITIES},
    )


def _limit(tickets: int | str) -> int | None:
    return None if tickets == UNLIMITED else int(tickets)


def _target(priority: Priority, tier: str, spec: ContractSpec, day: timedelta) -> Target:
    response: str | None
    clock: Clock
    if priority == "P0":
        response, clock = TIER_P0_RESPONSE[tier]
        resolution: str | None = P0_RESOLUTION
    else:
        response, clock = OTHER_TARGETS[priority]
        resolution = None
    written = spec.response.get(priority)
    if written is not None:
        chosen = written.model_fields_set
        response = written.first_response if "first_response" in chosen else response
        resolution = written.resolution if "resolution" in chosen else resolution
        clock = written.clock if "clock" in chosen else clock
    business_day = day if clock == "business" else timedelta(hours=24)
    return Target(_span(response, business_day), _span(resolution, business_day), clock)


def _span(text: str | None, day: timedelta) -> timedelta | None:
    if text is None:
        return None
    days, hours = parse_duration(text)
    return day * days + timedelta(hours=hours)
