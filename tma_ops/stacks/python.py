"""Python stack: a Django/Wagtail site in a virtualenv, its dependencies pinned in a requirements
file (or a lock made of `name==version` lines).

- inventory: the requirements file's exact pins (tma_ops.stacks.python_requirements), each
  checked against what the virtualenv has installed: a pin the virtualenv does not match is an
  error that names both versions (the site is not what its file says).
- available: the index's releases of each pinned package (tma_ops.stacks.python_index), the
  newest of each class above the pinned one; `artifact` is `name==version`.
- pending_migrations: `manage.py showmigrations --plan`, the migrations not applied yet.
- apply: playbooks/python-update.yml writes the plan's pins, runs `pip install -r`, `migrate`,
  `collectstatic`, the restart command, and waits until the site serves; on failure it puts the
  requirements back and reinstalls them. Applied.migrations are the migrations that ran.

Every command runs on the environment through its executor (or the playbook), with the
virtualenv's interpreter (`<venv>/bin/python -m pip`, `<venv>/bin/python manage.py`), in the
project directory, with DJANGO_SETTINGS_MODULE set when the stack names the settings.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
from collections.abc import Sequence
from typing import Any

from packaging.version import InvalidVersion, Version

from tma_ops import model_stacks
from tma_ops.ansible import PlaybookContext, PlaybookFailed
from tma_ops.errors import ExecutorError, StackError
from tma_ops.executors import Executor, Result, open_executor, telling_line
from tma_ops.model import Environment
from tma_ops.stacks import Applied, Change, Component, Update, read_bounded
from tma_ops.stacks.python_index import Release, query_index
from tma_ops.stacks.python_requirements import (
    Pin,
    canonical_name,
    read_pins,
    rewrite,
    same_version,
)
from tma_ops.versions import classify, newest_per_class

PLAYBOOK = "python-update.yml"
KEPT = ".tma-python-before"  # beside the requirements file: its copy during an update
MAX_REQUIREMENTS = 1024 * 1024
MIGRATED = "ran and stay applied"  # what the playbook says of migrations a failed update ran
PIP_FLAGS = ["--no-input", "--disable-pip-version-check", "--progress-bar", "off"]
# In a directory, with variables: `sh -c <this> tma-python <dir> [NAME=value...] <argv...>`.
_IN_DIR = 'cd -- "$1" && shift && exec env "$@"'
_INSTALLED = r"""
import json, re
from importlib import metadata
found = {}
for dist in metadata.distributions():
    name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
    found.setdefault(name, dist.version)
