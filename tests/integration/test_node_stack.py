"""The node stack driver on a real express app installed from the npm registry.

The conformance suite (test_stack_conformance.py) covers the common contract; these tests cover
what is the node driver's own: dev dependencies, what the registry offers, a whole plan at once
with its build and restart, and an app put back as it was when npm, the build, the restart or the
app itself fails.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from harness.node_app import (
    NPM_FLAGS,
    NodeApp,
    copy_node_app,
    fill_npm_cache,
    start_node_app,
    stop_node_app,
)
from harness.sshd import SshServer
from node_stack_support import node_driver, node_env

from tma_ops.ansible import PlaybookContext
from tma_ops.errors import StackError
from tma_ops.executors import Result
from tma_ops.journal import Journal
from tma_ops.model import Environment
from tma_ops.stacks import Change, Update
from tma_ops.stacks.node import KEPT, npm_reason, released_utc
from tma_ops.versions import parse

pytestmark = pytest.mark.integration

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
OLD = "express 4.17.1\nms 2.1.1\n"
GUARD = "node guard.js express 4.17.1"  # fails once express is updated


@dataclass(frozen=True)
class RecordingContext(PlaybookContext):
    seen: list[str] = field(default_factory=list)

    def applied(self, component: str) -> None:
        self.seen.append(component)


def context(journal: Journal | None = None) -> RecordingContext:
    return RecordingContext(journal=journal, run_id="node", site="node-site", step="apply")


def update(name: str, old: str, new: str) -> Update:
    return Update(name, old, new, artifact=f"{name}@{new}", kind="package", ecosystem="npm")


def files(app: NodeApp) -> dict[str, bytes]:
    return {name: (app.dir / name).read_bytes() for name in ("package.json", "package-lock.json")}


def set_build_script(app: NodeApp, command: str) -> None:
    manifest = app.manifest()
    manifest["scripts"]["build"] = command
    (app.dir / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")


def assert_as_before(app: NodeApp, before: dict[str, bytes]) -> None:
    assert files(app) == before
    assert not (app.dir / KEPT).exists()
    versions = {c.name: c.version for c in node_driver().inventory(node_env(app))}
    assert versions == {"escape-html": "1.0.2", "express": "4.17.1", "ms": "2.1.1"}
    assert app.page() == OLD
    assert "express 4.17.1" in app.page("build")


@pytest.fixture
def idle_app(node_app_template: Path, tmp_path: Path) -> NodeApp:
    """A copy of the app that is not running (for what reads the app only)."""
    return NodeApp(copy_node_app(node_app_template, tmp_path / "site" / "app"), port=1)


def test_inventory_lists_dependencies_and_dev_dependencies_as_installed(idle_app: NodeApp) -> None:
    installed = node_driver().inventory(node_env(idle_app))
    assert [(c.name, c.version) for c in installed] == [
        ("escape-html", "1.0.2"),
        ("express", "4.17.1"),
        ("ms", "2.1.1"),
    ]
    assert {(c.kind, c.ecosystem) for c in installed} == {("package", "npm")}


def test_inventory_leaves_out_a_dev_dependency_not_installed_and_refuses_a_missing_one(
    idle_app: NodeApp,
) -> None:
    shutil.rmtree(idle_app.dir / "node_modules" / "escape-html")
    names = [c.name for c in node_driver().inventory(node_env(idle_app))]
    assert names == ["express", "ms"]
    shutil.rmtree(idle_app.dir / "node_modules" / "ms")
    with pytest.raises(StackError, match=r"node_modules/ms: not installed.*npm ci"):
        node_driver().inventory(node_env(idle_app))


def test_a_missing_or_broken_package_json_is_named(idle_app: NodeApp) -> None:
    manifest = idle_app.dir / "package.json"
    manifest.write_text('{"dependencies": {"express": "4.17.1",}')
    with pytest.raises(StackError, match=rf"^{re.escape(str(manifest))}: not valid JSON"):
        node_driver().inventory(node_env(idle_app))
    manifest.unlink()
    with pytest.raises(StackError, match=rf"^{re.escape(str(manifest))}: not found"):
        node_driver().inventory(node_env(idle_app))


def test_available_offers_the_newest_release_of_each_class_from_the_registry(
    idle_app: NodeApp,
) -> None:
    driver, env = node_driver(), node_env(idle_app)
    offered = driver.available(env, driver.inventory(env))
    by_class = {(u.component, u.semver_class): u for u in offered}
    assert by_class[("express", "patch")].to_version == "4.17.3"  # the 4.17 line ended there
    minor, major = by_class[("express", "minor")], by_class[("express", "major")]
    assert parse("semver", minor.to_version).release[:2] > (4, 17)  # type: ignore[union-attr]
    assert parse("semver", major.to_version).release[0] >= 5  # type: ignore[union-attr]
    # ms has only pre-releases above 2.1.3 (canaries, nightlies): none is offered.
    assert [u.to_version for u in offered if u.component == "ms"] == ["2.1.3"]
    assert by_class[("escape-html", "patch")].to_version == "1.0.3"
    for u in offered:
        assert u.artifact == f"{u.component}@{u.to_version}"
        assert (u.kind, u.ecosystem, u.scheme, u.sha256) == ("package", "npm", "semver", "")
        assert ISO_UTC.match(u.released), u
        assert (
            u.from_version
            == {"express": "4.17.1", "ms": "2.1.1", "escape-html": "1.0.2"}[u.component]
        )


def test_a_package_taken_from_elsewhere_is_neither_offered_nor_updated(idle_app: NodeApp) -> None:
    manifest = idle_app.manifest()
    manifest["dependencies"]["ms"] = "github:vercel/ms#2.1.1"
    (idle_app.dir / "package.json").write_text(json.dumps(manifest))
    driver, env = node_driver(), node_env(idle_app)
    installed = driver.inventory(env)
    assert "ms" in [c.name for c in installed]
    assert "ms" not in {u.component for u in driver.available(env, installed)}
    from_git = re.escape("takes it from 'github:vercel/ms#2.1.1', not the registry")
    with pytest.raises(StackError, match=from_git):
        driver.apply(env, [update("ms", "2.1.1", "2.1.3")], context())


@pytest.fixture
def refusing_registry() -> Iterator[str]:
    """A registry that has no package at all (it answers 404 to everything)."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"error":"Not found"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_available_asks_the_configured_registry_and_says_why_it_failed(
    idle_app: NodeApp, refusing_registry: str
) -> None:
    driver, env = node_driver(registry=refusing_registry), node_env(idle_app)
    with pytest.raises(StackError, match=r"^npm view escape-html: .*Not Found") as raised:
        driver.available(env, driver.inventory(env))
    assert "\n" not in str(raised.value)


