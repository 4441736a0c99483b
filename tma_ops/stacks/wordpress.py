"""WordPress stack: core, plugins and themes, read and updated with WordPress's own code.

No WP-CLI is needed. tma-ops ships a PHP helper (playbooks/files/wp_helper.php) that loads the
site with WP_INSTALLING (active plugins and the theme stay unloaded, so a broken plugin cannot
stop its own replacement) and drives WordPress's upgraders (Plugin_Upgrader, Theme_Upgrader,
Core_Upgrader) on zip archives, the way premium plugins and themes are shipped.

- inventory: the helper, fed to the environment's PHP CLI on stdin through the executor, reports
  `$wp_version`, get_plugins() and wp_get_themes(); nothing is written to the environment.
- available: a channel directory on this machine holds `<slug>-<version>.zip` archives
  (`wordpress-<version>.zip` for core); each component is offered the newest version of each
  class (core versions follow WordPress's scheme, where 6.1 -> 6.2 is a major release).
- apply: playbooks/wordpress-update.yml once per update, through ansible-runner: the archive is
  checked against the plan, copied into a private directory on the environment, checked again,
  then installed by the helper, which keeps a copy of the component and puts it back on any
  failure. Then, in a new PHP process, WordPress's database upgrade when core's db_version is
  ahead of the stored one, and the wait for opcache to see the new files (or the stack's
  `reload` command). A component already at the planned version is left alone.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tma_ops import model_stacks
from tma_ops.ansible import PlaybookContext, PlaybookFailed, playbooks_dir
from tma_ops.errors import ExecutorError, IntegrityError, StackError, TmaError
from tma_ops.executors import Executor, open_executor, telling_line
from tma_ops.model import Environment
from tma_ops.stacks import Applied, Component, Update, changes_between
from tma_ops.stacks.archive import ArchiveChanged
from tma_ops.streams import HashingReader
from tma_ops.updates import parse_archive_name, parse_archive_names, same_version
from tma_ops.versions import newest_per_class

PLAYBOOK = "wordpress-update.yml"
HELPER = "wp_helper.php"
CORE = "wordpress"
ECOSYSTEM = "WordPress"
SCHEMES = {"core": "wordpress", "plugin": "pep440", "theme": "pep440"}
# Tasks of PLAYBOOK whose failure means the archive is not the one planned.
INTEGRITY_TASKS = frozenset(
    {
        "Refuse an archive that changed since it was planned",
        "Refuse a copy that differs from the planned archive",
    }
)
_EXIT_REASON = re.compile(r"exited \d+: (.*)$")


@dataclass(frozen=True)
class SiteState:
    """What the helper reads of a site: its components and what apply needs to know."""

    components: list[Component]
    db_version: int  # the installed core's $wp_db_version
    stored_db_version: int  # the `db_version` option: the schema the database has
    interrupted: frozenset[str]  # components with a copy left by an interrupted install
    opcache_wait: float  # seconds until the web server's opcache sees changed files

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)


class WordPressDriver:
    def __init__(self, channel: Path | None, php: str = "php", reload: str | None = None) -> None:
        self.channel = Path(channel) if channel is not None else None
        self.php = php
        self.reload = reload

    @classmethod
    def from_config(cls, spec: model_stacks.WordPressStack) -> WordPressDriver:
        channel = Path(spec.channel) if spec.channel is not None else None
        return cls(channel, spec.php, spec.reload)

    # --- reading ---------------------------------------------------------------------------------

    def inventory(self, env: Environment) -> list[Component]:
        return self.read(env).components

    def read(self, env: Environment) -> SiteState:
        return self.read_at(open_executor(env.executor), wordpress_root(env))

    def read_at(self, executor: Executor, root: str) -> SiteState:
        data = self._helper(executor, "inventory", root)
        return site_state(data, root)

    def pending_migrations(self, env: Environment) -> list[str]:
        state = self.read(env)
        if state.db_version > state.stored_db_version:
            return [database_upgrade(state.stored_db_version, state.db_version)]
        return []

    def available(self, env: Environment, installed: list[Component]) -> list[Update]:
        if self.channel is None:
            return []
        archives = [a for a in parse_archive_names(self._channel_files()) if a.ext == "zip"]
        updates = []
        for component in installed:
            scheme = SCHEMES.get(component.kind)
            if scheme is None:
                continue
            files = {a.version_text: a.file for a in archives if a.component == component.name}
            offered = newest_per_class(scheme, component.version, files)
            for semver_class, version in offered.items():
                updates.append(
                    Update(
                        component=component.name,
                        from_version=component.version,
                        to_version=version,
                        semver_class=semver_class,
                        artifact=files[version],
                        sha256=_sha256_of(self.channel / files[version]),
                        kind=component.kind,
                        ecosystem=ECOSYSTEM,
                        scheme=scheme,
                    )
                )
        return updates

    # --- applying --------------------------------------------------------------------------------

    def apply(
        self, env: Environment, updates: Sequence[Update], context: PlaybookContext
    ) -> Applied:
        """Apply a pinned plan on `env` in order, then upgrade the database and settle opcache.

        A failure stops the plan: the failed component is as it was, and the error names the
        updates applied before it (they stay; the database upgrade has not run).
        """
        executor = open_executor(env.executor)
        root = wordpress_root(env)
        before = self.read_at(executor, root)
        done: list[Update] = []
        try:
            for update in updates:
                self.apply_one(env, root, update, before, context)
                done.append(update)
                context.applied(update.component)
        except TmaError as exc:
            if done:
                raise _left_applied(exc, done) from exc
            raise
        migrations = self._upgrade_database(executor, root)
        after = self.read_at(executor, root)
        changes = changes_between(before.components, after.components)
        if changes or migrations:
            self._settle(executor, root, after)
        return Applied(changes, migrations)

    def apply_one(
        self,
        env: Environment,
        root: str,
        update: Update,
        state: SiteState,
        context: PlaybookContext,
    ) -> None:
        """Install one planned update through playbooks/wordpress-update.yml.

        Raises ArchiveChanged (a StackError and an IntegrityError) when the channel archive is not
        the one planned, StackError for anything else.
        """
        installed = state.component(update.component)
        if installed is None:
            raise StackError(f"update {update.describe()}: {update.component} is not installed")
        archive = parse_archive_name(update.artifact)
        if archive is None or archive.component != update.component or archive.ext != "zip":
            raise StackError(
                f"update {update.describe()}: {update.artifact!r} is not a zip archive of "
                f"{update.component} (expected {update.component}-<version>.zip)"
            )
        at_version = same_version(installed.version, update.to_version)
        if at_version and update.component not in state.interrupted:
            return
        if self.channel is None:
            raise StackError(f"update {update.describe()}: the stack has no channel")
        extravars = {
            "wp_root": root,
            "php": self.php,
            "kind": installed.kind,
            "component": update.component,
            "archive_path": str((self.channel / update.artifact).absolute()),
            "sha256": update.sha256,
            "to_version": update.to_version,
        }
        try:
            context.run(PLAYBOOK, env, extravars)
        except PlaybookFailed as exc:
            if exc.task in INTEGRITY_TASKS:
                raise ArchiveChanged(exc.playbook, exc.message, exc.task, exc.host) from exc
            raise

    def _upgrade_database(self, executor: Executor, root: str) -> list[str]:
        """WordPress's database upgrade, in a process of its own (new code, fresh globals)."""
        result = self._helper(executor, "upgrade-db", root)
        if not result.get("upgraded"):
            return []
        return [database_upgrade(int(result["from"]), int(result["to"]))]

    def _settle(self, executor: Executor, root: str, state: SiteState) -> None:
        """Make the web server run the new code: the `reload` command, or opcache's delay."""
        if self.reload:
            script = f"cd {shlex.quote(root)} && {self.reload}"
            result = executor.run(["sh", "-c", script], check=False)
            if not result.ok:
                raise StackError(
                    f"stack reload {self.reload!r} exited {result.rc}: {telling_line(result.err)} "
                    "(the updates are installed; the web server may still run the old code)"
                )
        elif state.opcache_wait:
            time.sleep(state.opcache_wait)

    # --- helpers ---------------------------------------------------------------------------------

    def _helper(self, executor: Executor, command: str, root: str, *args: str) -> dict[str, Any]:
        """Run the PHP helper on the environment (the script on stdin); its JSON answer."""
        argv = [self.php, "--", command, root, *args]
        try:
            result = executor.stream_in(argv, io.BytesIO(helper_source()))
        except ExecutorError as exc:
            found = _EXIT_REASON.search(str(exc))
            reason = found.group(1) if found else str(exc)
            raise StackError(f"WordPress at {root}: {command} failed: {reason}") from exc
        lines = [line for line in result.out.splitlines() if line.startswith("{")]
        try:
            data: dict[str, Any] = json.loads(lines[-1])
        except (IndexError, ValueError) as exc:
            raise StackError(
                f"WordPress at {root}: {command} gave no answer: {telling_line(result.out)}"
            ) from exc
        return data

    def _channel_files(self) -> list[str]:
        assert self.channel is not None
        try:
            return [p.name for p in self.channel.iterdir() if p.is_file()]
        except OSError as exc:
            raise StackError(f"channel {self.channel}: cannot list: {exc.strerror}") from exc


