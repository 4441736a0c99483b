"""Real Wagtail sites for tests: a project from PyPI in a virtualenv, served by gunicorn.

A site is a directory holding the project `wagtail start` made (manage.py, mysite/, home/,
search/), its virtualenv `.venv` (the system Python, 3.11 on Debian 12, so no pyenv is needed),
`requirements.txt` pinning Django, Wagtail and gunicorn, a migrated SQLite database, the
collected static files, and `run/` for gunicorn's pidfile and log. It runs with
`mysite.settings.production` (DEBUG off) plus a `local.py` that allows the test host and sets a
test secret key. The home page links to the release notes of the Wagtail it runs, which is what
tests read to see which Wagtail serves.

The template site is built once per test session (about a minute, mostly pip from its cache).
Each test takes a copy (`copy_site`): the virtualenv and static files as hard links (pip and
collectstatic replace files, never write into them, so a copy's update leaves the template as it
was) and the rest as real copies. A copy's interpreter finds its own virtualenv from where it
lies, so everything runs as `.venv/bin/python -m ...`; the console scripts of the copy still name
the template's interpreter and are not used.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
PROJECT = "mysite"
SETTINGS = f"{PROJECT}.settings.production"
# The installed release, and the update the tests apply: a minor release of Wagtail whose
# migrations change the images, documents and users apps. Both lines are closed (6.x ended), so
# what the index offers for them does not move.
PINS = {"Django": "4.2.30", "wagtail": "6.2.3", "gunicorn": "23.0.0"}
UPDATE = ("wagtail", "6.4.2")
NEW_MIGRATIONS = (
    "wagtaildocs.0014_alter_document_file_size",
    "wagtailimages.0027_image_description",
    "wagtailusers.0014_userprofile_contrast",
)
# Graceful restart of the site: gunicorn starts new workers (importing the code anew) and stops
# the old ones. Run in the site's root.
RESTART = 'kill -HUP "$(cat run/gunicorn.pid)"'
LOCAL_SETTINGS = """\
SECRET_KEY = "tma-ops-test-only-key"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
"""
RELEASE_NOTES = re.compile(r'href="[^"]*/releases/([^"/]+)\.html"')


class WagtailUnavailable(Exception):
    """The machine cannot build the site (no system Python venv, PyPI unreachable)."""


@dataclass
class WagtailSite:
    root: Path
    port: int = 0
    server: subprocess.Popen[bytes] | None = None

    @property
    def python(self) -> Path:
        return self.root / ".venv" / "bin" / "python"

    @property
    def requirements(self) -> Path:
        return self.root / "requirements.txt"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([str(self.python), "manage.py", *args], self.root, check=check)

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([str(self.python), "-m", "pip", *args, *_PIP_QUIET], self.root)

    def served_release(self) -> str:
        """The Wagtail release whose notes the running home page links to."""
        with urllib.request.urlopen(self.url, timeout=30) as response:
            page = response.read().decode("utf-8", errors="replace")
        found = RELEASE_NOTES.search(page)
        if found is None:
            raise AssertionError(f"{self.url}: no link to release notes in the home page")
        return found.group(1)


_PIP_QUIET = ["--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-q"]


def missing_requirements() -> str | None:
    """Why this machine cannot build the site, or None when it can."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found (the Wagtail site runs on the system Python)"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import ensurepip, venv"], capture_output=True)
    if probe.returncode != 0:
        return "the system Python has no venv/ensurepip: apt-get install python3-venv"
    return None


def build_template(root: Path) -> WagtailSite:
    """A migrated Wagtail site at `root`, with its static files collected, not served."""
    problem = missing_requirements()
    if problem:
        raise WagtailUnavailable(problem)
    root.mkdir(parents=True, exist_ok=True)
    site = WagtailSite(root)
    _progress(f"building a Wagtail {PINS['wagtail']} site in {root} (pip install from PyPI)")
    _run([SYSTEM_PYTHON, "-m", "venv", str(root / ".venv")], root)
    pins = [f"{name}=={version}" for name, version in PINS.items()]
    try:
        site.pip("install", *pins)
    except subprocess.CalledProcessError as exc:
        raise WagtailUnavailable(f"pip install {' '.join(pins)}: {_last_line(exc)}") from exc
    _run([str(root / ".venv" / "bin" / "wagtail"), "start", PROJECT, str(root)], root)
    site.requirements.write_text("".join(f"{pin}\n" for pin in pins))
    (root / PROJECT / "settings" / "local.py").write_text(LOCAL_SETTINGS)
    _progress("migrating the new site's database and collecting its static files")
    site.manage("migrate", "--noinput")
    site.manage("collectstatic", "--noinput")
    return site


def copy_site(template: WagtailSite, root: Path) -> WagtailSite:
    """A copy of `template` at `root` (see the module doc), not served."""
    root.mkdir(parents=True)
    for entry in template.root.iterdir():
        if entry.name in (".venv", "static"):
            subprocess.run(["cp", "-al", str(entry), str(root / entry.name)], check=True)
        elif entry.is_dir():
            shutil.copytree(entry, root / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, root / entry.name)
    (root / "run").mkdir()
    return WagtailSite(root)


def start_site(site: WagtailSite, port: int, timeout: float = 60) -> None:
    """Serve `site` with gunicorn on 127.0.0.1:`port` (pidfile run/gunicorn.pid)."""
    site.port = port
    argv = [
        str(site.python),
        "-m",
        "gunicorn",
        f"{PROJECT}.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--pid",
        "run/gunicorn.pid",
    ]
    log = (site.root / "run" / "gunicorn.log").open("ab")
    with log:
        site.server = subprocess.Popen(
            argv,
            cwd=site.root,
            env=_site_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    _wait_serving(site, timeout)


def stop_site(site: WagtailSite) -> None:
    server, site.server = site.server, None
    if server is None or server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _wait_serving(site: WagtailSite, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert site.server is not None
        if site.server.poll() is not None:
            raise AssertionError(f"gunicorn exited {site.server.returncode}: {_log_tail(site)}")
        try:
            with urllib.request.urlopen(site.url, timeout=5) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            time.sleep(0.2)
    raise AssertionError(f"{site.url} did not answer within {timeout:.0f}s: {_log_tail(site)}")


def _site_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return env | {"DJANGO_SETTINGS_MODULE": SETTINGS}


def _run(argv: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=_site_env(), capture_output=True, text=True, check=check
    )


def _last_line(exc: subprocess.CalledProcessError) -> str:
    lines = [line for line in str(exc.stderr or "").splitlines() if line.strip()]
    return lines[-1] if lines else f"exited {exc.returncode}"


def _log_tail(site: WagtailSite) -> str:
    log = site.root / "run" / "gunicorn.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return " | ".join(lines[-5:])


def _progress(message: str) -> None:
    print(f"wagtail harness: {message}", file=sys.stderr, flush=True)
