"""Which snapshots a retention policy keeps, and why: restic's `forget --keep-*` meaning.

A pure function. Snapshots are walked newest first. `keep_last N` keeps the N newest. Each
calendar rule (daily, weekly = ISO year + week, monthly, yearly; all in UTC) keeps a snapshot
when its period differs from the period of the last snapshot that rule kept, until the rule has
kept its count; -1 keeps one for every period, 0 turns the rule off. As in restic, a rule that
still has count left when the walk ends also keeps the oldest snapshot ("oldest daily", ...), so
that the history reaches as far back as the count allows. A snapshot is kept when any rule keeps
it. Snapshots with the same time are ordered by id, the greater id counting as the newer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from tma_ops.config import Retention

UNLIMITED = -1

Period = Callable[[datetime, int], tuple[int, ...]]


@dataclass
class _Rule:
    name: str
    count: int
    period: Period
    last: tuple[int, ...] | None = None

    def keeps(self, at: datetime, position: int, is_oldest: bool) -> str | None:
        """The reason this rule keeps the snapshot at `position` (newest = 0), or None."""
        if self.count == 0:
            return None
        value = self.period(at, position)
        if value != self.last:
            reason = self.name
        elif is_oldest:
            reason = f"oldest {self.name}"
        else:
            return None
        self.last = value
        if self.count > 0:
            self.count -= 1
        return reason


def _rules(policy: Retention) -> list[_Rule]:
    return [
        # Each position is its own period: the N newest, whatever their times.
        _Rule("last", policy.keep_last, lambda _at, position: (position,)),
        _Rule("daily", policy.keep_daily, lambda at, _: (at.year, at.month, at.day)),
        _Rule("weekly", policy.keep_weekly, lambda at, _: tuple(at.isocalendar()[:2])),
        _Rule("monthly", policy.keep_monthly, lambda at, _: (at.year, at.month)),
        _Rule("yearly", policy.keep_yearly, lambda at, _: (at.year,)),
    ]


def retention_reasons(
    snapshots: Iterable[tuple[str, datetime]], policy: Retention
) -> dict[str, list[str]]:
    """For each snapshot the policy keeps, the rules that keep it (newest snapshot first).

    A snapshot that is not in the result is not kept by the policy.
    """
    newest_first = sorted(
        ((snapshot_id, as_utc(at)) for snapshot_id, at in snapshots),
        key=lambda item: (item[1], item[0]),
        reverse=True,
    )
    rules = _rules(policy)
    kept: dict[str, list[str]] = {}
    for position, (snapshot_id, at) in enumerate(newest_first):
        is_oldest = position == len(newest_first) - 1
        reasons = [r for rule in rules if (r := rule.keeps(at, position, is_oldest))]
        if reasons:
            kept[snapshot_id] = reasons
    return kept


def snapshots_to_keep(
    snapshots: Iterable[tuple[str, datetime]], policy: Retention, protected: Iterable[str] = ()
) -> set[str]:
    """The ids the policy keeps, plus the protected ones."""
    return set(retention_reasons(snapshots, policy)) | set(protected)


def as_utc(at: datetime) -> datetime:
    """`at` in UTC; a time without a zone is taken as UTC already."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
