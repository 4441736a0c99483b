"""Version schemes: order, class of a change, newest version per class. One row per case."""

from __future__ import annotations

from itertools import pairwise

import pytest

from tma_ops.versions import classify, is_newer, newest_per_class, parse

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("scheme", "old", "new", "expected"),
    [
        pytest.param("pep440", "1.2.3", "1.2.4", "patch", id="pep440-patch"),
        pytest.param("pep440", "1.2.3", "1.3.0", "minor", id="pep440-minor"),
        pytest.param("pep440", "1.2.3", "2.0.0", "major", id="pep440-major"),
        pytest.param("pep440", "1.2", "1.2.1", "patch", id="pep440-missing-part-is-zero"),
        pytest.param("pep440", "1.9.9", "2", "major", id="pep440-short-major"),
        pytest.param("pep440", "1.2.3", "1.2.3.1", "patch", id="pep440-fourth-number"),
        pytest.param("pep440", "1.2.3rc1", "1.2.3", "patch", id="pep440-pre-to-final"),
        pytest.param("pep440", "1.2.3", "1.2.3.post1", "patch", id="pep440-post"),
        pytest.param("pep440", "1.0", "1!1.0", "major", id="pep440-epoch-is-major"),
        pytest.param("pep440", "4.2.11", "5.0", "major", id="pep440-django-major"),
        pytest.param("pep440", "1.0", "not a version", None, id="pep440-unparsable"),
        pytest.param("semver", "1.2.3", "1.2.4", "patch", id="semver-patch"),
        pytest.param("semver", "1.2.3", "1.3.0", "minor", id="semver-minor"),
        pytest.param("semver", "1.2.3", "2.0.0", "major", id="semver-major"),
        pytest.param("semver", "v1.2.3", "1.2.4", "patch", id="semver-v-prefix"),
        pytest.param("semver", "1.0.0-rc.1", "1.0.0", "patch", id="semver-pre-to-final"),
        pytest.param("semver", "1.2.3", "1.2.4+build.7", "patch", id="semver-build-metadata"),
        pytest.param("semver", "1.2.3", "latest", None, id="semver-dist-tag"),
        pytest.param("semver", "1.2.3", "1.2.3.4", None, id="semver-four-numbers"),
        pytest.param("wordpress", "6.4.3", "6.5", "major", id="wordpress-x.y-is-major"),
        pytest.param("wordpress", "6.4", "6.4.1", "patch", id="wordpress-maintenance"),
        pytest.param("wordpress", "6.4.1", "6.4.3", "patch", id="wordpress-security-release"),
        pytest.param("wordpress", "6.9", "7.0", "major", id="wordpress-first-number"),
        pytest.param("wordpress", "6.5-RC1", "6.5", "patch", id="wordpress-rc-to-final"),
        pytest.param("docker", "1.25.3", "1.25.4", "patch", id="docker-patch"),
        pytest.param("docker", "1.25.3-alpine", "1.26.0-alpine", "minor", id="docker-variant"),
        pytest.param("docker", "v2.1", "v3.0", "major", id="docker-v-prefix"),
        pytest.param("docker", "latest", "1.0", None, id="docker-named-tag"),
    ],
)
def test_classify(scheme: str, old: str, new: str, expected: str | None) -> None:
    assert classify(scheme, old, new) == expected


@pytest.mark.parametrize(
    ("scheme", "ascending"),
    [
        pytest.param(
            "pep440", ["1.0.dev1", "1.0a1", "1.0rc1", "1.0", "1.0.post1", "1.1"], id="pep440"
        ),
        pytest.param("pep440", ["1.9", "1.10", "2!0.1"], id="pep440-numeric-and-epoch"),
        pytest.param(
            "semver",
            [
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-alpha.beta",
                "1.0.0-beta",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-rc.1",
                "1.0.0",
                "1.0.10",
                "1.10.0",
            ],
            id="semver-spec-order",
        ),
        pytest.param("wordpress", ["6.4", "6.4.1", "6.5-beta1", "6.5-RC1", "6.5"], id="wordpress"),
        pytest.param("docker", ["1.9", "1.25", "1.25.3", "v2.0"], id="docker"),
    ],
)
def test_order(scheme: str, ascending: list[str]) -> None:
    parsed = [parse(scheme, v) for v in ascending]
    assert all(p is not None for p in parsed)
    for lower, higher in pairwise(ascending):
        assert is_newer(scheme, higher, lower), f"{higher} > {lower}"
        assert not is_newer(scheme, lower, higher), f"{lower} < {higher}"


