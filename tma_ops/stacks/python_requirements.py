"""A requirements file's pins (`name==version` lines): read them, and write new versions in.

Only exact pins are components: `name==version`, with optional extras, an environment marker
and a comment. Every other line (ranges, `-r`/`-c` includes, options, URLs, `-e`) is kept as
it is and is no component. Names are compared in their PEP 503 normal form (`Django_Foo` and
`django-foo` are one package). A pin that carries `--hash` options is part of a hash-checked
lock: its version cannot change without its hashes, so such a pin is refused by `rewrite`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from tma_ops.errors import StackError

_PIN = re.compile(
    r"^(?P<head>\s*(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?"
    r"\s*==(?!=)\s*)(?P<version>[^\s;#\\]+)(?P<tail>(?:[\s;#\\].*)?)$"
)
_NORMAL = re.compile(r"[-_.]+")


@dataclass(frozen=True)
class Pin:
    name: str  # PEP 503 normal form
    version: str
    line: int  # 1-based line number in the file
    hashed: bool  # the pin carries --hash options


def canonical_name(name: str) -> str:
    """A package name in its PEP 503 normal form."""
    return _NORMAL.sub("-", name).lower()


def same_version(a: str, b: str) -> bool:
    """Whether two version strings name the same release (`1.0` and `1.0.0` do)."""
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def read_pins(text: str, where: str) -> dict[str, Pin]:
    """The exact pins of a requirements file, by normal name; `where` names the file in errors."""
    pins: dict[str, Pin] = {}
    for number, (logical, hashed) in _logical_lines(text).items():
        match = _PIN.match(_without_comment(logical))
        if match is None or "*" in match["version"]:
            continue
        name = canonical_name(match["name"])
        if name in pins:
            raise StackError(
                f"{where}:{number}: {name} is pinned again (first on line {pins[name].line}); "
                "expected one `name==version` line per package"
            )
        pins[name] = Pin(name, match["version"], number, hashed)
    return pins


def rewrite(text: str, versions: Mapping[str, str], where: str) -> str:
    """`text` with the pin of each package of `versions` ({normal name: version}) changed.

    Everything else (spelling, extras, markers, comments, other lines) stays as it was.
    """
    pins = read_pins(text, where)
    for name in versions:
        pin = pins.get(name)
        if pin is None:
            raise StackError(f"{where}: {name} is not pinned (expected a `{name}==...` line)")
        if pin.hashed:
            raise StackError(
                f"{where}:{pin.line}: {name} is pinned with --hash; regenerate the lock with its "
                "hashes to update it"
            )
    lines = text.splitlines(keepends=True)
    for name, version in versions.items():
        index = pins[name].line - 1
        body = lines[index].rstrip("\r\n")
        match = _PIN.match(body)
        if match is None:  # the pin continues on the next line before its version
            raise StackError(f"{where}:{pins[name].line}: cannot rewrite the pin of {name}")
        lines[index] = f"{match['head']}{version}{match['tail']}{lines[index][len(body) :]}"
    return "".join(lines)


def _logical_lines(text: str) -> dict[int, tuple[str, bool]]:
    """{first line number: (the logical line, whether it has --hash)}; `\\` joins lines."""
    logical: dict[int, tuple[str, bool]] = {}
    start, parts = 0, list[str]()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not parts:
            start = number
        parts.append(line[:-1] if line.endswith("\\") else line)
        if not line.endswith("\\"):
            joined = " ".join(parts)
            logical[start] = (joined, "--hash" in _without_comment(joined))
            parts = []
    if parts:
        joined = " ".join(parts)
        logical[start] = (joined, "--hash" in _without_comment(joined))
    return logical


def _without_comment(line: str) -> str:
    """The line without its comment (pip's rule: `#` at the start or after whitespace)."""
    return re.sub(r"(^|\s+)#.*$", "", line)
