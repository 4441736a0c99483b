"""The pure parts of release trees: ids, shared paths and their relative links, which release a
rollback goes back to, which releases a prune deletes, and the fields a release records.

Table tests: releases are written as "<id suffix>:<status>", the current one with a '*'.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tma_ops.errors import ReleaseError
from tma_ops.releases import (
    RELEASE_ID,
    Release,
    check_info,
    check_relative_path,
    check_release_id,
    check_shared_paths,
    new_release_id,
    prune_choice,
    release_id_of_link,
    release_of,
    release_order,
    rollback_target_of,
    shared_link_target,
)

pytestmark = pytest.mark.unit


def releases(*specs: str) -> list[Release]:
    """ "1:good", "2:bad*" -> releases 20260101T00000<n>Z-r<n>, '*' marking the current one."""
    found = []
    for spec in specs:
        number, status = spec.rstrip("*").split(":")
        found.append(
            release_of(rid(number), {"status": status}, rid(number) if spec.endswith("*") else "")
        )
    return found


def rid(number: str) -> str:
    return f"20260101T00000{number}Z-r{number}"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("20261129T010203Z-ab12cd", True),
        ("20261129T010203Z", True),
        ("20261129T010203Z-run_7", True),
        ("20261129T010203-ab12cd", False),  # no Z: not UTC
        ("2026-11-29T01:02:03Z", False),
        ("20261129T010203Z-", False),
        ("20261129T010203Z-../x", False),
        ("20261129T010203Z-a/b", False),
        ("../20261129T010203Z", False),
        ("current", False),
        ("", False),
    ],
)
def test_release_ids(value: str, valid: bool) -> None:
    if valid:
        assert check_release_id(value) == value
    else:
        with pytest.raises(ReleaseError, match="is not valid: expected a UTC time"):
            check_release_id(value)


def test_new_release_ids_are_valid_and_sort_by_time() -> None:
    moment = datetime(2026, 11, 29, 2, 2, 3, tzinfo=timezone(timedelta(hours=1)))
    first = new_release_id(moment)
    assert first.startswith("20261129T010203Z-") and RELEASE_ID.match(first)
    assert new_release_id(moment + timedelta(seconds=1)) > first
    assert RELEASE_ID.match(new_release_id())
    assert new_release_id(datetime(2026, 1, 1, tzinfo=UTC)) != new_release_id(
        datetime(2026, 1, 1, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("wp-config.php", "../../shared/wp-config.php"),
        ("uploads", "../../shared/uploads"),
        ("wp-content/uploads", "../../../shared/wp-content/uploads"),
        ("a/b/c/.env", "../../../../../shared/a/b/c/.env"),
    ],
)
def test_shared_links_are_relative_and_climb_to_root(path: str, target: str) -> None:
    assert shared_link_target(path) == target
    link_dir = ["releases", "20261129T010203Z", *path.split("/")[:-1]]
    climbed = len(link_dir) - target.count("../")
    assert climbed == 0  # exactly back at root, then down into shared/


@pytest.mark.parametrize(
    ("paths", "problem"),
    [
        (["wp-config.php", "wp-content/uploads"], None),
        ([], None),
        (["/etc/passwd"], "is not valid"),
        (["../outside"], "is not valid"),
        (["a/./b"], "is not valid"),
        (["uploads/"], "is not valid"),
        ([""], "is not valid"),
        (["wp-content", "wp-content/uploads"], "overlap"),
        (["wp-content/uploads", "wp-content"], "overlap"),
        (["media", "media"], "overlap"),
    ],
)
def test_shared_paths(paths: list[str], problem: str | None) -> None:
    if problem is None:
        assert check_shared_paths(paths) == tuple(paths)
    else:
        with pytest.raises(ReleaseError, match=problem):
            check_shared_paths(paths)


def test_maintenance_file_paths() -> None:
    assert check_relative_path(".maintenance", "maintenance file") == ".maintenance"
    assert check_relative_path("web/.maintenance", "maintenance file") == "web/.maintenance"
    with pytest.raises(ReleaseError, match=r"maintenance file '\.\./\.maintenance' is not valid"):
        check_relative_path("../.maintenance", "maintenance file")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("releases/20261129T010203Z-ab12cd", "20261129T010203Z-ab12cd"),
        ("releases/20261129T010203Z-ab12cd/", "20261129T010203Z-ab12cd"),
        ("./releases/20261129T010203Z-ab12cd", "20261129T010203Z-ab12cd"),
        ("/srv/site/releases/20261129T010203Z-ab12cd", None),  # absolute: not ours
        ("releases/not-an-id", None),
        ("elsewhere/20261129T010203Z-ab12cd", None),
        ("", None),
        (None, None),
    ],
)
def test_release_named_by_current_link(target: str | None, expected: str | None) -> None:
    assert release_id_of_link(target) == expected


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        (["1:good", "2:good*"], "1"),
        (["1:good", "2:bad", "3:good*"], "1"),  # a bad release is skipped
        (["1:bad", "2:good*"], None),
        (["1:good*"], None),
        (["1:good", "2:good*", "3:pending"], "1"),  # newer ones are not rollback targets
        (["1:good", "2:pending", "3:good*"], "2"),  # not bad: pending counts
        (["1:good", "2:unknown", "3:good*"], "2"),  # a directory without a mark
        (["1:good", "2:good", "3:pending*"], "2"),
        (["1:good", "2:good"], None),  # no current release
        ([], None),
    ],
)
def test_rollback_target(specs: list[str], expected: str | None) -> None:
    target = rollback_target_of(releases(*specs))
    assert (target.id if target else None) == (rid(expected) if expected else None)


@pytest.mark.parametrize(
    ("specs", "keep", "expected"),
    [
        (["1:good", "2:good", "3:good", "4:good*"], 2, ["1", "2"]),
        (["1:good", "2:good", "3:good", "4:good*"], 3, ["1"]),
        (["1:good", "2:good", "3:good", "4:good*"], 1, ["1", "2"]),  # 3: the rollback target
        (["1:good", "2:good", "3:good", "4:good*"], 4, []),
        (["1:good", "2:good", "3:bad", "4:good*"], 1, ["1", "3"]),  # target is 2
        (["1:good", "2:good*", "3:bad", "4:pending"], 2, []),  # 1 target, 2 current
        (["1:good", "2:good*", "3:bad", "4:pending", "5:bad"], 2, ["3"]),
        (["1:good", "2:good*", "3:bad", "4:pending", "5:bad"], 0, ["3", "4", "5"]),
        (["1:good*"], 0, []),
        ([], 3, []),
    ],
)
def test_prune_choice(specs: list[str], keep: int, expected: list[str]) -> None:
    assert prune_choice(releases(*specs), keep) == [rid(number) for number in expected]


def test_prune_refuses_a_negative_keep() -> None:
    with pytest.raises(ReleaseError, match="releases to keep must be 0 or more, got -1"):
        prune_choice(releases("1:good*"), -1)


@pytest.mark.parametrize(
    ("info", "problem"),
    [
        ({"run_id": "r", "snapshot_id": None, "migrations": ["0002_x"], "reason": ""}, None),
        ({"previous": "20261129T010203Z"}, None),
        ({"migrations": []}, None),
        ({"colour": "red"}, "release field 'colour' is unknown"),
        ({"migrations": "0002_x"}, "release field 'migrations' has an unexpected value"),
        ({"migrations": [2]}, "release field 'migrations' has an unexpected value"),
        ({"run_id": 7}, "release field 'run_id' has an unexpected value"),
        ({"reason": None}, "release field 'reason' has an unexpected value"),
    ],
)
def test_release_fields(info: dict[str, object], problem: str | None) -> None:
    if problem is None:
        assert check_info(info) == info
    else:
        with pytest.raises(ReleaseError, match=problem):
            check_info(info)


@pytest.mark.parametrize(
    ("mark", "status", "migrations", "recorded"),
    [
        ({"status": "good", "migrations": ["m1"]}, "good", ["m1"], True),
        ({"status": "pending"}, "pending", [], False),  # the update never said
        ({"status": "pending", "migrations": []}, "pending", [], True),
        (None, "unknown", [], False),  # a directory without a mark
        ("garbage", "unknown", [], False),
        ({"status": 3, "migrations": "x"}, "unknown", [], False),
    ],
)
def test_release_read_from_a_mark(
    mark: object, status: str, migrations: list[str], recorded: bool
) -> None:
    release = release_of("20261129T010203Z", mark, "20261129T010203Z")
    assert (release.status, release.migrations, release.migrations_recorded) == (
        status,
        migrations,
        recorded,
    )
    assert release.is_current


@pytest.mark.parametrize(
    ("made", "expected"),
    [
        # (id suffix, recorded time): same second, the recorded time decides, not the suffix
        ([("f7", "2026-11-29T03:44:36.100000Z"), ("0a", "2026-11-29T03:44:36.900000Z")], "f7"),
        ([("0a", "2026-11-29T03:44:36.100000Z"), ("f7", "2026-11-29T03:44:36.900000Z")], "0a"),
        # a mark written before times had fractions still compares with a newer one
        ([("f7", "2026-11-29T03:44:36Z"), ("0a", "2026-11-29T03:44:36.500000Z")], "f7"),
        # without a recorded time the id decides
        ([("0a", ""), ("f7", "")], "0a"),
    ],
)
def test_releases_made_within_one_second_keep_their_order(
    made: list[tuple[str, str]], expected: str
) -> None:
    found = [
        release_of(f"20261129T034436Z-{suffix}", {"status": "good", "created_at": at}, None)
        for suffix, at in made
    ]
    newest = found[-1]
    current = release_of(newest.id, {"status": "good", "created_at": made[-1][1]}, newest.id)
    target = rollback_target_of([*found[:-1], current])
    assert target is not None and target.id == f"20261129T034436Z-{expected}"
    assert [r.id for r in sorted(found, key=release_order)] == [r.id for r in found]