def test_apply_installs_the_whole_plan_pinned_exactly_then_builds_and_restarts(
    node_app: NodeApp, tmp_path: Path
) -> None:
    plan = [
        update("express", "4.17.1", "4.17.3"),
        update("ms", "2.1.1", "2.1.3"),
        update("escape-html", "1.0.2", "1.0.3"),
    ]
    server_before = node_app.pid()
    with Journal(tmp_path / "journal.sqlite") as journal:
        ctx = context(journal)
        applied = node_driver().apply(node_env(node_app), plan, ctx)
        events = journal.events(run_id="node")
    assert applied.changes == [
        Change("escape-html", "1.0.2", "1.0.3"),
        Change("express", "4.17.1", "4.17.3"),
        Change("ms", "2.1.1", "2.1.3"),
    ]
    assert applied.migrations == []
    assert ctx.seen == ["express", "ms", "escape-html"]
    manifest = node_app.manifest()
    assert manifest["dependencies"] == {"express": "4.17.3", "ms": "2.1.3"}
    assert manifest["devDependencies"] == {"escape-html": "1.0.3"}
    lock = json.loads((node_app.dir / "package-lock.json").read_text())["packages"]
    assert lock["node_modules/express"]["version"] == "4.17.3"
    assert node_app.page() == "express 4.17.3\nms 2.1.3\n"
    assert "express 4.17.3\nms 2.1.3\nescape-html 1.0.3" in node_app.page("build")
    assert node_app.pid() != server_before
    assert not (node_app.dir / KEPT).exists()
    tasks = [e.data.get("task") for e in events]
    assert "Install the planned versions" in tasks
    assert "Wait until the app serves" in tasks
    logged = json.dumps([e.data for e in events])
    assert "packages in" not in logged  # npm's own report stays out of the journal