def site_state(data: dict[str, Any], root: str) -> SiteState:
    """The helper's inventory as components: core `wordpress`, then plugins and themes by slug."""
    core = data["core"]
    components = [Component(CORE, core["version"], "core", ECOSYSTEM)]
    for kind, key in (("plugin", "plugins"), ("theme", "themes")):
        for item in data[key]:
            components.append(
                Component(item["slug"], item["version"] or "unknown", kind, ECOSYSTEM)
            )
    kinds: dict[str, str] = {}
    for component in components:
        if component.name in kinds:
            raise StackError(
                f"WordPress at {root}: the {component.kind} {component.name!r} has the name of a "
                f"{kinds[component.name]}: their channel archives could not be told apart"
            )
        kinds[component.name] = component.kind
    opcache = data["opcache"]
    revalidates = opcache["enable"] and opcache["validate_timestamps"]
    return SiteState(
        components=components,
        db_version=int(core["db_version"]),
        stored_db_version=int(core["stored_db_version"]),
        interrupted=frozenset(data["interrupted"]),
        opcache_wait=float(opcache["revalidate_freq"]) + 1 if revalidates else 0.0,
    )


def database_upgrade(stored: int, target: int) -> str:
    return f"WordPress database upgrade: db_version {stored} -> {target}"


def wordpress_root(env: Environment) -> str:
    """The absolute WordPress root on `env` (a local root may be relative)."""
    if env.executor.scheme == "local":
        return os.path.abspath(env.root)
    return env.root


@cache
def helper_source() -> bytes:
    path = playbooks_dir() / "files" / HELPER
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StackError(f"WordPress helper {path}: cannot read: {exc.strerror}") from exc


def _left_applied(exc: TmaError, done: list[Update]) -> TmaError:
    applied = ", ".join(u.describe() for u in done)
    message = f"{exc}; applied before the failure and left in place: {applied}"
    return IntegrityError(message) if isinstance(exc, IntegrityError) else StackError(message)


def _sha256_of(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            reader = HashingReader(handle)
            reader.drain()
    except OSError as exc:
        raise StackError(f"channel archive {path}: cannot read: {exc.strerror}") from exc
    return reader.sha256
