"""Security advisories in the OSV format: reading them, and matching them against versions.

A record names the packages it affects (`affected[].package{ecosystem, name}`), with version
ranges (`ranges[]{type, events}`) and/or an explicit list of affected `versions`. The ecosystems
matched here and how their versions compare:

- PyPI: PEP 440; names compared normalised as PEP 503 (`Django_Filter` is `django-filter`).
- npm: semver; names compared exactly.
- WordPress: `wordpress` is core (WordPress's own scheme, 6.4 -> 6.5 is a major release), any
  other name is a plugin's or theme's slug (PEP 440 ordering); names compared case-insensitively.

A version is affected when it is in the `versions` list, or inside a SEMVER or ECOSYSTEM range:
events sorted by version, `introduced` opens the range ("0": from the first version), `fixed`
closes it (that version is not affected), `last_affected` closes it after that version. GIT
ranges name commits, not versions, and are not evaluated (their `versions` list still is).
A withdrawn record, an affected entry without a package and an event whose version does not
parse are ignored.

Sources are JSON documents holding one record, a list of records, or {"vulns": [records]}: a
file, a directory (every *.json under it) or an http(s) URL.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from tma_ops.errors import TmaError
from tma_ops.versions import Parsed, parse

ECOSYSTEMS = ("PyPI", "npm", "WordPress")
EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
RANGE_TYPES = ("SEMVER", "ECOSYSTEM", "GIT")
WORDPRESS_CORE = "wordpress"
URL_TIMEOUT = 30.0
MAX_DOCUMENT = 256 * 1024 * 1024
_FIRST = Parsed((0, 0, 0), ())  # sorts before any parsed version


class AdvisoryError(TmaError):
    """An advisory source cannot be read, or holds something that is not OSV records."""


@dataclass(frozen=True)
class Range:
    type: str  # SEMVER | ECOSYSTEM | GIT
    events: tuple[tuple[str, str], ...]  # (kind, version) as written


@dataclass(frozen=True)
class Affected:
    ecosystem: str
    name: str
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Advisory:
    id: str
    affected: tuple[Affected, ...]
    aliases: tuple[str, ...] = ()
    summary: str = ""
    severity: str = ""  # as the record rates it (HIGH, CVSS_V3 vector...), "" when it does not
    source: str = ""  # the file or URL it was read from


def ecosystem_key(ecosystem: str) -> str:
    """`PyPI`, `npm`, `WordPress`; OSV's suffixed forms (`npm:registry`) count as the base one."""
    base = ecosystem.split(":", 1)[0].strip()
    return next((known for known in ECOSYSTEMS if known.lower() == base.lower()), base)


def normalized_name(ecosystem: str, name: str) -> str:
    eco = ecosystem_key(ecosystem)
    if eco == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    if eco == "WordPress":
        return name.strip().lower()
    return name.strip()


def scheme_for(ecosystem: str, name: str, range_type: str = "ECOSYSTEM") -> str:
    """The version scheme a range of this package is compared in."""
    eco = ecosystem_key(ecosystem)
    if range_type == "SEMVER" or eco == "npm":
        return "semver"
    if eco == "WordPress" and normalized_name(eco, name) == WORDPRESS_CORE:
        return "wordpress"
    return "pep440"


def is_affected(affected: Affected, version: str) -> bool:
    """Whether `version` of the package is affected (see the module docstring for the rules)."""
    scheme = scheme_for(affected.ecosystem, affected.name)
    target = parse(scheme, version)
    if any(_same_version(scheme, listed, version, target) for listed in affected.versions):
        return True
    return any(_in_range(r, affected, version) for r in affected.ranges)


def fixed_versions_above(affected: Affected, version: str) -> list[str]:
    """The `fixed` versions above `version` in the ranges that hold it: where a fix exists."""
    found: list[str] = []
    for range_ in affected.ranges:
        if range_.type == "GIT" or not _in_range(range_, affected, version):
            continue
        scheme = scheme_for(affected.ecosystem, affected.name, range_.type)
        current = parse(scheme, version)
        for kind, value in range_.events:
            fixed = parse(scheme, value) if kind == "fixed" else None
            if fixed is not None and current is not None and fixed > current:
                found.append(value)
    return found


def _in_range(range_: Range, affected: Affected, version: str) -> bool:
    if range_.type == "GIT":
        return False
    scheme = scheme_for(affected.ecosystem, affected.name, range_.type)
    target = parse(scheme, version)
    if target is None:
        return False
    vulnerable = False
    for kind, event in _sorted_events(scheme, range_.events):
        if kind == "introduced":
            vulnerable = vulnerable or event is None or target >= event
        elif event is not None and _closes(kind, event, target):
            vulnerable = False
    return vulnerable


