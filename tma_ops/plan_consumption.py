"""Plan consumption for a calendar month: corrective tickets and evolutive hours used against
what the contract gives, with the previous month's unused allowance carried over.

A ticket counts in the month it was opened (in the client's time zone). Carry-over takes the
previous month's own allowance minus what it used, capped by the contract; what a month
received by carry-over is not carried again, so nothing accumulates month after month.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from tma_ops.model_contract import Contract
from tma_ops.tickets import Ticket

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

# Words that reach the client report.
TEXT: dict[str, dict[str, str]] = {
    "en": {
        "corrective": "corrective tickets",
        "evolutive": "evolutive hours",
        "unlimited": "unlimited",
        "carried": "carried over from last month",
        "over": "over the plan",
        "within": "within the plan",
    },
    "fr": {
        "corrective": "tickets correctifs",
        "evolutive": "heures d'évolutif",
        "unlimited": "illimité",
        "carried": "report du mois précédent",
        "over": "au-delà du forfait",
        "within": "dans le forfait",
    },
}


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        match = MONTH.match(text.strip())
        if not match:
            raise ValueError(f"expected a month written YYYY-MM like 2024-05; got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def previous(self) -> Month:
        return Month(self.year - 1, 12) if self.month == 1 else Month(self.year, self.month - 1)

    @property
    def following(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def start(self, zone: tzinfo) -> datetime:
        """Midnight of the first day in `zone` (aware)."""
        return datetime(self.year, self.month, 1, tzinfo=zone)

    def end(self, zone: tzinfo) -> datetime:
        return self.following.start(zone)

    def holds(self, moment: datetime, zone: tzinfo) -> bool:
        local = moment.astimezone(zone)
        return (local.year, local.month) == (self.year, self.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class Usage:
    corrective_tickets: int
    evolutive_time: timedelta

    @property
    def evolutive_hours(self) -> float:
        return self.evolutive_time.total_seconds() / 3600


def month_tickets(tickets: Iterable[Ticket], month: Month, zone: tzinfo) -> list[Ticket]:
    return [ticket for ticket in tickets if month.holds(ticket.opened, zone)]


def usage_of(tickets: Iterable[Ticket]) -> Usage:
    """Corrective tickets count one each; evolutive tickets count their time spent."""
    chosen = list(tickets)
    evolutive = [t.time_spent for t in chosen if t.kind == "evolutive"]
    return Usage(
        corrective_tickets=sum(1 for t in chosen if t.kind == "corrective"),
        evolutive_time=sum(evolutive, timedelta(0)),
    )


@dataclass(frozen=True)
class Consumption:
    month: str
    corrective_used: int
    corrective_allowance: int | None  # None: unlimited
    corrective_carried: int
    evolutive_used_hours: float
    evolutive_allowance_hours: float
    evolutive_carried_hours: float

    @property
    def corrective_available(self) -> int | None:
        if self.corrective_allowance is None:
            return None
        return self.corrective_allowance + self.corrective_carried

    @property
    def evolutive_available_hours(self) -> float:
        return self.evolutive_allowance_hours + self.evolutive_carried_hours

    @property
    def corrective_over(self) -> int:
        available = self.corrective_available
        return 0 if available is None else max(self.corrective_used - available, 0)

    @property
    def evolutive_over_hours(self) -> float:
        return round(max(self.evolutive_used_hours - self.evolutive_available_hours, 0.0), 2)

    @property
    def over(self) -> bool:
        return self.corrective_over > 0 or self.evolutive_over_hours > 0

    def to_json(self) -> dict[str, Any]:
        available = self.corrective_available
        return {
            "month": self.month,
            "corrective": {
                "used": self.corrective_used,
                "allowance": self.corrective_allowance,
                "carried_over": self.corrective_carried,
                "available": available,
                "unlimited": available is None,
                "over": self.corrective_over,
                "gauge": _gauge(self.corrective_used, available),
            },
            "evolutive_hours": {
                "used": round(self.evolutive_used_hours, 2),
                "allowance": self.evolutive_allowance_hours,
                "carried_over": round(self.evolutive_carried_hours, 2),
                "available": round(self.evolutive_available_hours, 2),
                "over": self.evolutive_over_hours,
                "gauge": _gauge(self.evolutive_used_hours, self.evolutive_available_hours),
            },
            "over": self.over,
        }


def _gauge(used: float, available: float | None) -> float | None:
    """Share of the allowance used (above 1 when over); None when unlimited or none given."""
    if available is None or available <= 0:
        return None
    return round(used / available, 4)


def consumption(contract: Contract, month: str, used: Usage, previous: Usage) -> Consumption:
    """This month's use against the allowance plus what the previous month left, capped."""
    allowance = contract.tickets_per_month
    carried_tickets = 0
    if allowance is not None:
        left = max(allowance - previous.corrective_tickets, 0)
        carried_tickets = min(left, contract.carry_over_tickets)
    left_hours = max(contract.evolutive_hours - previous.evolutive_hours, 0.0)
    return Consumption(
        month=month,
        corrective_used=used.corrective_tickets,
        corrective_allowance=allowance,
        corrective_carried=carried_tickets,
        evolutive_used_hours=used.evolutive_hours,
        evolutive_allowance_hours=contract.evolutive_hours,
        evolutive_carried_hours=min(left_hours, contract.carry_over_hours),
    )


def month_consumption(
    contract: Contract, tickets: Iterable[Ticket], month: Month, zone: tzinfo
) -> Consumption:
    every = list(tickets)
    used = usage_of(month_tickets(every, month, zone))
    previous = usage_of(month_tickets(every, month.previous, zone))
    return consumption(contract, str(month), used, previous)
