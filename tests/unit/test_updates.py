from __future__ import annotations

import pytest
from packaging.version import Version

from tma_ops.updates import (
    ArchiveName,
    newest_above,
    parse_archive_name,
    parse_archive_names,
    same_version,
    semver_class,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("file", "component", "version", "ext"),
    [
        ("forms-1.2.3.zip", "forms", "1.2.3", "zip"),
        ("forms-1.2.3.tar.gz", "forms", "1.2.3", "tar.gz"),
        ("contact-form-7-5.9.3.zip", "contact-form-7", "5.9.3", "zip"),
        ("seo-2.0.0-rc.1.zip", "seo", "2.0.0-rc.1", "zip"),
        ("seo-2.0.0-beta.tar.gz", "seo", "2.0.0-beta", "tar.gz"),
        ("mailer-2.05.zip", "mailer", "2.05", "zip"),
        ("a-1.zip", "a", "1", "zip"),
        ("acf_pro-6.2.10.zip", "acf_pro", "6.2.10", "zip"),
    ],
)
def test_parse_archive_name(file: str, component: str, version: str, ext: str) -> None:
    assert parse_archive_name(file) == ArchiveName(file, component, Version(version), version, ext)


@pytest.mark.parametrize(
    "file",
    [
        "forms.zip",  # no version
        "forms-latest.zip",  # version does not parse
        "forms-1.2.3.tar",  # not gzip
        "forms-1.2.3.tgz",
        "forms-1.2.3.rar",
        "-1.2.3.zip",  # no name
        "forms-v1.2.zip",  # version must start with a digit
        "forms-1.2.3.zip.sha256",
        "README.md",
        "sub/forms-1.2.3.zip",
    ],
)
def test_parse_archive_name_ignores(file: str) -> None:
    assert parse_archive_name(file) is None


def test_parse_archive_names_keeps_only_archives() -> None:
    parsed = parse_archive_names(["x-1.0.zip", "notes.txt", "y-2.tar.gz"])
    assert [(a.component, str(a.version)) for a in parsed] == [("x", "1.0"), ("y", "2")]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("1.2.3", "1.2.4", "patch"),
        ("1.2.3", "1.3.0", "minor"),
        ("1.2.3", "2.0.0", "major"),
        ("1.2", "1.2.1", "patch"),
        ("1.2", "1.3", "minor"),
        ("1", "1.1", "minor"),
        ("1.9.9", "2", "major"),
        ("1.2.3", "1.2.3.1", "patch"),
        ("2.0.0rc1", "2.0.0", "patch"),
        ("1.2.3", "1!1.2.3", "major"),
        ("0.1.0", "0.2.0", "minor"),
    ],
)
def test_semver_class(old: str, new: str, expected: str) -> None:
    assert semver_class(old, new) == expected


def _archives(*files: str) -> list[ArchiveName]:
    return parse_archive_names(files)


@pytest.mark.parametrize(
    ("files", "component", "installed", "expected"),
    [
        (["x-1.0.zip", "x-1.2.zip", "x-1.10.zip"], "x", "1.0", "x-1.10.zip"),
        (["x-1.0.zip", "x-0.9.zip"], "x", "1.0", None),  # nothing newer
        ([], "x", "1.0", None),
        (["y-9.0.zip", "x-1.1.tar.gz"], "x", "1.0", "x-1.1.tar.gz"),  # other components ignored
        (["x-y-5.0.zip", "x-1.1.zip"], "x", "1.0", "x-1.1.zip"),  # x-y is another component
        (["x-2.0.0rc1.zip", "x-1.5.zip"], "x", "1.0", "x-2.0.0rc1.zip"),
        (["x-1.1.tar.gz", "x-1.1.zip"], "x", "1.0", "x-1.1.zip"),  # tie: by file name
        (["x-1.1.zip", "x-1.1.tar.gz"], "x", "1.0", "x-1.1.zip"),  # order does not matter
        (["x-1.0.0.zip"], "x", "1.0", None),  # same version spelled differently
    ],
)
def test_newest_above(
    files: list[str], component: str, installed: str, expected: str | None
) -> None:
    newest = newest_above(_archives(*files), component, Version(installed))
    assert (newest.file if newest else None) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [("1.2", "1.2.0", True), ("1.2", "1.3", False), ("dev", "dev", True), ("dev", "1.0", False)],
)
def test_same_version(a: str, b: str, expected: bool) -> None:
    assert same_version(a, b) is expected
