"""Stack driver seam: what a site is made of, which updates exist, and how a pinned plan is applied.

A driver answers four questions about an environment, all through the environment's executor:
- inventory: the installed components (core, plugins, themes, dependencies, images) and versions;
- available: the updates its sources offer for them, pinned to an exact artifact;
- pending_migrations: the database schema changes the installed code has not run yet;
- apply: install a pinned plan, run the stack's own post-update steps (DB upgrade, migrations,
  static files, build, restart) and say what changed and which migrations ran.

Drivers never decide which updates to take: the update policy does, from what `available` says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from tma_ops.errors import StackError

if TYPE_CHECKING:
    from tma_ops.ansible import PlaybookContext
    from tma_ops.executors import Executor
    from tma_ops.model import Environment

# Kinds of component, for the plan and the report.
KINDS = ("core", "plugin", "theme", "package", "image", "component")
# Version schemes the update policy knows how to classify.
SCHEMES = ("pep440", "semver", "wordpress", "docker")


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    kind: str = "component"
    ecosystem: str = ""  # OSV ecosystem of the name (PyPI, npm, WordPress), "" when none


@dataclass(frozen=True)
class Update:
    """One pinned change: the exact artifact staging tested is the one production gets.

    `artifact` names it in the driver's source (a channel file, `name==version`, an image
    reference) and `sha256` is its digest where the source gives one ("" where it does not).
    `semver_class` is filled in by the planner from `scheme`; `released` is the ISO 8601 UTC
    time the version was published, "" when the source does not say.
    """

    component: str
    from_version: str
    to_version: str
    semver_class: str = ""  # patch | minor | major
    artifact: str = ""
    sha256: str = ""
    kind: str = "component"
    ecosystem: str = ""
    scheme: str = "pep440"
    released: str = ""

    def describe(self) -> str:
        cls = f" ({self.semver_class})" if self.semver_class else ""
        return f"{self.component} {self.from_version} -> {self.to_version}{cls}"


@dataclass(frozen=True)
class Change:
    component: str
    before: str | None  # None: newly installed
    after: str | None  # None: removed


@dataclass(frozen=True)
class Applied:
    changes: list[Change] = field(default_factory=list)
    migrations: list[str] = field(default_factory=list)  # schema migrations run: [] = DB unchanged


class StackDriver(Protocol):
    def inventory(self, env: Environment) -> list[Component]: ...

    def available(self, env: Environment, installed: list[Component]) -> list[Update]: ...

    def pending_migrations(self, env: Environment) -> list[str]: ...

    def apply(
        self, env: Environment, updates: Sequence[Update], context: PlaybookContext
    ) -> Applied: ...


def changes_between(before: Sequence[Component], after: Sequence[Component]) -> list[Change]:
    """What differs between two inventories, in name order."""
    old = {c.name: c.version for c in before}
    new = {c.name: c.version for c in after}
    return [
        Change(name, old.get(name), new.get(name))
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]


def read_bounded(executor: Executor, path: str, limit: int, *, what: str = "") -> bytes:
    """A small file of the environment, whole; StackError when it is missing or over `limit`."""
    if not executor.exists(path):
        raise StackError(f"{path}: {what + ' ' if what else ''}not found")
    with executor.get(path) as stream:
        data: bytes = stream.read(limit + 1)
    if len(data) > limit:
        raise StackError(f"{path}: larger than {limit} bytes")
    return data
