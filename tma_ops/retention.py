"""Which snapshots to keep: the last N, plus the newest of each of the last days, weeks, months.

A pure function, as in borg's prune: a snapshot is kept when any rule keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from tma_ops.config import Retention

Period = Callable[[datetime], tuple[int, ...]]

_PERIODS: dict[str, Period] = {
    "keep_daily": lambda t: (t.year, t.month, t.day),
    "keep_weekly": lambda t: tuple(t.isocalendar()[:2]),
    "keep_monthly": lambda t: (t.year, t.month),
}


def snapshots_to_keep(
    snapshots: Iterable[tuple[str, datetime]], policy: Retention, protected: Iterable[str] = ()
) -> set[str]:
    newest_first = sorted(snapshots, key=lambda item: item[1], reverse=True)
    keep = {snapshot_id for snapshot_id, _ in newest_first[: policy.keep_last]}
    keep.update(protected)
    for rule, period in _PERIODS.items():
        keep.update(_newest_per_period(newest_first, period, getattr(policy, rule)))
    return keep


def _newest_per_period(
    newest_first: list[tuple[str, datetime]], period: Period, count: int
) -> list[str]:
    seen: set[tuple[int, ...]] = set()
    kept: list[str] = []
    for snapshot_id, created in newest_first:
        if len(seen) >= count:
            break
        key = period(created)
        if key not in seen:
            seen.add(key)
            kept.append(snapshot_id)
    return kept