@pytest.mark.parametrize(
    ("scheme", "a", "b"),
    [
        pytest.param("pep440", "1.2", "1.2.0", id="pep440-padding"),
        pytest.param("semver", "1.2.3", "1.2.3+build.9", id="semver-build-ignored"),
        pytest.param("semver", "v1.2.3", " 1.2.3 ", id="semver-prefix-and-spaces"),
    ],
)
def test_equal_versions(scheme: str, a: str, b: str) -> None:
    assert parse(scheme, a) == parse(scheme, b)
    assert not is_newer(scheme, a, b) and not is_newer(scheme, b, a)


def test_docker_variants_never_compare() -> None:
    assert not is_newer("docker", "1.26-alpine", "1.25")
    assert not is_newer("docker", "1.26", "1.25-alpine")
    assert is_newer("docker", "1.26-alpine", "1.25-alpine")


@pytest.mark.parametrize(
    ("scheme", "installed", "versions", "expected"),
    [
        pytest.param(
            "pep440",
            "1.2.3",
            ["1.2.2", "1.2.4", "1.2.5", "1.3.0", "1.4.1", "2.0", "2.1", "1.2.6rc1", "3.0.dev1"],
            {"patch": "1.2.5", "minor": "1.4.1", "major": "2.1"},
            id="pep440-newest-of-each-class",
        ),
        pytest.param("pep440", "2.0", ["1.0", "2.0", "2.0.0"], {}, id="pep440-nothing-newer"),
        pytest.param(
            "pep440",
            "1.2.3rc1",
            ["1.2.3rc2", "1.2.3", "1.2.4rc1"],
            {"patch": "1.2.3"},
            id="pep440-pre-release-installed",
        ),
        pytest.param("pep440", "1.0", ["1!0.5"], {"major": "1!0.5"}, id="pep440-epoch"),
        pytest.param(
            "semver",
            "1.2.3-rc.1",
            ["1.2.3-rc.2", "1.3.0-beta.1", "2.0.0"],
            {"patch": "1.2.3-rc.2", "major": "2.0.0"},
            id="semver-same-release-pre-only",
        ),
        pytest.param(
            "semver",
            " 1.2.3",
            [" 1.3.0-beta.1", "1.2.4", "v1.3.0"],
            {"patch": "1.2.4", "minor": "v1.3.0"},
            id="semver-spaces-and-prefix",
        ),
        pytest.param(
            "wordpress",
            "6.4.2",
            ["6.4.3", "6.5", "6.5.1", "6.6-RC1"],
            {"patch": "6.4.3", "major": "6.5.1"},
            id="wordpress-two-number-majors",
        ),
        pytest.param(
            "docker",
            "1.25.3-alpine",
            ["1.25.4", "1.25.4-alpine", "1.26.1-alpine", "latest", "alpine"],
            {"patch": "1.25.4-alpine", "minor": "1.26.1-alpine"},
            id="docker-same-variant",
        ),
        pytest.param("semver", "not-a-version", ["1.0.0"], {}, id="installed-unparsable"),
    ],
)
def test_newest_per_class(
    scheme: str, installed: str, versions: list[str], expected: dict[str, str]
) -> None:
    assert newest_per_class(scheme, installed, versions) == expected


def test_newest_per_class_lists_classes_oldest_first() -> None:
    offered = newest_per_class("semver", "1.0.0", ["3.0.0", "1.0.1", "1.1.0"])
    assert list(offered) == ["patch", "minor", "major"]
