"""What a Python package index offers: its files per version, read from the environment.

The index is asked from the environment, by the site's virtualenv, so that the answer is the one
its pip gets: the same network, proxy and pip configuration (`index-url`, `cert`). The index is
the stack's `index_url`, else pip's configured one, else pip's default.

An index answers the simple repository API: JSON (PEP 691) when it speaks it, which gives each
file's SHA-256, upload time (PEP 700), Requires-Python and yanked state; else HTML (PEP 503), with
the same facts except the upload time. Versions come from the file names. A version is offered
when one of its files is not yanked and accepts the virtualenv's Python; its `sha256` is that of
the wheel pip would choose there (the best-ranked of its compatible tags), "" for sdists only.
Extra indexes and find-links are not asked: updates come from the main index.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from tma_ops.errors import ExecutorError, StackError
from tma_ops.executors import Executor
from tma_ops.redact import redact_url_passwords

# Runs with the virtualenv's Python; reads {"index": url or "", "names": [...]} on stdin and
# prints {"index", "python", "tags", "projects": {name: {"files": [...]} | {"missing": true}}}.
_QUERY = r"""
import json, os, ssl, subprocess, sys, urllib.error, urllib.parse, urllib.request
from html.parser import HTMLParser

ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"

def pip_settings():
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            universal_newlines=True).stdout
    found = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        section, _, name = key.strip().rpartition(".")
        found.setdefault(name, {})[section] = value.strip().strip("'\"")
    def get(name):
        values = found.get(name, {})
        return next((values[s] for s in (":env:", "install", "global") if s in values), None)
    return get

class Anchors(HTMLParser):
    def __init__(self):
        HTMLParser.__init__(self)
        self.files = []
    def handle_starttag(self, tag, attrs):
        if tag != "a":
            return
        attrs = dict(attrs)
        url, _, fragment = (attrs.get("href") or "").partition("#")
        digest = fragment[7:] if fragment.startswith("sha256=") else None
        name = urllib.parse.unquote(url.rstrip("/").rsplit("/", 1)[-1])
        self.files.append([name, digest, None, attrs.get("data-requires-python"),
                           "data-yanked" in attrs])

def from_json(data):
    return [[f.get("filename"), (f.get("hashes") or {}).get("sha256"), f.get("upload-time"),
             f.get("requires-python"), bool(f.get("yanked"))] for f in data.get("files", [])]

def project(index, name, context):
    url = index.rstrip("/") + "/" + name + "/"
    if url.startswith("file:") and os.path.isdir(urllib.request.url2pathname(url[5:])):
        url += "index.html"
    request = urllib.request.Request(url, headers={"Accept": ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            kind, body = response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return {"missing": True}
        raise SystemExit(name + ": HTTP " + str(exc.code) + " " + str(exc.reason))
    except (OSError, ValueError) as exc:
        raise SystemExit(name + ": " + str(getattr(exc, "reason", exc)))
    if kind.endswith("+json") or kind == "application/json":
        return {"files": from_json(json.loads(body.decode("utf-8")))}
    anchors = Anchors()
    anchors.feed(body.decode("utf-8", "replace"))
    return {"files": anchors.files}

def main():
    asked = json.load(sys.stdin)
    setting = pip_settings()
    index = asked["index"] or setting("index-url")
    if not index:
        from pip._internal.models.index import PyPI
        index = PyPI.simple_url
    cafile = setting("cert") or os.environ.get("PIP_CERT")
    context = ssl.create_default_context(cafile=cafile or None)
    try:
        from pip._vendor.packaging.tags import sys_tags
        tags = [str(tag) for tag in sys_tags()]
    except ImportError:
        tags = []
    projects = {name: project(index, name, context) for name in asked["names"]}
    python = ".".join(map(str, sys.version_info[:3]))
    print(json.dumps({"index": index, "python": python, "tags": tags, "projects": projects}))

main()
"""


@dataclass(frozen=True)
class Release:
    version: str
    released: str  # ISO 8601 UTC of its first upload, "" when the index does not say
    sha256: str  # of the wheel pip would install on the environment, "" when none


@dataclass(frozen=True)
class IndexAnswer:
    index: str
    python: str
    tags: list[str]
    projects: dict[str, dict[str, Any]]

    def releases(self, name: str) -> dict[str, Release] | None:
        """The installable releases of `name` by version; None when the index has no such
        project."""
        answer = self.projects.get(name) or {}
        if answer.get("missing"):
            return None
        ranks = {tag: rank for rank, tag in enumerate(self.tags)}
        files: dict[str, list[list[Any]]] = {}
        for entry in answer.get("files") or []:
            version = _version_of(name, str(entry[0]))
            if version is not None and not entry[4] and _accepts(entry[3], self.python):
                files.setdefault(version, []).append(entry)
        return {version: _release(version, found, ranks) for version, found in files.items()}


def query_index(
    executor: Executor, python: str, index_url: str | None, names: list[str]
) -> IndexAnswer:
    """Ask the index, from the environment through `python`, about each package of `names`."""
    request = json.dumps({"index": index_url or "", "names": names}).encode()
    hide = redact_url_passwords  # an index URL may hold a password
    try:
        result = executor.stream_in([python, "-c", _QUERY], io.BytesIO(request))
        data = json.loads(result.out)
    except ExecutorError as exc:
        where = f"index {hide(index_url)}" if index_url else "pip's index"
        raise StackError(f"{where}: {hide(str(exc))}") from exc
    except ValueError as exc:
        raise StackError(f"{executor.url}: the index query printed no JSON: {exc}") from exc
    return IndexAnswer(
        str(data["index"]), str(data["python"]), list(data["tags"]), dict(data["projects"])
    )


def _version_of(name: str, filename: str) -> str | None:
    """The version a distribution file of project `name` holds, None for other files."""
    try:
        if filename.endswith(".whl"):
            project, version, _, _ = parse_wheel_filename(filename)
        elif filename.endswith((".tar.gz", ".zip")):
            project, version = parse_sdist_filename(filename)
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return str(version) if project == name else None


def _accepts(requires_python: str | None, python: str) -> bool:
    if not requires_python:
        return True
    try:
        return SpecifierSet(requires_python).contains(Version(python), prereleases=True)
    except InvalidSpecifier:
        return False  # pip skips such files too


def _release(version: str, files: list[list[Any]], ranks: dict[str, int]) -> Release:
    uploads = sorted(released_utc(str(f[2])) for f in files if f[2])
    best: tuple[int, str] | None = None
    for entry in files:
        if not str(entry[0]).endswith(".whl") or not entry[1]:
            continue
        tags = parse_wheel_filename(str(entry[0]))[3]
        rank = min((ranks[str(tag)] for tag in tags if str(tag) in ranks), default=None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, str(entry[1]))
    return Release(version, uploads[0] if uploads else "", best[1] if best else "")


def released_utc(text: str) -> str:
    """An upload time as ISO 8601 UTC (`...Z`), "" when it does not parse."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
