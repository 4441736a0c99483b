"""OSV advisories: which versions a record affects, which an update fixes, which have no fix."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tma_ops.advisories import (
    AdvisoryError,
    AdvisoryIndex,
    display_url,
    is_affected,
    records_of,
)

pytestmark = pytest.mark.unit


def record(
    ident: str,
    ecosystem: str,
    name: str,
    *ranges: list[dict[str, str]],
    versions: list[str] | None = None,
    range_type: str = "ECOSYSTEM",
    **extra: Any,
) -> dict[str, Any]:
    affected: dict[str, Any] = {
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": [{"type": range_type, "events": events} for events in ranges],
    }
    if versions is not None:
        affected["versions"] = versions
    return {"id": ident, "summary": f"{name} hole", "affected": [affected], **extra}


def index(*records: dict[str, Any]) -> AdvisoryIndex:
    return AdvisoryIndex(records_of(json.dumps(list(records)).encode(), "test.json"))


def affected_of(raw: dict[str, Any]) -> Any:
    return records_of(json.dumps(raw).encode(), "test.json")[0].affected[0]


INTRO_FIXED = [{"introduced": "1.0"}, {"fixed": "1.4.2"}]


@pytest.mark.parametrize(
    ("raw", "version", "expected"),
    [
        pytest.param(record("A", "PyPI", "x", INTRO_FIXED), "0.9", False, id="below-introduced"),
        pytest.param(record("A", "PyPI", "x", INTRO_FIXED), "1.0", True, id="at-introduced"),
        pytest.param(record("A", "PyPI", "x", INTRO_FIXED), "1.4.1", True, id="inside"),
        pytest.param(record("A", "PyPI", "x", INTRO_FIXED), "1.4.2", False, id="fixed-exclusive"),
        pytest.param(record("A", "PyPI", "x", INTRO_FIXED), "2.0", False, id="above-fixed"),
        pytest.param(
            record("A", "PyPI", "x", [{"introduced": "0"}, {"fixed": "2.0"}]),
            "0.0.1",
            True,
            id="introduced-zero-is-everything",
        ),
        pytest.param(
            record("A", "PyPI", "x", [{"introduced": "0"}]), "99.0", True, id="never-fixed"
        ),
        pytest.param(
            record("A", "PyPI", "x", [{"introduced": "1.0"}, {"last_affected": "1.3"}]),
            "1.3",
            True,
            id="last-affected-inclusive",
        ),
        pytest.param(
            record("A", "PyPI", "x", [{"introduced": "1.0"}, {"last_affected": "1.3"}]),
            "1.3.1",
            False,
            id="above-last-affected",
        ),
        pytest.param(
            record(
                "A",
                "PyPI",
                "x",
                [{"fixed": "2.1"}, {"introduced": "2.0"}, {"fixed": "1.5"}, {"introduced": "1.0"}],
            ),
            "1.7",
            False,
            id="unsorted-events-gap",
        ),
        pytest.param(
            record(
                "A",
                "PyPI",
                "x",
                [{"fixed": "2.1"}, {"introduced": "2.0"}, {"fixed": "1.5"}, {"introduced": "1.0"}],
            ),
            "2.0.5",
            True,
            id="unsorted-events-second-range",
        ),
        pytest.param(
            record("A", "PyPI", "x", [{"introduced": "1.0"}, {"limit": "1.2"}]),
            "1.5",
            True,
            id="limit-ignored-outside-git",
        ),
        pytest.param(
            record("A", "PyPI", "x", [{"introduced": "1.0"}, {"fixed": "1.2"}]),
            "1.2rc1",
            True,
            id="pep440-pre-release-before-fix",
        ),
        pytest.param(
            record("A", "PyPI", "x", INTRO_FIXED), "1.4.2.post1", False, id="pep440-post-release"
        ),
        pytest.param(
            record("A", "PyPI", "x", INTRO_FIXED), "not-a-version", False, id="unparsable-version"
        ),
        pytest.param(
            record("A", "PyPI", "x", [{"introduced": "abc"}, {"fixed": "1.0"}]),
            "0.5",
            False,
            id="unparsable-event-dropped",
        ),
        pytest.param(
            record("A", "PyPI", "x", versions=["1.1", "1.3"]), "1.3.0", True, id="versions-list"
        ),
        pytest.param(
            record("A", "PyPI", "x", versions=["1.1", "1.3"]), "1.2", False, id="not-listed"
        ),
        pytest.param(
            record("A", "PyPI", "x", [{"introduced": "0"}], versions=["1.1"], range_type="GIT"),
            "1.5",
            False,
            id="git-range-not-evaluated",
        ),
        pytest.param(
            record("A", "PyPI", "x", [{"introduced": "0"}], versions=["1.1"], range_type="GIT"),
            "1.1",
            True,
            id="git-record-versions-list",
        ),
        pytest.param(
            record("A", "npm", "x", [{"introduced": "1.0.0"}, {"fixed": "1.2.0"}]),
            "1.2.0-rc.1",
            True,
            id="npm-pre-release-before-fix",
        ),
        pytest.param(
            record("A", "npm", "x", [{"introduced": "1.0.0"}, {"fixed": "1.2.0"}]),
            "1.10.0",
            False,
            id="npm-numeric-order",
        ),
        pytest.param(
            record(
                "A", "PyPI", "x", [{"introduced": "1.0.0"}, {"fixed": "1.2.0"}], range_type="SEMVER"
            ),
            "1.1.9",
            True,
            id="semver-range-type",
        ),
        pytest.param(
            record("A", "WordPress", "wordpress", [{"introduced": "6.4"}, {"fixed": "6.4.3"}]),
            "6.4.2",
            True,
            id="wordpress-core",
        ),
        pytest.param(
            record("A", "WordPress", "wordpress", [{"introduced": "6.4"}, {"fixed": "6.4.3"}]),
            "6.5",
            False,
            id="wordpress-core-next-major",
        ),
        pytest.param(
            record("A", "WordPress", "contact-form-7", [{"introduced": "0"}, {"fixed": "5.9.2"}]),
            "5.9",
            True,
            id="wordpress-plugin",
        ),
    ],
)
def test_is_affected(raw: dict[str, Any], version: str, expected: bool) -> None:
    assert is_affected(affected_of(raw), version) is expected


@pytest.mark.parametrize(
    ("raw", "ecosystem", "name", "matches"),
    [
        pytest.param(
            record("A", "PyPI", "Django_Filter", [{"introduced": "0"}]),
            "PyPI",
            "django-filter",
            True,
            id="pypi-pep503-names",
        ),
        pytest.param(
            record("A", "PyPI", "django.filter", [{"introduced": "0"}]),
            "pypi",
            "DJANGO-FILTER",
            True,
            id="pypi-ecosystem-case",
        ),
        pytest.param(
            record("A", "npm", "Lodash", [{"introduced": "0"}]),
            "npm",
            "lodash",
            False,
            id="npm-names-exact",
        ),
        pytest.param(
            record("A", "WordPress", "Akismet", [{"introduced": "0"}]),
            "WordPress",
            "akismet",
            True,
            id="wordpress-slug-case",
        ),
        pytest.param(
            record("A", "npm", "seo", [{"introduced": "0"}]),
            "WordPress",
            "seo",
            False,
            id="other-ecosystem",
        ),
        pytest.param(
            record("A", "npm", "seo", [{"introduced": "0"}]), "", "seo", False, id="no-ecosystem"
        ),
    ],
)
def test_package_matching(raw: dict[str, Any], ecosystem: str, name: str, matches: bool) -> None:
    found = index(raw).affecting(ecosystem, name, "1.0")
    assert [a.id for a in found] == (["A"] if matches else [])


LODASH = [
    record("GHSA-1", "npm", "lodash", [{"introduced": "0"}, {"fixed": "4.17.21"}]),
    record("GHSA-2", "npm", "lodash", [{"introduced": "4.17.0"}, {"fixed": "4.17.12"}]),
    record("GHSA-3", "npm", "lodash", [{"introduced": "4.0.0"}]),
    record("GHSA-4", "npm", "lodash", [{"introduced": "4.17.0"}, {"last_affected": "4.17.15"}]),
]


@pytest.mark.parametrize(
    ("before", "after", "fixed"),
    [
        pytest.param("4.17.11", "4.17.21", ["GHSA-1", "GHSA-2", "GHSA-4"], id="fixes-three"),
        pytest.param("4.17.11", "4.17.12", ["GHSA-2"], id="fixes-one"),
        pytest.param("4.17.11", "4.17.15", ["GHSA-2"], id="last-affected-not-passed"),
        pytest.param("4.17.21", "4.17.22", [], id="nothing-to-fix"),
        pytest.param("3.10.0", "4.17.21", ["GHSA-1"], id="fixes-one-opens-another"),
        pytest.param("4.17.11", "4.17.20", ["GHSA-2", "GHSA-4"], id="partial-fix"),
    ],
)
def test_fixed_by(before: str, after: str, fixed: list[str]) -> None:
    found = index(*LODASH).fixed_by("npm", "lodash", before, after)
    assert [a.id for a in found] == fixed


@pytest.mark.parametrize(
    ("version", "unfixed", "fixes_of_first"),
    [
        pytest.param("4.17.11", ["GHSA-3", "GHSA-4"], ["4.17.12", "4.17.21"], id="some-unfixed"),
        pytest.param("4.17.20", ["GHSA-3"], ["4.17.21"], id="only-never-fixed"),
        pytest.param("3.0.0", [], ["4.17.21"], id="old-major"),
    ],
)
def test_unfixed_and_fixes_above(
    version: str, unfixed: list[str], fixes_of_first: list[str]
) -> None:
    advisories = index(*LODASH)
    assert [a.id for a in advisories.unfixed("npm", "lodash", version)] == unfixed
    first = advisories.affecting("npm", "lodash", version)[0]
    assert first.id == "GHSA-1"
    merged = sorted(
        {
            v
            for a in advisories.affecting("npm", "lodash", version)
            for v in advisories.fixes_above(a, "npm", "lodash", version)
        }
    )
    assert merged == fixes_of_first


def test_fixes_above_names_every_fix_above_the_version_in_its_range() -> None:
    raw = record(
        "A",
        "PyPI",
        "django",
        [{"introduced": "4.2"}, {"fixed": "4.2.11"}, {"introduced": "5.0"}, {"fixed": "5.0.3"}],
    )
    advisories = index(raw)
    (advisory,) = advisories.affecting("PyPI", "django", "4.2.3")
    assert advisories.fixes_above(advisory, "PyPI", "django", "4.2.3") == ["4.2.11", "5.0.3"]
    assert advisories.fixes_above(advisory, "PyPI", "django", "5.0.1") == ["5.0.3"]


def test_withdrawn_records_are_ignored_and_ids_counted_once() -> None:
    live = record("A", "PyPI", "x", [{"introduced": "0"}])
    withdrawn = record("B", "PyPI", "x", [{"introduced": "0"}], withdrawn="2024-01-01T00:00:00Z")
    advisories = index(live, withdrawn, live)
    assert len(advisories) == 1
    assert [a.id for a in advisories.affecting("PyPI", "x", "1.0")] == ["A"]


def test_affected_entry_without_package_is_skipped() -> None:
    raw = record("A", "PyPI", "x", [{"introduced": "0"}])
    raw["affected"].insert(0, {"ranges": [{"type": "GIT", "events": [{"introduced": "0"}]}]})
    (advisory,) = records_of(json.dumps(raw).encode(), "feed.json")
    assert [a.name for a in advisory.affected] == ["x"]


def test_record_fields_are_kept() -> None:
    raw = record(
        "GHSA-xxxx",
        "PyPI",
        "x",
        [{"introduced": "0"}],
        aliases=["CVE-2024-1"],
        database_specific={"severity": "HIGH"},
    )
    (advisory,) = records_of(json.dumps(raw).encode(), "feed.json")
    assert (advisory.aliases, advisory.severity, advisory.summary, advisory.source) == (
        ("CVE-2024-1",),
        "HIGH",
        "x hole",
        "feed.json",
    )


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(record("A", "PyPI", "x"), id="one-record"),
        pytest.param([record("A", "PyPI", "x")], id="list"),
        pytest.param({"vulns": [record("A", "PyPI", "x")]}, id="osv-query-answer"),
    ],
)
def test_document_shapes(document: Any) -> None:
    assert [a.id for a in records_of(json.dumps(document).encode(), "s")] == ["A"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"{not json", "advisories s.json: not valid JSON", id="bad-json"),
        pytest.param(b'"text"', "advisories s.json: expected an OSV record", id="not-records"),
        pytest.param(b"[1]", "advisories s.json: record 0: expected an object", id="not-object"),
        pytest.param(
            b'[{"summary": "no id"}]',
            "advisories s.json: record 0: id: expected a non-empty string",
            id="no-id",
        ),
        pytest.param(
            b'{"id": "A", "affected": [{"package": {"name": "x"}}]}',
            "record 0 (A): affected[0].package: expected non-empty strings ecosystem and name",
            id="no-ecosystem",
        ),
        pytest.param(
            b'{"id": "A", "affected": [{"package": {"ecosystem": "PyPI", "name": "x"},'
            b' "ranges": [{"type": "DATE", "events": []}]}]}',
            "record 0 (A): affected[0].ranges[0].type: expected one of SEMVER, ECOSYSTEM, GIT",
            id="range-type",
        ),
        pytest.param(
            b'{"id": "A", "affected": [{"package": {"ecosystem": "PyPI", "name": "x"},'
            b' "ranges": [{"type": "ECOSYSTEM", "events": [{"patched": "1.0"}]}]}]}',
            "affected[0].ranges[0].events[0]: expected one of introduced, fixed, last_affected",
            id="event-kind",
        ),
        pytest.param(
            b'{"id": "A", "affected": {"package": {}}}',
            "record 0 (A).affected: expected a list; got dict",
            id="affected-not-list",
        ),
    ],
)
def test_bad_documents_name_the_source_and_the_place(data: bytes, message: str) -> None:
    with pytest.raises(AdvisoryError) as caught:
        records_of(data, "s.json")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_display_url_drops_credentials_and_query() -> None:
    url = "https://user:s3cret@feeds.example.org:8443/osv/all.json?token=abc"
    assert display_url(url) == "https://feeds.example.org:8443/osv/all.json"