print(json.dumps(found))
"""


class PythonDriver:
    def __init__(
        self,
        project_dir: str = ".",
        venv: str = ".venv",
        requirements: str = "requirements.txt",
        settings: str | None = None,
        collectstatic: bool = True,
        restart: str | None = None,
        index_url: str | None = None,
        ready_timeout: float = 60,
    ) -> None:
        self.project_dir, self.venv, self.requirements = project_dir, venv, requirements
        self.settings, self.collectstatic, self.restart = settings, collectstatic, restart
        self.index_url, self.ready_timeout = index_url, ready_timeout

    @classmethod
    def from_config(cls, spec: model_stacks.PythonStack) -> PythonDriver:
        return cls(
            spec.project_dir,
            spec.venv,
            spec.requirements,
            spec.settings,
            spec.collectstatic,
            spec.restart,
            spec.index_url,
            spec.ready_timeout,
        )

    def inventory(self, env: Environment) -> list[Component]:
        executor = open_executor(env.executor)
        pins, installed = self._pins(executor, env), self._installed(executor, env)
        where = self.path_on(env, self.venv)
        for pin in pins.values():
            found = installed.get(pin.name)
            if found is None or not same_version(found, pin.version):
                raise StackError(
                    f"{self.path_on(env, self.requirements)}:{pin.line}: pins "
                    f"{pin.name}=={pin.version} but the virtualenv {where} has "
                    f"{found or 'no such package'}; install the requirements or fix the pin"
                )
        return [_component(pin.name, pin.version) for pin in pins.values()]

    def available(self, env: Environment, installed: list[Component]) -> list[Update]:
        if not installed:
            return []
        executor = open_executor(env.executor)
        names = [component.name for component in installed]
        answer = query_index(executor, self.python_on(env), self.index_url, names)
        updates = []
        for component in installed:
            releases = answer.releases(component.name)
            if not releases:
                continue  # not on this index (a private package from elsewhere)
            offered = newest_per_class("pep440", component.version, list(releases))
            for semver_class, version in offered.items():
                release = releases[version]
                updates.append(_update(component, version, semver_class, release))
        return updates

    def pending_migrations(self, env: Environment) -> list[str]:
        return [name for name, applied in self._migration_plan(env) if not applied]

    def apply(
        self, env: Environment, updates: Sequence[Update], context: PlaybookContext
    ) -> Applied:
        """Install the plan at once through playbooks/python-update.yml (see the module doc).

        Raises StackError with the one line that says why (pip's, the migration's, the
        restart's) and what the failure left: the site as it was, or what is not put back.
        """
        if not updates:
            return Applied()
        executor = open_executor(env.executor)
        requirements = self.path_on(env, self.requirements)
        text = self._read_requirements(executor, requirements)
        pins = read_pins(text, requirements)
        versions = _checked_plan(updates, pins)
        new_text = rewrite(text, versions, requirements)
        installed = self._installed(executor, env)
        before = {name: _as_pinned(installed.get(name, ""), pins[name]) for name in versions}
        kept = posixpath.join(posixpath.dirname(requirements), KEPT)
        if new_text == text and _installed_as(installed, versions) and not executor.exists(kept):
            return Applied()  # the plan is in place: nothing to do, no restart
        applied_before = {name for name, applied in self._migration_plan(env) if applied}
        extravars = self._extravars(env, new_text, kept)
        try:
            context.run(PLAYBOOK, env, extravars)
        except PlaybookFailed as exc:
            raise self._what_failure_left(executor, exc, kept) from exc
        for update in updates:
            context.applied(update.component)
        after = {c.name: c.version for c in self.inventory(env)}
        changes = [
            Change(name, version or None, after[name])
            for name, version in before.items()
            if not same_version(version, after[name])
        ]
        ran = [name for name, applied in self._migration_plan(env) if applied]
        return Applied(changes, [name for name in ran if name not in applied_before])

    def path_on(self, env: Environment, path: str) -> str:
        """`path` (relative to the root unless absolute) on `env`; absolute when local."""
        joined = posixpath.join(env.root, path)
        if env.executor.scheme == "local":
            return os.path.abspath(joined)
        return posixpath.normpath(joined)

    def python_on(self, env: Environment) -> str:
        return posixpath.join(self.path_on(env, self.venv), "bin", "python")

    def _extravars(self, env: Environment, requirements_text: str, kept: str) -> dict[str, Any]:
        check = env.ready_check
        index = ["--index-url", self.index_url] if self.index_url else []
        return {
            "project_dir": self.path_on(env, self.project_dir),
            "python": self.python_on(env),
            "requirements": self.path_on(env, self.requirements),
            "requirements_b64": base64.b64encode(requirements_text.encode()).decode(),
            "kept": kept,
            "pip_flags": [*PIP_FLAGS, *index],
            "settings": self.settings or "",
            "collectstatic": self.collectstatic,
            "restart": self.restart or "",
            "root": self.path_on(env, "."),
            "ready_url": check.url,
            "ready_status": check.status,
            "ready_timeout": max(1, round(self.ready_timeout)),
        }

    def _pins(self, executor: Executor, env: Environment) -> dict[str, Pin]:
        requirements = self.path_on(env, self.requirements)
        return read_pins(self._read_requirements(executor, requirements), requirements)

    def _read_requirements(self, executor: Executor, path: str) -> str:
        data = read_bounded(executor, path, MAX_REQUIREMENTS, what="requirements file")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StackError(f"{path}: not UTF-8 text ({exc.reason})") from exc

    def _installed(self, executor: Executor, env: Environment) -> dict[str, str]:
        """{normal name: version} of every distribution the virtualenv has."""
        python = self.python_on(env)
        if not executor.exists(python):
            raise StackError(f"{python}: not found; expected the virtualenv's interpreter")
        result = self._run(executor, env, [python, "-c", _INSTALLED], "list the packages")
        try:
            found = json.loads(result.out)
        except ValueError as exc:
            raise StackError(f"{python}: the package list is not JSON: {exc}") from exc
        return {str(name): str(version) for name, version in found.items()}

    def _migration_plan(self, env: Environment) -> list[tuple[str, bool]]:
        """[(app.migration, applied)] in the order Django applies them."""
        executor = open_executor(env.executor)
        argv = [self.python_on(env), "manage.py", "showmigrations", "--plan", "--no-color"]
        result = self._run(executor, env, argv, "manage.py showmigrations")
        plan = []
        for line in result.out.splitlines():
            mark, _, name = line.strip().partition("  ")
            if mark in ("[X]", "[ ]", "[-]") and name.strip():
                plan.append((name.strip().split()[0], mark == "[X]"))
        return plan

    def _run(self, executor: Executor, env: Environment, argv: list[str], what: str) -> Result:
        """`argv` in the project directory with the stack's settings; StackError on failure."""
        variables = [f"DJANGO_SETTINGS_MODULE={self.settings}"] if self.settings else []
        project = self.path_on(env, self.project_dir)
        try:
            result = executor.run(["sh", "-c", _IN_DIR, "tma-python", project, *variables, *argv])
        except ExecutorError as exc:
            raise StackError(f"{project}: {what}: {exc}") from exc
        if not result.ok:
            raise StackError(f"{project}: {what} exited {result.rc}: {telling_line(result.err)}")
        return result

    def _what_failure_left(self, executor: Executor, exc: PlaybookFailed, kept: str) -> StackError:
        """The playbook's failure (it names the migrations that ran), and what it left."""
        report = posixpath.join(kept, "rollback-failed.txt")
        if executor.exists(report):
            with executor.get(report) as stream:
                problem = " ".join(stream.read(4096).decode("utf-8", errors="replace").split())
            left = f"putting the site back failed: {problem}; the requirements from before are in "
            left += kept
        elif executor.exists(kept):
            left = "the update stopped half-way; applying the plan again resumes it"
        elif MIGRATED in str(exc):
            left = "its code is as it was"
        else:
            left = "the site is as it was"
        return StackError(f"{exc}; {left}")


def _checked_plan(updates: Sequence[Update], pins: dict[str, Pin]) -> dict[str, str]:
    """The plan as {normal name: version}, refused before anything changes when it cannot apply."""
    versions: dict[str, str] = {}
    for update in updates:
        name = canonical_name(update.component)
        problem = _plan_problem(update, name, pins, versions)
        if problem:
            raise StackError(f"update {update.describe()}: {problem}")
        versions[name] = update.to_version
    return versions


def _plan_problem(update: Update, name: str, pins: dict[str, Pin], planned: dict[str, str]) -> str:
    if name in planned:
        return "planned twice"
    if name not in pins:
        return "not pinned in the requirements file"
    try:
        Version(update.to_version)
    except InvalidVersion:
        return f"{update.to_version!r} is not a PEP 440 version"
    if update.artifact and update.artifact != f"{name}=={update.to_version}":
        return f"artifact {update.artifact!r} is not {name}=={update.to_version}"
    return ""


def _as_pinned(installed: str, pin: Pin) -> str:
    """The installed version, spelt as the pin spells it when they are the same release."""
    return pin.version if same_version(installed, pin.version) else installed


def _installed_as(installed: dict[str, str], versions: dict[str, str]) -> bool:
    return all(same_version(installed.get(n, ""), v) for n, v in versions.items())


def _component(name: str, version: str) -> Component:
    return Component(name, version, kind="package", ecosystem="PyPI")


def _update(component: Component, version: str, semver_class: str, release: Release) -> Update:
    return Update(
        component=component.name,
        from_version=component.version,
        to_version=version,
        semver_class=semver_class or classify("pep440", component.version, version) or "",
        artifact=f"{component.name}=={version}",
        sha256=release.sha256,
        kind="package",
        ecosystem="PyPI",
        scheme="pep440",
        released=release.released,
    )