def test_a_version_the_registry_does_not_have_fails_with_npms_reason(node_app: NodeApp) -> None:
    before = files(node_app)
    with pytest.raises(StackError) as raised:
        node_driver().apply(node_env(node_app), [update("express", "4.17.1", "999.0.0")], context())
    message = str(raised.value)
    assert "No matching version found for express@999.0.0" in message
    assert message.endswith("the app is as it was")
    assert "\n" not in message
    assert_as_before(node_app, before)


def test_a_build_that_fails_on_the_update_puts_the_app_back(node_app: NodeApp) -> None:
    set_build_script(node_app, f"{GUARD} && node build.js")
    before = files(node_app)
    with pytest.raises(StackError, match=r"npm run build exited 2: Error: express 4.17.3 is not"):
        node_driver().apply(node_env(node_app), [update("express", "4.17.1", "4.17.3")], context())
    assert_as_before(node_app, before)


def test_a_restart_that_fails_on_the_update_puts_the_app_back(node_app: NodeApp) -> None:
    before = files(node_app)
    driver = node_driver(restart=f"{GUARD} && ./restart.sh")
    with pytest.raises(StackError, match=r"restart command exited 2: Error: express 4.17.3 is"):
        driver.apply(node_env(node_app), [update("express", "4.17.1", "4.17.3")], context())
    assert_as_before(node_app, before)


def test_an_app_that_does_not_serve_after_the_update_is_put_back(node_app: NodeApp) -> None:
    before = files(node_app)
    # The update's restart stops the server without starting it again.
    restart = f'if {GUARD} 2>/dev/null; then ./restart.sh; else kill "$(cat server.pid)"; fi'
    driver = node_driver(restart=restart, ready_timeout=3)
    with pytest.raises(StackError, match=r"task 'Wait until the app serves' failed.*as it was"):
        driver.apply(node_env(node_app), [update("express", "4.17.1", "4.17.3")], context())
    assert_as_before(node_app, before)


def test_a_failed_put_back_says_what_it_left(node_app: NodeApp) -> None:
    set_build_script(node_app, "node guard.js express 0.0.0")  # fails before and after
    before = files(node_app)
    with pytest.raises(StackError) as raised:
        node_driver().apply(node_env(node_app), [update("express", "4.17.1", "4.17.3")], context())
    message = str(raised.value)
    assert "npm run build exited 2: Error: express 4.17.3 is not supported" in message
    assert "putting the app back failed: npm run build exited 2: Error: express 4.17.1" in message
    assert message.endswith(
        f"package.json and the lock from before it are in {node_app.dir / KEPT}"
    )
    assert files(node_app) == before  # the files and node_modules are back; the build is not
    assert (node_app.dir / KEPT / "package-lock.json").read_bytes() == before["package-lock.json"]


def test_an_update_interrupted_after_the_install_is_finished_by_the_next_apply(
    node_app: NodeApp,
) -> None:
    # As the playbook leaves an app it stopped after npm install: copy kept, no build, no restart.
    kept = node_app.dir / KEPT
    kept.mkdir()
    for name, data in files(node_app).items():
        (kept / name).write_bytes(data)
    subprocess.run(
        ["npm", "install", "--save-exact", *NPM_FLAGS, "express@4.17.3"],
        cwd=node_app.dir,
        check=True,
        capture_output=True,
    )
    assert node_app.page() == OLD
    node_driver().apply(node_env(node_app), [update("express", "4.17.1", "4.17.3")], context())
    assert node_app.page() == "express 4.17.3\nms 2.1.1\n"
    assert "express 4.17.3" in node_app.page("build")
    assert not kept.exists()


