"""Response-time compliance: business-time arithmetic and, per ticket and per priority, whether
the first response (and the resolution, where the contract sets a target) came within target.

A target is met when the elapsed time on its clock is at most the target. Business time runs
only on the business days and hours of the client's time zone, holidays excluded; instants are
compared in UTC so a daylight-saving change never adds or removes an hour that was not lived.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

from tma_ops.model_contract import PRIORITIES, BusinessHours, Clock, Target
from tma_ops.tickets import Ticket

Status = Literal["met", "late", "open-late", "pending", "untimed"]
MISSED: tuple[Status, ...] = ("late", "open-late")

# Words that reach the client report.
TEXT: dict[str, dict[str, str]] = {
    "en": {
        "met": "within target",
        "late": "late",
        "open-late": "still open, past target",
        "pending": "open, within target",
        "untimed": "no timed target",
        "first_response": "first response",
        "resolution": "resolution",
        "rate": "compliance",
    },
    "fr": {
        "met": "dans les délais",
        "late": "en retard",
        "open-late": "toujours ouvert, délai dépassé",
        "pending": "ouvert, dans les délais",
        "untimed": "pas de délai chiffré",
        "first_response": "première réponse",
        "resolution": "résolution",
        "rate": "conformité",
    },
}


def business_elapsed(
    start: datetime, end: datetime, hours: BusinessHours, zone: tzinfo
) -> timedelta:
    """Business time between two aware instants: the overlap of [start, end] with each business
    day's opening hours (in `zone`), weekends and holidays excluded."""
    if end <= start:
        return timedelta(0)
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    total = timedelta(0)
    holidays = set(hours.holidays)
    weekdays = hours.weekdays
    while day <= last:
        if day.weekday() in weekdays and day not in holidays:
            opens = datetime.combine(day, hours.opening, tzinfo=zone).astimezone(UTC)
            closes = datetime.combine(day, hours.closing, tzinfo=zone).astimezone(UTC)
            overlap = min(closes, end_utc) - max(opens, start_utc)
            total += max(overlap, timedelta(0))
        day += timedelta(days=1)
    return total


def elapsed_on_clock(
    clock: Clock, start: datetime, end: datetime, hours: BusinessHours, zone: tzinfo
) -> timedelta:
    if clock == "24/7":
        return max(end.astimezone(UTC) - start.astimezone(UTC), timedelta(0))
    return business_elapsed(start, end, hours, zone)


@dataclass(frozen=True)
class Check:
    """One target of one ticket: how long it took (or has run so far) against the target."""

    status: Status
    elapsed: timedelta
    target: timedelta | None
    clock: Clock

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "elapsed_hours": _hours(self.elapsed),
            "target_hours": None if self.target is None else _hours(self.target),
            "clock": self.clock,
        }


def judge(
    target: timedelta | None,
    clock: Clock,
    opened: datetime,
    done: datetime | None,
    as_of: datetime,
    hours: BusinessHours,
    zone: tzinfo,
) -> Check:
    """met / late when done; pending / open-late when not yet (judged at `as_of`)."""
    until = done if done is not None else max(as_of, opened)
    elapsed = elapsed_on_clock(clock, opened, until, hours, zone)
    if target is None:
        status: Status = "untimed"
    elif done is not None:
        status = "met" if elapsed <= target else "late"
    else:
        status = "pending" if elapsed <= target else "open-late"
    return Check(status, elapsed, target, clock)


@dataclass(frozen=True)
class TicketCompliance:
    ticket: Ticket
    first_response: Check
    resolution: Check | None  # None: the priority has no resolution target

    @property
    def missed(self) -> bool:
        checks = [self.first_response, self.resolution]
        return any(check is not None and check.status in MISSED for check in checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.ticket.id,
            "title": self.ticket.title,
            "priority": self.ticket.priority,
            "first_response": self.first_response.to_json(),
            "resolution": None if self.resolution is None else self.resolution.to_json(),
            "missed": self.missed,
        }


def ticket_compliance(
    ticket: Ticket, target: Target, hours: BusinessHours, zone: tzinfo, as_of: datetime
) -> TicketCompliance:
    response = judge(
        target.first_response,
        target.clock,
        ticket.opened,
        ticket.first_response,
        as_of,
        hours,
        zone,
    )
    resolution = None
    if target.resolution is not None:
        resolution = judge(
            target.resolution, target.clock, ticket.opened, ticket.resolved, as_of, hours, zone
        )
    return TicketCompliance(ticket, response, resolution)


@dataclass(frozen=True)
class PrioritySummary:
    priority: str
    tickets: int
    met: int
    late: int  # answered late, or still unanswered past the target
    pending: int
    untimed: int
    resolutions_missed: int  # resolution targets missed (P0 by default)

    @property
    def rate(self) -> float | None:
        """Share of judged first responses that met the target; None when none was judged."""
        judged = self.met + self.late
        return None if judged == 0 else self.met / judged

    def to_json(self) -> dict[str, Any]:
        rate = self.rate
        return {
            "priority": self.priority,
            "tickets": self.tickets,
            "met": self.met,
            "late": self.late,
            "pending": self.pending,
            "untimed": self.untimed,
            "rate": None if rate is None else round(rate, 4),
            "resolutions_missed": self.resolutions_missed,
        }


def summarize(results: Iterable[TicketCompliance]) -> list[PrioritySummary]:
    """First-response counts and rate per priority, every priority listed."""
    by_priority: dict[str, list[TicketCompliance]] = {p: [] for p in PRIORITIES}
    for result in results:
        by_priority[result.ticket.priority].append(result)
    return [_summary(priority, group) for priority, group in by_priority.items()]


def _summary(priority: str, group: list[TicketCompliance]) -> PrioritySummary:
    statuses = [result.first_response.status for result in group]
    resolutions = [result.resolution.status for result in group if result.resolution]
    return PrioritySummary(
        priority=priority,
        tickets=len(statuses),
        met=statuses.count("met"),
        late=sum(statuses.count(s) for s in MISSED),
        pending=statuses.count("pending"),
        untimed=statuses.count("untimed"),
        resolutions_missed=sum(resolutions.count(s) for s in MISSED),
    )


@dataclass(frozen=True)
class Compliance:
    tickets: Sequence[TicketCompliance]
    priorities: Sequence[PrioritySummary]

    @property
    def missed(self) -> list[TicketCompliance]:
        return [result for result in self.tickets if result.missed]

    def to_json(self) -> dict[str, Any]:
        return {
            "tickets": [result.to_json() for result in self.tickets],
            "priorities": [summary.to_json() for summary in self.priorities],
            "missed": [result.ticket.id for result in self.missed],
        }


def compliance(
    tickets: Iterable[Ticket],
    targets: dict[str, Target],
    hours: BusinessHours,
    zone: tzinfo,
    as_of: datetime,
) -> Compliance:
    results = [ticket_compliance(t, targets[t.priority], hours, zone, as_of) for t in tickets]
    return Compliance(results, summarize(results))


def _hours(span: timedelta) -> float:
    return round(span.total_seconds() / 3600, 2)
