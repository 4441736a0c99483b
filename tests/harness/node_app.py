"""A real Node app built from the npm registry: express and friends pinned at older releases.

`build_node_app(dest)` writes the app (package.json with exact pins, server.js, build.js,
restart.sh, guard.js) and runs `npm install` (which writes package-lock.json and node_modules)
and its `build` script: do it once per session, then `copy_node_app` per test. `start_node_app`
starts the copy on a free port of 127.0.0.1 (or of a test host, in its network namespace); the
server writes its pid to server.pid once it listens, and restart.sh (the stack's restart
command) stops that process and starts a new one.

What the app serves tells which code runs:
- `/`: the versions of its dependencies the running server loaded (read at start);
- `/build`: dist/build.txt, written by the `build` script with the versions it saw.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from harness.mariadb import free_port
from harness.netns import Host

DEPENDENCIES = {"express": "4.17.1", "ms": "2.1.1"}
DEV_DEPENDENCIES = {"escape-html": "1.0.2"}  # used by the build only
NPM_FLAGS = ["--no-audit", "--no-fund", "--no-update-notifier", "--loglevel=error"]
RESTART = "./restart.sh"

SERVER_JS = """\
const fs = require('fs');
const path = require('path');
const express = require('express');

const here = (name) => path.join(__dirname, name);
const loaded = ['express', 'ms']
  .map((name) => `${name} ${require(`${name}/package.json`).version}`)
  .join('\\n');
const app = express();
app.get('/', (req, res) => res.type('text').send(`${loaded}\\n`));
app.get('/build', (req, res) => res.type('text').send(fs.readFileSync(here('dist/build.txt'))));
const port = Number(fs.readFileSync(here('port'), 'utf8'));
const address = fs.readFileSync(here('address'), 'utf8').trim();
app.listen(port, address, () => fs.writeFileSync(here('server.pid'), `${process.pid}\\n`));
"""

BUILD_JS = """\
const fs = require('fs');
const path = require('path');
const escapeHtml = require('escape-html');

const seen = ['express', 'ms', 'escape-html']
  .map((name) => `${name} ${require(`${name}/package.json`).version}`)
  .join('\\n');
fs.mkdirSync(path.join(__dirname, 'dist'), { recursive: true });
fs.writeFileSync(path.join(__dirname, 'dist/build.txt'), `built with\\n${escapeHtml(seen)}\\n`);
"""

# `node guard.js <name> <version>` fails unless that version of the package is installed: put
# before a build or restart command, it makes them fail for an update, as broken code would.
GUARD_JS = """\
const [name, version] = process.argv.slice(2);
const found = require(`${name}/package.json`).version;
if (found !== version) {
  console.error(`Error: ${name} ${found} is not supported`);
  process.exit(2);
}
"""

# Stops the server named in server.pid (a zombie counts as stopped: nobody may reap it), then
# starts a new one detached from this shell's output, so that whoever runs it does not wait.
RESTART_SH = """\
#!/bin/sh
set -e
cd "$(dirname "$0")"
if [ -f server.pid ]; then
  pid=$(cat server.pid)
  kill "$pid" 2>/dev/null || true
  tries=0
  while state=$(ps -o stat= -p "$pid" 2>/dev/null) && [ "${state#Z}" = "$state" ]; do
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || { echo "server $pid does not stop" >&2; exit 1; }
    sleep 0.1
  done
  rm -f server.pid
fi
setsid node server.js >server.log 2>&1 </dev/null &
"""


@dataclass(frozen=True)
class NodeApp:
    dir: Path
    port: int
    address: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/"

    def page(self, path: str = "") -> str:
        """The body the running server sends for `path` ("" for the versions it loaded)."""
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return str(response.read().decode())

    def pid(self) -> int | None:
        pidfile = self.dir / "server.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None

    def manifest(self) -> dict[str, dict[str, str]]:
        data: dict[str, dict[str, str]] = json.loads((self.dir / "package.json").read_text())
        return data


def build_node_app(dest: Path) -> Path:
    """Write the app into `dest` and install it from the npm registry; returns `dest`."""
    dest.mkdir(parents=True)
    manifest = {
        "name": "tma-node-site",
        "version": "1.0.0",
        "private": True,
        "scripts": {"build": "node build.js", "start": "node server.js"},
        "dependencies": DEPENDENCIES,
        "devDependencies": DEV_DEPENDENCIES,
    }
    (dest / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (dest / "server.js").write_text(SERVER_JS)
    (dest / "build.js").write_text(BUILD_JS)
    (dest / "guard.js").write_text(GUARD_JS)
    (dest / "restart.sh").write_text(RESTART_SH)
    (dest / "restart.sh").chmod(0o755)
    _npm(dest, "install", *NPM_FLAGS)
    _npm(dest, "run", "build", "--silent")
    return dest


def copy_node_app(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest


def start_node_app(app_dir: Path, host: Host | None = None, timeout: float = 30.0) -> NodeApp:
    """Start the app in `app_dir` with its own restart.sh, on a free port of 127.0.0.1 or of
    `host` (in its network namespace); wait until it serves."""
    app = NodeApp(app_dir, free_port("127.0.0.1"), host.address if host else "127.0.0.1")
    (app_dir / "port").write_text(f"{app.port}\n")
    (app_dir / "address").write_text(f"{app.address}\n")
    inside = ["ip", "netns", "exec", host.netns] if host else []
    subprocess.run([*inside, RESTART], cwd=app_dir, check=True, capture_output=True, timeout=30)
    wait_serving(app, timeout)
    return app


def fill_npm_cache(template: Path, scratch: Path, *specs: str) -> None:
    """Install `specs` in a copy of the app at `scratch`, so that npm's cache holds everything
    an offline install of them needs (hosts in network namespaces have no registry)."""
    _npm(copy_node_app(template, scratch), "install", "--save-exact", *NPM_FLAGS, *specs)


def wait_serving(app: NodeApp, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            app.page()
            return
        except (OSError, urllib.error.URLError) as exc:
            if time.monotonic() > deadline:
                log = (app.dir / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"node app in {app.dir} does not serve: {exc}: {log}") from exc
            time.sleep(0.1)


def stop_node_app(app: NodeApp) -> None:
    """Stop the server the app's pidfile names (the one restart.sh started last)."""
    pid = app.pid()
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _running(pid):
        os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _npm(app_dir: Path, *args: str) -> None:
    result = subprocess.run(
        ["npm", *args], cwd=app_dir, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"npm {args[0]} in {app_dir} exited {result.returncode}: {result.stderr}"
        )
