"""Pure decisions of `tma-ops verify`: which parts a --read-data-subset run reads, which
percentages are accepted, which snapshots a broken chain of parents leaves unrestorable.
Table tests: one row per case, each with an id."""

from __future__ import annotations

import random

import pytest

from tma_ops.errors import TmaError
from tma_ops.verify import (
    Kind,
    broken_parent_chains,
    choose_parts_to_read,
    group_by_snapshot,
    parse_subset_percent,
)

pytestmark = pytest.mark.unit

SEEDS = range(50)


def equal_parts(count: int, size: int = 10) -> dict[str, int]:
    return {f"s{index:02}/files.tar.zst": size for index in range(count)}


# id: (sizes, percent, parts read, bytes read), whatever the seed
SUBSETS = {
    "all-at-100": ({"a": 10, "b": 2000, "c": 0}, 100, 3, 2010),
    "nothing-stored": ({}, 50, 0, 0),
    "half-of-four-equal": (equal_parts(4), 50, 2, 20),
    "tenth-of-ten-equal": (equal_parts(10), 10, 1, 10),
    "quarter-rounds-down-to-whole-parts": (equal_parts(10), 25, 2, 20),
    "a-tiny-share-still-reads-one": (equal_parts(10), 0.1, 1, 10),
    "a-single-part-is-read": ({"only": 12345}, 1, 1, 12345),
}


@pytest.mark.parametrize(("sizes", "percent", "count", "total"), SUBSETS.values(), ids=SUBSETS)
def test_subset_size(sizes: dict[str, int], percent: float, count: int, total: int) -> None:
    for seed in SEEDS:
        chosen = choose_parts_to_read(sizes, percent, seed)
        assert (len(chosen), sum(sizes[key] for key in chosen)) == (count, total), seed
        assert chosen == sorted(chosen)


# id: (sizes, percent)
BUDGETS = {
    "mixed-sizes-tenth": ({"db": 40, "f1": 300, "f2": 500, "f3": 60, "f4": 100}, 10),
    "mixed-sizes-half": ({"db": 40, "f1": 300, "f2": 500, "f3": 60, "f4": 100}, 50),
    "one-giant-part": ({"db": 10, "files": 990}, 10),
    "many-small-one-big": ({**equal_parts(20, 5), "big": 900}, 5),
}


@pytest.mark.parametrize(("sizes", "percent"), BUDGETS.values(), ids=BUDGETS)
def test_subset_stays_within_budget_unless_one_part_exceeds_it(
    sizes: dict[str, int], percent: float
) -> None:
    budget = sum(sizes.values()) * percent / 100
    for seed in SEEDS:
        chosen = choose_parts_to_read(sizes, percent, seed)
        assert chosen, seed
        assert sum(sizes[key] for key in chosen) <= budget or len(chosen) == 1, (seed, chosen)


@pytest.mark.parametrize(("sizes", "percent"), BUDGETS.values(), ids=BUDGETS)
def test_runs_with_different_seeds_read_every_part_over_time(
    sizes: dict[str, int], percent: float
) -> None:
    read: set[str] = set()
    for seed in range(200):
        read.update(choose_parts_to_read(sizes, percent, seed))
    assert read == set(sizes)


def test_a_part_bigger_than_the_budget_is_not_read_every_time() -> None:
    sizes = {"db": 10, "f1": 10, "f2": 10, "files": 970}
    runs_reading_it = sum("files" in choose_parts_to_read(sizes, 10, seed) for seed in SEEDS)
    assert 0 < runs_reading_it < len(SEEDS)


def test_the_same_seed_reads_the_same_parts_whatever_the_listing_order() -> None:
    sizes = {f"part-{index}": (index * 37) % 100 + 1 for index in range(30)}
    shuffled = list(sizes.items())
    random.Random(1).shuffle(shuffled)
    for seed in SEEDS:
        assert choose_parts_to_read(sizes, 20, seed) == choose_parts_to_read(
            dict(shuffled), 20, seed
        )


def test_different_seeds_read_different_parts() -> None:
    choices = {tuple(choose_parts_to_read(equal_parts(10), 30, seed)) for seed in SEEDS}
    assert len(choices) > 10


# --- --read-data-subset values -----------------------------------------------------------------

ACCEPTED = {
    "plain": ("10", 10.0),
    "with-percent-sign": ("10%", 10.0),
    "spaces": (" 2.5 % ", 2.5),
    "all": ("100", 100.0),
    "all-with-sign": ("100%", 100.0),
    "tiny": ("0.01", 0.01),
}


@pytest.mark.parametrize(("text", "percent"), ACCEPTED.values(), ids=ACCEPTED)
def test_accepted_percentages(text: str, percent: float) -> None:
    assert parse_subset_percent(text) == percent


REFUSED = {
    "zero": "0",
    "zero-percent": "0%",
    "negative": "-5",
    "above-100": "150",
    "just-above-100": "100.1",
    "word": "abc",
    "empty": "",
    "sign-only": "%",
    "nan": "nan",
    "infinity": "inf",
    "size-not-percent": "50M",
}


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED)
def test_refused_percentages_say_what_is_expected(text: str) -> None:
    with pytest.raises(TmaError) as caught:
        parse_subset_percent(text)
    message = str(caught.value)
    assert message.startswith("--read-data-subset: expected a percentage above 0 and at most 100")
    assert repr(text) in message
    assert "\n" not in message


# --- chains of parents -------------------------------------------------------------------------

# id: (parents of the readable snapshots, unreadable ones, {broken snapshot: broken link})
CHAINS = {
    "full-snapshots-only": ({"a": None, "b": None}, [], {}),
    "whole-chain": ({"a": None, "b": "a", "c": "b"}, [], {}),
    "missing-parent": ({"b": "a"}, [], {"b": "a"}),
    "missing-grandparent-breaks-both": (
        {"b": "a", "c": "b", "d": None},
        [],
        {"b": "a", "c": "a"},
    ),
    "unreadable-parent": ({"b": "a", "c": "b"}, ["a"], {"b": "a", "c": "a"}),
    "loop": ({"a": "b", "b": "a"}, [], {"a": "a", "b": "b"}),
}


@pytest.mark.parametrize(("parents", "unreadable", "broken"), CHAINS.values(), ids=CHAINS)
def test_broken_parent_chains(
    parents: dict[str, str | None], unreadable: list[str], broken: dict[str, str]
) -> None:
    problems = broken_parent_chains("blog", parents, unreadable)
    assert {p.kind for p in problems} <= {Kind.MISSING_PARENT}
    found = {p.snapshot_id: p.key for p in problems}
    assert found == {
        child: f"blog/snapshots/{link}/manifest.json" for child, link in broken.items()
    }
    for problem in problems:
        assert problem.snapshot_id in problem.describe()
        assert problem.key in problem.describe()


def test_a_missing_parent_is_named_with_its_child() -> None:
    (problem,) = broken_parent_chains("blog", {"child": "gone"}, [])
    assert problem.describe() == (
        "missing parent: snapshot child cannot be restored: its parent gone, which is missing "
        "(blog/snapshots/gone/manifest.json)"
    )


def test_keys_are_grouped_by_snapshot_directory() -> None:
    keys = [
        "blog/snapshots/s1/db.sqlite.zst",
        "blog/snapshots/s1/manifest.json",
        "blog/snapshots/s2/files.tar.zst",
        "blog/snapshots/stray.bin",
    ]
    groups, strays = group_by_snapshot(keys, "blog/snapshots/")
    assert groups == {"s1": keys[:2], "s2": [keys[2]]}
    assert strays == ["blog/snapshots/stray.bin"]
