"""Bisect a failed batch of updates: which updates broke staging, and which may be promoted.

The search is replayed from the results of the rounds already run, so it is a pure function of
(plan order, results) and a run resumed after a crash continues where the journal stopped.

It keeps the plan's order and grows a set of updates that passed TOGETHER (only a set staging
tested as a whole is promoted). While updates remain, it tests the passing set plus all of them;
if that fails, a binary search over prefixes of the remaining ones finds the first culprit: the
update whose addition to a passing prefix makes staging fail. Culprits are set aside and the
search goes on with the updates after it, so several culprits are found too. Staging without any
update is production's state, taken as passing.

With one culprit among six, it needs at most four rounds after the failed batch, fewer when the
culprit comes late in the plan; in general about log2(n) rounds per culprit plus one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Components = tuple[str, ...]


@dataclass(frozen=True)
class Round:
    """The next set of updates to apply on a freshly restored staging, in plan order."""

    components: Components


@dataclass(frozen=True)
class Verdict:
    promotable: Components  # passed together on staging
    culprits: Components


class _Untested(Exception):
    def __init__(self, components: Components) -> None:
        self.components = components


def next_step(plan: Sequence[str], results: Mapping[Components, bool]) -> Round | Verdict:
    """The next round to run, or the verdict once the results settle it.

    `results` maps each tested set (plan order) to whether staging passed its smoke test; the
    failed whole batch is one of them.
    """

    def passed(components: Components) -> bool:
        if not components:
            return True
        if components not in results:
            raise _Untested(components)
        return results[components]

    try:
        return _search(tuple(plan), passed)
    except _Untested as untested:
        return Round(untested.components)


def _search(plan: Components, passed: Callable[[Components], bool]) -> Verdict:
    good: Components = ()
    culprits: Components = ()
    rest = plan
    while rest:
        if passed(good + rest):
            return Verdict(good + rest, culprits)
        # good + rest[:lo] passes, good + rest[:hi] fails; the culprit is rest[hi - 1].
        lo, hi = 0, len(rest)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if passed(good + rest[:mid]):
                lo = mid
            else:
                hi = mid
        good, culprits, rest = good + rest[:lo], (*culprits, rest[lo]), rest[hi:]
    return Verdict(good, culprits)


def rounds_needed(plan: Sequence[str], culprits: set[str]) -> int:
    """Rounds after the failed batch when exactly `culprits` break staging (for tests/bench)."""
    results: dict[Components, bool] = {tuple(plan): not (culprits & set(plan))}
    rounds = 0
    while isinstance(step := next_step(plan, results), Round):
        results[step.components] = not (culprits & set(step.components))
        rounds += 1
    return rounds