def test_an_app_on_another_host_is_read_and_updated_over_ssh(
    ssh_host: SshServer, node_app_template: Path, tmp_path: Path
) -> None:
    # The host has no registry: npm installs from the cache, filled here beforehand.
    fill_npm_cache(node_app_template, tmp_path / "scratch", "express@4.17.3")
    app_dir = copy_node_app(node_app_template, tmp_path / "remote" / "app")
    (app_dir / ".npmrc").write_text("offline=true\n")
    app = start_node_app(app_dir, ssh_host.host)
    try:
        env = Environment.model_validate(
            {
                "executor": ssh_host.spec(python="/usr/bin/python3"),
                "root": str(app_dir.parent),
                "database": {"engine": "sqlite", "path": str(app_dir.parent / "site.sqlite")},
                "smoke": [{"url": app.url}],
            }
        )
        driver = node_driver()
        assert ("express", "4.17.1") in [(c.name, c.version) for c in driver.inventory(env)]
        applied = driver.apply(env, [update("express", "4.17.1", "4.17.3")], context())
        assert applied.changes == [Change("express", "4.17.1", "4.17.3")]
        assert app.page() == "express 4.17.3\nms 2.1.1\n"
        assert "express 4.17.3" in app.page("build")
    finally:
        stop_node_app(app)


@pytest.mark.parametrize(
    ("plan", "build", "problem"),
    [
        (
            [dataclasses.replace(update("ms", "2.1.1", "2.1.3"), artifact="ms@2.1.2")],
            "build",
            "update ms 2.1.1 -> 2.1.3: artifact 'ms@2.1.2' is not ms@2.1.3",
        ),
        ([update("ms", "2.1.1", "^2.1.3")], "build", "'^2.1.3' is not an exact version"),
        ([update("left-pad", "1.0.0", "1.3.0")], "build", "not a dependency in package.json"),
        ([update("--global", "1.0.0", "1.3.0")], "build", "'--global' is not a valid npm package"),
        ([update("ms", "2.1.1", "2.1.3")] * 2, "build", "update ms 2.1.1 -> 2.1.3: planned twice"),
        ([update("ms", "2.1.1", "2.1.3")], "bundle", "package.json has no script 'bundle'"),
    ],
)
def test_a_plan_that_cannot_apply_is_refused_before_anything_changes(
    idle_app: NodeApp, plan: list[Update], build: str, problem: str
) -> None:
    before = files(idle_app)
    with pytest.raises(StackError, match=re.escape(problem)):
        node_driver(build=build).apply(node_env(idle_app), plan, context())
    assert files(idle_app) == before
    assert not (idle_app.dir / KEPT).exists()


def test_an_empty_plan_changes_nothing(idle_app: NodeApp) -> None:
    assert node_driver().apply(node_env(idle_app), [], context()).changes == []


def test_npm_reason_is_one_line_from_npms_json_or_error_lines() -> None:
    as_json = Result(1, '{"error": {"code": "E404", "summary": "Not Found - GET x\\n y"}}', "")
    assert npm_reason(as_json) == "Not Found - GET x y"
    lines = "npm error code ETARGET\nnpm error notarget No matching version\nnpm error A complete"
    assert npm_reason(Result(1, "", lines)) == "No matching version"
    assert npm_reason(Result(1, "", "npm ERR! code E1\nnpm ERR! boom")) == "boom"
    assert npm_reason(Result(127, "", "sh: 1: exec: npm: not found\n")) == (
        "exited 127: sh: 1: exec: npm: not found"
    )
    assert npm_reason(Result(7, "", "")) == "exited 7"


def test_an_npm_that_is_not_there_is_named(idle_app: NodeApp) -> None:
    with pytest.raises(StackError, match=r"^npm ls in .*: exited 127: .*/opt/none/npm.*not found"):
        node_driver(npm="/opt/none/npm").inventory(node_env(idle_app))


def test_release_times_become_iso_utc() -> None:
    assert released_utc("2024-02-23T22:24:14.754Z") == "2024-02-23T22:24:14Z"
    assert released_utc("2024-02-23T23:24:14.754000+01:00") == "2024-02-23T22:24:14Z"
    assert released_utc(None) == released_utc("yesterday") == ""
