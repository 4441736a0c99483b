"""Node stack: an app's npm dependencies, pinned in package.json and package-lock.json.

- inventory: the packages package.json names (dependencies and devDependencies) with the
  versions `npm ls` finds installed. A devDependency that is not installed (a production
  install that omits them) is left out; a missing dependency is an error.
- available: per package, `npm view <name> versions time` from the registry, and the newest
  version of each class (patch, minor, major) above the installed one. Packages package.json
  takes from elsewhere (git, a file, a URL, an `npm:` alias) are offered nothing.
- apply: playbooks/node-update.yml runs `npm install name@version... --save-exact` for the whole
  plan, checks that package.json and the lock pin exactly the plan, runs the declared build
  script and the restart command, and waits until the app serves; on failure it puts
  package.json and the lock back, reinstalls them with `npm ci`, builds and restarts again.

Every npm command runs on the environment, in the app directory, through its executor or the
playbook, so the project's .npmrc applies. npm's output stays out of logs and errors, except
the one line that says why it failed.

An update names its artifact `name@version`; `sha256` stays empty: the registry's digest of a
tarball is SHA-512 (the lock's `integrity`), which npm itself checks on every install.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tma_ops import model_stacks
from tma_ops.ansible import PlaybookContext, PlaybookFailed
from tma_ops.errors import ExecutorError, StackError
from tma_ops.executors import Executor, Result, open_executor
from tma_ops.model import Environment
from tma_ops.stacks import Applied, Component, Update, changes_between, read_bounded
from tma_ops.versions import newest_per_class

PLAYBOOK = "node-update.yml"
KEPT = ".tma-node-before"  # the playbook's copy of package.json and the lock during an update
MAX_JSON = 16 * 1024 * 1024
SECTIONS = ("dependencies", "devDependencies")
QUIET = ["--no-audit", "--no-fund", "--no-update-notifier", "--loglevel=error"]
# Valid names: lowercase, optionally scoped; older packages may have capitals.
PACKAGE_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-zA-Z0-9][a-zA-Z0-9._~-]*$")
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
# A package.json spec that points elsewhere than the registry: git, file:, URLs, aliases, user/repo.
NOT_REGISTRY = re.compile(r"[:/]")
_NPM_ERROR_PREFIX = re.compile(r"^npm (?:error|ERR!) +")
_NPM_ERROR_NOISE = re.compile(r"^(code |errno |syscall |A complete log|Log files were not written)")
_NPM_ERROR_TAG = re.compile(r"^(notarget|404) +")  # a topic npm repeats before each line
# In an app directory: `sh -c <this> tma-node <dir> <argv...>`.
_IN_DIR = 'cd -- "$1" && shift && exec "$@"'


class NodeDriver:
    def __init__(
        self,
        app_dir: str = ".",
        npm: str = "npm",
        build: str | None = None,
        restart: str | None = None,
        registry: str | None = None,
        ready_timeout: float = 60,
    ) -> None:
        self.app_dir, self.npm, self.build, self.restart = app_dir, npm, build, restart
        self.registry, self.ready_timeout = registry, ready_timeout

    @classmethod
    def from_config(cls, spec: model_stacks.NodeStack) -> NodeDriver:
        return cls(
            spec.app_dir, spec.npm, spec.build, spec.restart, spec.registry, spec.ready_timeout
        )

    @property
    def npm_flags(self) -> list[str]:
        return [*QUIET, *([f"--registry={self.registry}"] if self.registry else [])]

    def inventory(self, env: Environment) -> list[Component]:
        executor, app = open_executor(env.executor), self.app_on(env)
        declared = self._declared(executor, app)
        installed = self._installed(executor, app)
        components = []
        for name, (section, _) in sorted(declared.items()):
            version = installed.get(name)
            if version is None and section == "dependencies":
                raise StackError(
                    f"{app}/node_modules/{name}: not installed (package.json needs it); "
                    "run npm ci in the app"
                )
            if version is not None:
                components.append(Component(name, version, kind="package", ecosystem="npm"))
        return components

    def available(self, env: Environment, installed: list[Component]) -> list[Update]:
        executor, app = open_executor(env.executor), self.app_on(env)
        declared = self._declared(executor, app)
        updates = []
        for component in installed:
            spec = declared.get(component.name, ("", ""))[1]
            if component.name not in declared or NOT_REGISTRY.search(spec):
                continue
            versions, times = self._published(executor, app, component.name)
            offered = newest_per_class("semver", component.version, versions)
            for semver_class, version in offered.items():
                updates.append(_update(component, version, semver_class, times.get(version)))
        return updates

    def pending_migrations(self, env: Environment) -> list[str]:
        return []  # npm packages carry no schema of the site's database

    def apply(
        self, env: Environment, updates: Sequence[Update], context: PlaybookContext
    ) -> Applied:
        """Install the plan at once through playbooks/node-update.yml (see the module doc).

        Raises StackError with the one line that says why (npm's, the build's, the restart's);
        the app is then as it was, or the error says what putting it back could not do.
        """
        if not updates:
            return Applied()
        before = self.inventory(env)
        executor, app = open_executor(env.executor), self.app_on(env)
        pins = self._checked_plan(executor, app, updates)
        if self._in_place(executor, app, pins, before):
            return Applied()  # nothing to do: no install, no build, no restart
        try:
            context.run(PLAYBOOK, env, self._extravars(env, app, pins))
        except PlaybookFailed as exc:
            raise _with_put_back_problem(exc, executor, app) from exc
        for update in updates:
            context.applied(update.component)
        return Applied(changes_between(before, self.inventory(env)))

    def app_on(self, env: Environment) -> str:
        """The app directory on `env` (absolute when local, as the playbook needs)."""
        app = posixpath.join(env.root, self.app_dir)
        return os.path.abspath(app) if env.executor.scheme == "local" else posixpath.normpath(app)

    def _checked_plan(
        self, executor: Executor, app: str, updates: Sequence[Update]
    ) -> dict[str, str]:
        """The plan as {name: version}, refused before anything changes when it cannot apply."""
        path = posixpath.join(app, "package.json")
        manifest = read_json(executor, path)
        declared = declared_packages(manifest, path)
        pins: dict[str, str] = {}
        for update in updates:
            problem = _plan_problem(update, declared, pins)
            if problem:
                raise StackError(f"update {update.describe()}: {problem}")
            pins[update.component] = update.to_version
        scripts = manifest.get("scripts")
        if self.build and not (isinstance(scripts, dict) and self.build in scripts):
            raise StackError(f"stack build: {app}/package.json has no script {self.build!r}")
        lock = posixpath.join(app, "package-lock.json")
        if not executor.exists(lock):
            raise StackError(
                f"{lock}: not found; an update needs the lock to put the app back on failure"
            )
        return pins

    def _in_place(
        self, executor: Executor, app: str, pins: dict[str, str], installed: list[Component]
    ) -> bool:
        """Whether package.json, the lock and node_modules hold the plan, and no update that
        stopped half-way is waiting to be finished (the playbook decides the same)."""
        if executor.exists(posixpath.join(app, KEPT, "package-lock.json")):
            return False
        versions = {c.name: c.version for c in installed}
        declared = self._declared(executor, app)
        locked = locked_versions(read_json(executor, posixpath.join(app, "package-lock.json")))
        return all(
            versions.get(name) == declared[name][1] == locked.get(name) == version
            for name, version in pins.items()
        )

    def _extravars(self, env: Environment, app: str, pins: dict[str, str]) -> dict[str, Any]:
        check = env.ready_check
        return {
            "app_dir": app,
            "npm": self.npm,
            "npm_flags": self.npm_flags,
            "pins": pins,
            "specs": [f"{name}@{version}" for name, version in pins.items()],
            "build": self.build or "",
            "restart": self.restart or "",
            "ready_url": check.url,
            "ready_status": check.status,
            "ready_timeout": max(1, round(self.ready_timeout)),
        }

    def _declared(self, executor: Executor, app: str) -> dict[str, tuple[str, str]]:
        path = posixpath.join(app, "package.json")
        return declared_packages(read_json(executor, path), path)

    def _installed(self, executor: Executor, app: str) -> dict[str, str]:
        """{name: version} of the top-level packages installed in node_modules."""
        result = self._npm(executor, app, "ls", "--json", "--depth=0")
        listed = _json_out(result, f"npm ls in {app}", partial_ok=True)
        packages = listed.get("dependencies") or {}
        return {
            name: str(entry["version"])
            for name, entry in packages.items()
            if isinstance(entry, dict) and entry.get("version") and not entry.get("missing")
        }

    def _published(
        self, executor: Executor, app: str, name: str
    ) -> tuple[list[str], dict[str, str]]:
        """The versions the registry has of `name` and when each was published."""
        if not PACKAGE_NAME.match(name):
            raise StackError(f"{app}/package.json: {name!r} is not a valid npm package name")
        result = self._npm(executor, app, "view", name, "versions", "time", "--json")
        data = _json_out(result, f"npm view {name}")
        versions = data.get("versions") or []
        versions = [versions] if isinstance(versions, str) else versions
        times = data.get("time") if isinstance(data.get("time"), dict) else {}
        return [str(v) for v in versions], {str(k): str(v) for k, v in (times or {}).items()}

    def _npm(self, executor: Executor, app: str, *args: str) -> Result:
        argv = ["sh", "-c", _IN_DIR, "tma-node", app, self.npm, *args, *self.npm_flags]
        try:
            return executor.run(argv, check=False)
        except ExecutorError as exc:
            raise StackError(f"{executor.url}: npm {args[0]}: {exc}") from exc


def declared_packages(manifest: dict[str, Any], path: str) -> dict[str, tuple[str, str]]:
    """{name: (section, spec)} of package.json's dependencies and devDependencies."""
    declared: dict[str, tuple[str, str]] = {}
    for section in reversed(SECTIONS):  # a name in both: npm installs the dependency
        entries = manifest.get(section) or {}
        if not isinstance(entries, dict):
            raise StackError(f"{path}: {section}: expected an object of name: version")
        declared |= {str(name): (section, str(spec)) for name, spec in entries.items()}
    return declared


def locked_versions(lock: dict[str, Any]) -> dict[str, str]:
    """{name: version} of the top-level packages a package-lock.json pins (v1 to v3)."""
    packages = lock.get("packages")
    if isinstance(packages, dict):
        prefix = "node_modules/"
        entries = {
            path[len(prefix) :]: entry
            for path, entry in packages.items()
            if path.startswith(prefix) and "/node_modules/" not in path
        }
    else:
        entries = lock.get("dependencies") or {}
    return {
        str(name): str(entry["version"])
        for name, entry in entries.items()
        if isinstance(entry, dict) and "version" in entry
    }


def read_json(executor: Executor, path: str) -> dict[str, Any]:
    data = read_bounded(executor, path, MAX_JSON)
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise StackError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise StackError(f"{path}: expected a JSON object")
    return parsed


def npm_reason(result: Result) -> str:
    """npm's reason for a failure, in one line: its JSON error, else its first telling error
    line, else the last line of its error output (a shell that did not find npm)."""
    try:
        error = json.loads(result.out).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if isinstance(error, dict) and error.get("summary"):
        return " ".join(str(error["summary"]).split())
    for line in result.err.splitlines():
        text = _NPM_ERROR_PREFIX.sub("", line.strip(), count=1)
        if text != line.strip() and text and not _NPM_ERROR_NOISE.match(text):
            return " ".join(_NPM_ERROR_TAG.sub("", text, count=1).split())
    lines = [line.strip() for line in result.err.splitlines() if line.strip()]
    return f"exited {result.rc}: {lines[-1]}" if lines else f"exited {result.rc}"


def released_utc(text: str | None) -> str:
    """The registry's publication time as ISO 8601 UTC (`...Z`), "" when it does not parse."""
    try:
        when = datetime.fromisoformat(text or "")
    except ValueError:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _update(component: Component, version: str, semver_class: str, published: str | None) -> Update:
    return Update(
        component=component.name,
        from_version=component.version,
        to_version=version,
        semver_class=semver_class,
        artifact=f"{component.name}@{version}",
        kind="package",
        ecosystem="npm",
        scheme="semver",
        released=released_utc(published),
    )


def _plan_problem(
    update: Update, declared: dict[str, tuple[str, str]], planned: dict[str, str]
) -> str:
    if update.component in planned:
        return "planned twice"
    if not PACKAGE_NAME.match(update.component):
        return f"{update.component!r} is not a valid npm package name"
    if update.component not in declared:
        return "not a dependency in package.json"
    if NOT_REGISTRY.search(declared[update.component][1]):
        return f"package.json takes it from {declared[update.component][1]!r}, not the registry"
    if not EXACT_VERSION.match(update.to_version):
        return f"{update.to_version!r} is not an exact version"
    if update.artifact != f"{update.component}@{update.to_version}":
        return f"artifact {update.artifact!r} is not {update.component}@{update.to_version}"
    return ""


def _json_out(result: Result, what: str, *, partial_ok: bool = False) -> dict[str, Any]:
    """npm's JSON answer, else a StackError with its reason. `partial_ok`: an answer that lists
    dependencies is taken even from a failed command (npm ls exits 1 on a missing package)."""
    try:
        data = json.loads(result.out)
    except ValueError:
        data = None
    if isinstance(data, dict) and (result.ok or (partial_ok and "dependencies" in data)):
        return data
    raise StackError(f"{what}: {npm_reason(result)}")


def _with_put_back_problem(exc: PlaybookFailed, executor: Executor, app: str) -> StackError:
    """The playbook's failure, and what it left: the app as it was, or what is not put back."""
    kept = posixpath.join(app, KEPT)
    report = posixpath.join(kept, "rollback-failed.txt")
    if executor.exists(report):
        with executor.get(report) as stream:
            problem = " ".join(stream.read(4096).decode("utf-8", errors="replace").split())
        left = f"putting the app back failed: {problem}"
    elif executor.exists(posixpath.join(kept, "package-lock.json")):
        left = "the update stopped half-way; applying the plan again resumes it"
    else:
        return StackError(f"{exc}; the app is as it was")
    return StackError(f"{exc}; {left}; package.json and the lock from before it are in {kept}")
