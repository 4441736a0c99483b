"""Archive stack: components are directories updated from `<name>-<version>.zip|.tar.gz` files.

The channel is a directory on the controller. Reading the environment goes through the executor
(a helper script run with the environment's Python), so the same code works over SSH; applying an
update runs playbooks/archive-update.yml through ansible-runner (tma_ops.ansible).

apply() is restartable. Its only destructive steps are renames, in this order:
live -> .tma-old-<name>, staged -> live. A run that finds the live directory missing but
.tma-old-<name> present was interrupted between the two and puts the old directory back first.
The playbook holds these rules; the archive's members are checked by playbooks/files/
archive_extract.py before anything is written.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Sequence
from pathlib import Path

from tma_ops import model_stacks
from tma_ops.ansible import PlaybookContext, PlaybookFailed, PlaybookResult
from tma_ops.errors import IntegrityError, StackError
from tma_ops.executors import Executor, open_executor
from tma_ops.model import Environment
from tma_ops.stacks import Applied, Component, Update, changes_between
from tma_ops.streams import HashingReader
from tma_ops.updates import (
    newest_above,
    parse_archive_name,
    parse_archive_names,
    parse_version,
    semver_class,
)

MAX_VERSION_FILE = 64 * 1024
PLAYBOOK = "archive-update.yml"
# Tasks of PLAYBOOK whose failure means the archive is not the one planned.
INTEGRITY_TASKS = frozenset(
    {
        "Refuse an archive that changed since it was planned",
        "Refuse a copy that differs from the planned archive",
    }
)

_LIST = r"""
import json, os, sys
top = sys.argv[1]
if not os.path.isdir(top):
    sys.exit("components directory not found: " + top)
names = [n for n in os.listdir(top) if not n.startswith(".")]
print(json.dumps(sorted(n for n in names if os.path.isdir(os.path.join(top, n)))))
"""


class ArchiveChanged(PlaybookFailed, IntegrityError):
    """The channel archive changed since it was planned (exit code of an IntegrityError)."""


class ArchiveStack:
    def __init__(self, channel: Path, components_dir: str, version_file: str = "VERSION") -> None:
        self.channel = Path(channel)
        self.components_dir = components_dir
        self.version_file = version_file

    @classmethod
    def from_config(cls, spec: model_stacks.ArchiveStack) -> ArchiveStack:
        return cls(Path(spec.channel), spec.components_dir, spec.version_file)

    def inventory(self, env: Environment) -> list[Component]:
        return self.inventory_at(open_executor(env.executor), env.root)

    def inventory_at(self, executor: Executor, root: str) -> list[Component]:
        components = self._components(root)
        out = _run_script(executor, _LIST, components)
        names = json.loads(out)
        return [
            Component(name, self._read_version(executor, posixpath.join(components, name)))
            for name in names
        ]

    def available(self, env: Environment, installed: list[Component]) -> list[Update]:
        archives = parse_archive_names(self._channel_files())
        updates = []
        for component in installed:
            current = parse_version(component.version)
            if current is None:
                raise StackError(
                    f"component {component.name}: installed version {component.version!r} "
                    "is not a valid version"
                )
            newest = newest_above(archives, component.name, current)
            if newest is not None:
                updates.append(self._update_to(component, newest.file, newest.version_text))
        return updates

    def pending_migrations(self, env: Environment) -> list[str]:
        return []  # archives carry code only

    def apply(
        self, env: Environment, updates: Sequence[Update], context: PlaybookContext
    ) -> Applied:
        """Apply a pinned plan on `env`, one archive after the other (see apply_one)."""
        before = self.inventory(env)
        for update in updates:
            self.apply_one(env, update, context)
            context.applied(update.component)
        return Applied(changes_between(before, self.inventory(env)))

    def apply_one(
        self, env: Environment, update: Update, context: PlaybookContext
    ) -> PlaybookResult:
        """Apply one planned update on `env` through playbooks/archive-update.yml.

        Raises ArchiveChanged (a StackError and an IntegrityError) when the channel archive is not
        the one planned, PlaybookFailed (a StackError) for any other failure.
        """
        archive = parse_archive_name(update.artifact)
        if archive is None or archive.component != update.component:
            raise StackError(
                f"update {update.describe()}: {update.artifact!r} is not an archive "
                f"of {update.component}"
            )
        extravars = {
            "components_dir": self._components_on(env),
            "component": update.component,
            "archive_path": str((self.channel / update.artifact).absolute()),
            "sha256": update.sha256,
            "to_version": update.to_version,
            "version_file": self.version_file,
        }
        try:
            return context.run(PLAYBOOK, env, extravars)
        except PlaybookFailed as exc:
            if exc.task in INTEGRITY_TASKS:
                raise ArchiveChanged(exc.playbook, exc.message, exc.task, exc.host) from exc
            raise

    def _components(self, root: str) -> str:
        return posixpath.join(root, self.components_dir)

    def _channel_files(self) -> list[str]:
        try:
            return [p.name for p in self.channel.iterdir() if p.is_file()]
        except OSError as exc:
            raise StackError(f"channel {self.channel}: cannot list: {exc.strerror}") from exc

    def _update_to(self, component: Component, file: str, version: str) -> Update:
        return Update(
            component=component.name,
            from_version=component.version,
            to_version=version,
            semver_class=semver_class(component.version, version),
            artifact=file,
            sha256=_sha256_of(self.channel / file),
        )

    def _read_version(self, executor: Executor, component_dir: str) -> str:
        path = posixpath.join(component_dir, self.version_file)
        if not executor.exists(path):
            raise StackError(f"{path}: version file missing")
        with executor.get(path) as stream:
            data = stream.read(MAX_VERSION_FILE)
        lines = data.decode("utf-8", errors="replace").splitlines()
        version = lines[0].strip() if lines else ""
        if not version:
            raise StackError(f"{path}: version file is empty")
        return version

    def _components_on(self, env: Environment) -> str:
        """The absolute components directory on `env` (a local root may be relative)."""
        components = self._components(env.root)
        if env.executor.scheme == "local":
            return os.path.abspath(components)
        return components


def _run_script(executor: Executor, script: str, *args: str) -> str:
    result = executor.run([executor.python, "-c", script, *args], check=False)
    if not result.ok:
        lines = result.err.strip().splitlines()
        reason = lines[-1] if lines else f"exit code {result.rc}"
        where = args[0] if args else ""
        raise StackError(f"{executor.url}: {where}: {reason}")
    return result.out


def _sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        reader = HashingReader(handle)
        reader.drain()
    return reader.sha256
