from __future__ import annotations

import itertools

import pytest

from tma_ops.bisect import Round, Verdict, next_step, rounds_needed

pytestmark = pytest.mark.unit

SIX = ("a", "b", "c", "d", "e", "f")


def run(plan: tuple[str, ...], culprits: set[str]) -> tuple[Verdict, list[tuple[str, ...]]]:
    """Play the search against a staging that fails whenever a culprit is applied."""
    results = {plan: not culprits & set(plan)}
    tested = []
    while isinstance(step := next_step(plan, results), Round):
        assert step.components not in results, "a set is never tested twice"
        tested.append(step.components)
        results[step.components] = not culprits & set(step.components)
    return step, tested


@pytest.mark.parametrize("culprit", SIX)
def test_one_culprit_among_six_is_found_in_at_most_four_rounds(culprit: str) -> None:
    verdict, tested = run(SIX, {culprit})
    assert verdict.culprits == (culprit,)
    assert verdict.promotable == tuple(c for c in SIX if c != culprit)
    assert len(tested) <= 4
    assert verdict.promotable in tested


@pytest.mark.parametrize("culprits", [set(p) for p in itertools.combinations(SIX, 2)])
def test_two_culprits_are_both_found(culprits: set[str]) -> None:
    verdict, _ = run(SIX, culprits)
    assert set(verdict.culprits) == culprits
    assert verdict.promotable == tuple(c for c in SIX if c not in culprits)


@pytest.mark.parametrize(
    ("plan", "culprits", "promotable"),
    [
        (("a",), {"a"}, ()),
        (("a", "b"), {"a", "b"}, ()),
        (SIX, set(SIX), ()),
        (("a", "b", "c"), {"c"}, ("a", "b")),
    ],
)
def test_edge_plans(plan: tuple[str, ...], culprits: set[str], promotable: tuple[str, ...]) -> None:
    verdict, _ = run(plan, culprits)
    assert verdict == Verdict(promotable, tuple(c for c in plan if c in culprits))


def test_only_sets_that_passed_together_are_promoted() -> None:
    for culprits in [set(p) for n in (1, 2, 3) for p in itertools.combinations(SIX, n)]:
        verdict, tested = run(SIX, culprits)
        if verdict.promotable:
            assert verdict.promotable in tested, (culprits, tested)


def test_a_single_failed_update_needs_no_round() -> None:
    assert next_step(["a"], {("a",): False}) == Verdict((), ("a",))
    assert rounds_needed(["a"], {"a"}) == 0


def test_the_first_round_tests_the_first_half_in_plan_order() -> None:
    assert next_step(SIX, {SIX: False}) == Round(("a", "b", "c"))


def test_the_search_resumes_from_recorded_results() -> None:
    results = {SIX: False, ("a", "b", "c"): True}
    assert next_step(SIX, results) == Round(("a", "b", "c", "d"))