def _closes(kind: str, event: Parsed, target: Parsed) -> bool:
    """Whether a `fixed` (exclusive) or `last_affected` (inclusive) event ends the range."""
    return target >= event if kind == "fixed" else target > event


def _sorted_events(
    scheme: str, events: Iterable[tuple[str, str]]
) -> list[tuple[str, Parsed | None]]:
    """Events in version order; `introduced: "0"` (None) first. Unparsable versions dropped."""
    parsed: list[tuple[str, Parsed | None]] = []
    for kind, value in events:
        if kind == "limit":
            continue  # bounds commit walks in GIT ranges only
        if kind == "introduced" and value == "0":
            parsed.append((kind, None))
        elif (version := parse(scheme, value)) is not None:
            parsed.append((kind, version))
    return sorted(parsed, key=lambda e: (e[1] is not None, e[1] or _FIRST, e[0] != "introduced"))


def _same_version(scheme: str, listed: str, version: str, target: Parsed | None) -> bool:
    other = parse(scheme, listed)
    if other is not None and target is not None:
        return other == target
    return listed.strip() == version.strip()


class AdvisoryIndex:
    """Advisories looked up by package: which affect a version, which an update fixes."""

    def __init__(self, advisories: Iterable[Advisory] = ()) -> None:
        self._by_package: dict[tuple[str, str], list[tuple[Advisory, Affected]]] = {}
        self._ids: set[str] = set()
        for advisory in advisories:
            self.add(advisory)

    def add(self, advisory: Advisory) -> None:
        """Index a record; a record whose id is already known (another source) is skipped."""
        if advisory.id in self._ids:
            return
        self._ids.add(advisory.id)
        for affected in advisory.affected:
            package = normalized_name(affected.ecosystem, affected.name)
            key = (ecosystem_key(affected.ecosystem), package)
            self._by_package.setdefault(key, []).append((advisory, affected))

    def __len__(self) -> int:
        return len(self._ids)

    def affecting(self, ecosystem: str, name: str, version: str) -> list[Advisory]:
        """The advisories that affect `version` of the package, in id order."""
        found = {
            advisory.id: advisory
            for advisory, affected in self._entries(ecosystem, name)
            if is_affected(affected, version)
        }
        return [found[key] for key in sorted(found)]

    def fixed_by(self, ecosystem: str, name: str, before: str, after: str) -> list[Advisory]:
        """The advisories an update fixes: they affect `before` and not `after`."""
        still = {a.id for a in self.affecting(ecosystem, name, after)}
        return [a for a in self.affecting(ecosystem, name, before) if a.id not in still]

    def fixes_above(self, advisory: Advisory, ecosystem: str, name: str, version: str) -> list[str]:
        """The fixed versions above `version` that `advisory` names for the package."""
        found: list[str] = []
        for candidate, affected in self._entries(ecosystem, name):
            if candidate.id == advisory.id:
                found += fixed_versions_above(affected, version)
        return sorted(set(found), key=lambda v: parse(scheme_for(ecosystem, name), v) or _FIRST)

    def unfixed(self, ecosystem: str, name: str, version: str) -> list[Advisory]:
        """The advisories affecting `version` with no fixed version above it: no fix to take."""
        return [
            a
            for a in self.affecting(ecosystem, name, version)
            if not self.fixes_above(a, ecosystem, name, version)
        ]

    def _entries(self, ecosystem: str, name: str) -> list[tuple[Advisory, Affected]]:
        if not ecosystem:
            return []
        key = (ecosystem_key(ecosystem), normalized_name(ecosystem, name))
        return self._by_package.get(key, [])


# Reading sources ----------------------------------------------------------------------------


def load_advisories(sources: Sequence[str]) -> AdvisoryIndex:
    """Every record of every source (paths and http(s) URLs), indexed by package."""
    index = AdvisoryIndex()
    for source in sources:
        for advisory in read_source(source):
            index.add(advisory)
    return index


def read_source(source: str) -> list[Advisory]:
    if urlsplit(source).scheme in ("http", "https"):
        return records_of(_fetch(source), display_url(source))
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        return [advisory for file in files for advisory in records_of(_read(file), str(file))]
    if not path.exists():
        raise AdvisoryError(
            f"advisories {source}: not found; expected an OSV JSON file, a directory of them "
            "or an http(s) URL"
        )
    return records_of(_read(path), source)


