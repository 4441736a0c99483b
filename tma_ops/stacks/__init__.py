"""Stack driver seam: what a site is made of, which updates exist, and how one is applied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tma_ops.executors import Executor

if TYPE_CHECKING:
    from tma_ops.ansible import PlaybookContext
    from tma_ops.model import Environment


@dataclass(frozen=True)
class Component:
    name: str
    version: str


@dataclass(frozen=True)
class Update:
    """One pinned change: the exact artifact (by SHA-256) that staging tested."""

    component: str
    from_version: str
    to_version: str
    semver_class: str  # patch | minor | major
    artifact: str  # file name in the channel
    sha256: str

    def describe(self) -> str:
        return f"{self.component} {self.from_version} -> {self.to_version} ({self.semver_class})"


class StackDriver(Protocol):
    def inventory(self, executor: Executor, root: str) -> list[Component]: ...

    def available(self, installed: list[Component]) -> list[Update]: ...

    def apply(self, env: Environment, update: Update, playbooks: PlaybookContext) -> object:
        """Apply one pinned update to env, through the stack's playbook."""
        ...
