"""Pure update decisions: channel archive names, which version is newest, semver class, policy."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

ARCHIVE_EXTENSIONS = ("tar.gz", "zip")


@dataclass(frozen=True)
class ArchiveName:
    """A channel file `<component>-<version>.<ext>` split into its parts."""

    file: str
    component: str
    version: Version
    version_text: str  # as the vendor wrote it: 2.05 stays 2.05, not 2.5
    ext: str  # zip | tar.gz


def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def parse_archive_name(file: str) -> ArchiveName | None:
    """Split an archive file name; None when it is not `<name>-<version>.zip|.tar.gz`.

    Component names may contain '-' and versions may too (`1.0.0-rc.1`), so the rightmost split
    whose right side is a version starting with a digit wins: `contact-form-7-5.9.zip` is
    contact-form-7 5.9.
    """
    ext = next((e for e in ARCHIVE_EXTENSIONS if file.endswith("." + e)), None)
    if ext is None or "/" in file:
        return None
    stem = file[: -len(ext) - 1]
    parts = stem.split("-")
    for cut in range(len(parts) - 1, 0, -1):
        name, raw_version = "-".join(parts[:cut]), "-".join(parts[cut:])
        version = parse_version(raw_version) if raw_version[:1].isdigit() else None
        if name and version is not None:
            return ArchiveName(file, name, version, raw_version, ext)
    return None


def parse_archive_names(files: Iterable[str]) -> list[ArchiveName]:
    return [parsed for file in files if (parsed := parse_archive_name(file)) is not None]


def newest_above(
    archives: Iterable[ArchiveName], component: str, installed: Version
) -> ArchiveName | None:
    """The newest archive of `component` strictly newer than `installed`.

    Two files with the same version (`x-1.0.zip`, `x-1.0.tar.gz`) are ordered by file name so the
    choice does not depend on directory listing order.
    """
    candidates = [a for a in archives if a.component == component and a.version > installed]
    return max(candidates, key=lambda a: (a.version, a.file), default=None)


def semver_class(old: str | Version, new: str | Version) -> str:
    """'major', 'minor' or 'patch': the most significant release part that changed.

    Missing parts count as 0 (1.2 -> 1.2.1 is a patch); an epoch change is major; anything below
    the third part (pre-releases, post-releases, a fourth number) is a patch.
    """
    old_v = old if isinstance(old, Version) else Version(old)
    new_v = new if isinstance(new, Version) else Version(new)
    if old_v.epoch != new_v.epoch or old_v.major != new_v.major:
        return "major"
    if old_v.minor != new_v.minor:
        return "minor"
    return "patch"


def same_version(a: str, b: str) -> bool:
    """Equal as versions when both parse (1.2 == 1.2.0), else as exact strings."""
    va, vb = parse_version(a), parse_version(b)
    if va is not None and vb is not None:
        return va == vb
    return a == b
