"""Version schemes: how versions of each ecosystem compare and which class a change is.

- pep440: Python packages (and archives): `packaging`'s Version.
- semver: npm packages: MAJOR.MINOR.PATCH[-pre][+build]; a pre-release sorts before its release.
- wordpress: WordPress core, where the MAJOR release is the first TWO numbers (6.1 -> 6.2 is a
  major release, 6.1.1 -> 6.1.2 a maintenance and security release, here "patch").
- docker: image tags like `1.25.3`, `1.25.3-alpine`, `v2.1`: compared as pep440 on the numeric
  part; tags of another variant (`-alpine` vs none) are not candidates for each other.

Pure functions; a version that does not parse gives None (never an exception).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering

from packaging.version import InvalidVersion, Version

SCHEMES = ("pep440", "semver", "wordpress", "docker")
CLASSES = ("patch", "minor", "major")
_SEMVER = re.compile(
    r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)
_DOCKER_TAG = re.compile(r"^v?(\d+(?:\.\d+)*)(?:-(.+))?$")


@total_ordering
@dataclass(frozen=True)
class Parsed:
    """A version reduced to what ordering and classification need."""

    release: tuple[int, ...]  # the numbers, padded to 3
    key: tuple[object, ...]  # total order within its scheme
    variant: str = ""  # docker tag suffix; only same-variant versions compare
    epoch: int = 0  # PEP 440 epoch (`1!2.0`): a new epoch restarts the numbering

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Parsed):
            return NotImplemented
        return self.key < other.key


def parse(scheme: str, text: str) -> Parsed | None:
    if scheme == "semver":
        return _parse_semver(text)
    if scheme == "docker":
        return _parse_docker(text)
    return _parse_pep440(text)


def classify(scheme: str, old: str, new: str) -> str | None:
    """'major', 'minor' or 'patch' for a change from old to new; None if either does not parse.

    The most significant release part that changed decides; missing parts count as 0; anything
    below the third number (pre-releases, a fourth number) is a patch; a PEP 440 epoch change is
    a major. For wordpress the first two numbers are the major release.
    """
    a, b = parse(scheme, old), parse(scheme, new)
    if a is None or b is None:
        return None
    if a.epoch != b.epoch:
        return "major"
    if scheme == "wordpress":
        if a.release[:2] != b.release[:2]:
            return "major"
        return "patch"
    if a.release[0] != b.release[0]:
        return "major"
    if a.release[1] != b.release[1]:
        return "minor"
    return "patch"


def is_newer(scheme: str, candidate: str, installed: str) -> bool:
    a, b = parse(scheme, candidate), parse(scheme, installed)
    return a is not None and b is not None and a.variant == b.variant and a > b


def newest_per_class(scheme: str, installed: str, versions: Iterable[str]) -> dict[str, str]:
    """For each class with a newer version, the newest such version: what a driver offers.

    Pre-releases are offered only to an installed pre-release of the same release.
    """
    current = parse(scheme, installed)
    if current is None:
        return {}
    best: dict[str, tuple[Parsed, str]] = {}
    for text in versions:
        parsed = parse(scheme, text)
        if parsed is None or parsed.variant != current.variant or not parsed > current:
            continue
        if _is_prerelease(scheme, text) and parsed.release != current.release:
            continue
        cls = classify(scheme, installed, text)
        if cls is not None and (cls not in best or parsed > best[cls][0]):
            best[cls] = (parsed, text)
    return {cls: text for cls, (_, text) in sorted(best.items(), key=lambda i: i[1][0])}


def _is_prerelease(scheme: str, text: str) -> bool:
    if scheme == "semver":
        match = _SEMVER.match(text.strip())
        return bool(match and match.group(4))
    if scheme == "docker":
        return False
    try:
        return Version(text).is_prerelease
    except InvalidVersion:
        return False


def _padded(numbers: Iterable[int]) -> tuple[int, ...]:
    values = tuple(numbers)
    return values + (0,) * (3 - len(values)) if len(values) < 3 else values


def _parse_pep440(text: str) -> Parsed | None:
    try:
        version = Version(text)
    except InvalidVersion:
        return None
    return Parsed(_padded(version.release), (version.epoch, version), epoch=version.epoch)


def _parse_semver(text: str) -> Parsed | None:
    match = _SEMVER.match(text.strip())
    if match is None:
        return None
    release = _padded(int(n) for n in match.groups()[:3] if n is not None)
    pre = match.group(4)
    # A release sorts after its pre-releases; pre-release fields compare numerically when numeric.
    pre_key: tuple[object, ...] = (1,) if pre is None else (0, *_semver_fields(pre))
    return Parsed(release, (release, pre_key))


def _semver_fields(pre: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(f)) if f.isdigit() else (1, f) for f in pre.split("."))


def _parse_docker(text: str) -> Parsed | None:
    match = _DOCKER_TAG.match(text.strip())
    if match is None:
        return None
    parsed = _parse_pep440(match.group(1))
    if parsed is None:
        return None
    return Parsed(parsed.release, parsed.key, match.group(2) or "", parsed.epoch)