def display_url(url: str) -> str:
    """The URL without credentials or query string, fit for messages and the journal."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AdvisoryError(f"advisories {path}: cannot read: {exc.strerror}") from exc


def _fetch(url: str) -> bytes:
    shown = display_url(url)
    parts = urlsplit(url)
    headers = {"Accept": "application/json"}
    if parts.username is not None:  # a mirror behind HTTP basic authentication
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    without_credentials = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    request = urllib.request.Request(without_credentials, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT) as response:
            data: bytes = response.read(MAX_DOCUMENT + 1)
    except urllib.error.HTTPError as exc:
        raise AdvisoryError(
            f"advisories {shown}: HTTP {exc.code} {exc.reason}; expected a JSON document of "
            "OSV records"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdvisoryError(f"advisories {shown}: cannot fetch: {reason}") from exc
    if len(data) > MAX_DOCUMENT:
        raise AdvisoryError(
            f"advisories {shown}: larger than {MAX_DOCUMENT // 2**20} MiB; expected one JSON "
            "document of OSV records"
        )
    return data


def records_of(data: bytes, source: str) -> list[Advisory]:
    """The advisories of one JSON document: a record, a list of them, or {"vulns": [...]}."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdvisoryError(f"advisories {source}: not valid JSON: {exc}") from exc
    if isinstance(document, dict) and "vulns" in document:
        document = document["vulns"]
    elif isinstance(document, dict):
        document = [document]
    if not isinstance(document, list):
        raise AdvisoryError(
            f"advisories {source}: expected an OSV record, a list of records or "
            f'{{"vulns": [...]}}; got {type(document).__name__}'
        )
    advisories = [_record(raw, source, n) for n, raw in enumerate(document)]
    return [a for a in advisories if a is not None]


def _record(raw: Any, source: str, number: int) -> Advisory | None:
    where = f"advisories {source}: record {number}"
    if not isinstance(raw, dict):
        raise AdvisoryError(f"{where}: expected an object; got {type(raw).__name__}")
    ident = raw.get("id")
    if not isinstance(ident, str) or not ident:
        raise AdvisoryError(f"{where}: id: expected a non-empty string; got {ident!r}")
    where = f"{where} ({ident})"
    if raw.get("withdrawn"):
        return None
    affected = _list(raw, "affected", where)
    return Advisory(
        id=ident,
        affected=tuple(
            entry
            for n, item in enumerate(affected)
            if (entry := _affected(item, f"{where}: affected[{n}]")) is not None
        ),
        aliases=tuple(str(a) for a in _list(raw, "aliases", where)),
        summary=str(raw.get("summary") or "").strip(),
        severity=_severity(raw),
        source=source,
    )


def _affected(raw: Any, where: str) -> Affected | None:
    if not isinstance(raw, dict):
        raise AdvisoryError(f"{where}: expected an object; got {type(raw).__name__}")
    if "package" not in raw:
        return None  # a source repository's commits only (GIT ranges): no package to match
    package = raw.get("package")
    if not isinstance(package, dict):
        raise AdvisoryError(f"{where}.package: expected an object with ecosystem and name")
    ecosystem, name = package.get("ecosystem"), package.get("name")
    if not isinstance(ecosystem, str) or not isinstance(name, str) or not ecosystem or not name:
        raise AdvisoryError(
            f"{where}.package: expected non-empty strings ecosystem and name; "
            f"got ecosystem={ecosystem!r}, name={name!r}"
        )
    ranges = tuple(
        _range(item, f"{where}.ranges[{n}]") for n, item in enumerate(_list(raw, "ranges", where))
    )
    versions = _list(raw, "versions", where)
    if not all(isinstance(v, str) for v in versions):
        raise AdvisoryError(f"{where}.versions: expected a list of version strings")
    return Affected(ecosystem, name, ranges, tuple(versions))


def _range(raw: Any, where: str) -> Range:
    if not isinstance(raw, dict) or raw.get("type") not in RANGE_TYPES:
        got = raw.get("type") if isinstance(raw, dict) else raw
        raise AdvisoryError(f"{where}.type: expected one of {', '.join(RANGE_TYPES)}; got {got!r}")
    events: list[tuple[str, str]] = []
    for n, event in enumerate(_list(raw, "events", where)):
        if (
            not isinstance(event, dict)
            or len(event) != 1
            or next(iter(event)) not in EVENT_KINDS
            or not isinstance(next(iter(event.values())), str)
        ):
            raise AdvisoryError(
                f"{where}.events[{n}]: expected one of {', '.join(EVENT_KINDS)} with a version "
                f"string; got {event!r}"
            )
        ((kind, version),) = event.items()
        events.append((kind, version))
    return Range(raw["type"], tuple(events))


def _list(raw: dict[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise AdvisoryError(f"{where}.{key}: expected a list; got {type(value).__name__}")
    return value


def _severity(raw: dict[str, Any]) -> str:
    specific = raw.get("database_specific")
    if isinstance(specific, dict) and isinstance(specific.get("severity"), str):
        return str(specific["severity"])
    scores = raw.get("severity")
    if isinstance(scores, list) and scores and isinstance(scores[0], dict):
        return f"{scores[0].get('type', '')} {scores[0].get('score', '')}".strip()
    return ""
