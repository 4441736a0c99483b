"""Archive stack: components are directories updated from `<name>-<version>.zip|.tar.gz` files.

The channel is a directory on the controller. Everything on the environment goes through the
executor (helper scripts run with the environment's Python), so the same code works over SSH.

apply() is restartable. Its only destructive steps are renames, in this order:
live -> .tma-old-<name>, staged -> live. A run that finds the live directory missing but
.tma-old-<name> present was interrupted between the two and puts the old directory back first.
"""

from __future__ import annotations

import json
import posixpath
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from tma_ops import config
from tma_ops.errors import IntegrityError, StackError, TmaError
from tma_ops.executors import Executor
from tma_ops.stacks import Component, Update
from tma_ops.streams import HashingReader
from tma_ops.updates import (
    newest_above,
    parse_archive_name,
    parse_archive_names,
    parse_version,
    same_version,
    semver_class,
)

MAX_VERSION_FILE = 64 * 1024

_LIST = r"""
import json, os, sys
top = sys.argv[1]
if not os.path.isdir(top):
    sys.exit("components directory not found: " + top)
names = [n for n in os.listdir(top) if not n.startswith(".")]
print(json.dumps(sorted(n for n in names if os.path.isdir(os.path.join(top, n)))))
"""

_EXTRACT = r"""
import os, shutil, sys, tarfile, zipfile
archive, dest = sys.argv[1], sys.argv[2]

def refuse_unsafe(path, what="member"):
    parts = path.replace("\\", "/").split("/")
    if path.startswith(("/", "\\")) or ".." in parts or (len(path) > 1 and path[1] == ":"):
        sys.exit("unsafe %s path in archive: %s" % (what, path))

def tar_members(tf):
    members = tf.getmembers()
    for m in members:
        refuse_unsafe(m.name)
        if m.issym() or m.islnk():
            refuse_unsafe(m.linkname, "link target")
        elif not (m.isfile() or m.isdir()):
            sys.exit("unsupported member type in archive: " + m.name)
    return members

shutil.rmtree(dest, ignore_errors=True)
if archive.endswith(".zip"):
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            refuse_unsafe(name)
        os.makedirs(dest)
        zf.extractall(dest)
else:
    with tarfile.open(archive, "r:gz") as tf:
        members = tar_members(tf)
        os.makedirs(dest)
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, members=members, filter="data")
        else:
            tf.extractall(dest, members=members)
"""

_RENAME = r"""
import os, sys
os.rename(sys.argv[1], sys.argv[2])
"""

_SWAP = r"""
import os, shutil, sys
live, staged, old = sys.argv[1:4]
if os.path.lexists(live):
    shutil.rmtree(old, ignore_errors=True)
    os.rename(live, old)
os.rename(staged, live)
"""

_REMOVE = r"""
import os, shutil, sys
for path in sys.argv[1:]:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
"""


@dataclass(frozen=True)
class _Paths:
    """Where one component's files live on the environment during an update."""

    live: str
    new: str  # extraction directory; holds `<name>/` once extracted
    staged: str  # new/<name>: what replaces live
    old: str
    incoming: str

    @classmethod
    def of(cls, components: str, name: str, ext: str) -> _Paths:
        new = posixpath.join(components, f".tma-new-{name}")
        return cls(
            live=posixpath.join(components, name),
            new=new,
            staged=posixpath.join(new, name),
            old=posixpath.join(components, f".tma-old-{name}"),
            incoming=posixpath.join(components, f".tma-incoming-{name}.{ext}"),
        )

    @property
    def temporaries(self) -> list[str]:
        return [self.new, self.incoming, self.incoming + ".partial"]


class ArchiveStack:
    def __init__(self, channel: Path, components_dir: str, version_file: str = "VERSION") -> None:
        self.channel = Path(channel)
        self.components_dir = components_dir
        self.version_file = version_file

    @classmethod
    def from_config(cls, spec: config.ArchiveStack) -> ArchiveStack:
        return cls(Path(spec.channel), spec.components_dir, spec.version_file)

    def inventory(self, executor: Executor, root: str) -> list[Component]:
        components = self._components(root)
        out = _run_script(executor, _LIST, components)
        names = json.loads(out)
        return [
            Component(name, self._read_version(executor, posixpath.join(components, name)))
            for name in names
        ]

    def available(self, installed: list[Component]) -> list[Update]:
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

    def apply(self, executor: Executor, root: str, update: Update) -> None:
        archive = parse_archive_name(update.artifact)
        if archive is None or archive.component != update.component:
            raise StackError(
                f"update {update.describe()}: {update.artifact!r} is not an archive "
                f"of {update.component}"
            )
        paths = _Paths.of(self._components(root), update.component, archive.ext)
        self._recover_interrupted_swap(executor, paths)
        if same_version(self._read_version(executor, paths.live), update.to_version):
            _run_script(executor, _REMOVE, *paths.temporaries, paths.old)
            return
        try:
            self._upload(executor, update, paths.incoming)
            _run_script(executor, _EXTRACT, paths.incoming, paths.new, error=update.artifact)
            self._check_staged(executor, update, paths.staged)
        except Exception:
            with suppress(TmaError):  # keep the original error; leftovers are cleared next run
                _run_script(executor, _REMOVE, *paths.temporaries)
            raise
        _run_script(executor, _SWAP, paths.live, paths.staged, paths.old)
        _run_script(executor, _REMOVE, paths.old, *paths.temporaries)

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

    def _recover_interrupted_swap(self, executor: Executor, paths: _Paths) -> None:
        if executor.exists(paths.live):
            return
        if not executor.exists(paths.old):
            raise StackError(f"{paths.live}: component not installed")
        _run_script(executor, _RENAME, paths.old, paths.live)

    def _upload(self, executor: Executor, update: Update, incoming: str) -> None:
        source = self.channel / update.artifact
        changed = f"channel archive {source} changed since it was planned"
        try:
            handle = source.open("rb")
        except FileNotFoundError as exc:
            raise IntegrityError(f"{changed}: it is gone") from exc
        with handle:
            reader = HashingReader(handle)
            executor.put(incoming, reader)
        if reader.sha256 != update.sha256:
            raise IntegrityError(changed)

    def _check_staged(self, executor: Executor, update: Update, staged: str) -> None:
        if not executor.exists(staged):
            raise StackError(
                f"archive {update.artifact}: no top-level directory '{update.component}/'"
            )
        found = self._read_version(executor, staged)
        if not same_version(found, update.to_version):
            raise StackError(
                f"archive {update.artifact}: contains {update.component} {found}, "
                f"expected {update.to_version}"
            )


def _run_script(executor: Executor, script: str, *args: str, error: str = "") -> str:
    result = executor.run([executor.python, "-c", script, *args], check=False)
    if not result.ok:
        lines = result.err.strip().splitlines()
        reason = lines[-1] if lines else f"exit code {result.rc}"
        where = error or (args[0] if args else "")
        raise StackError(f"{executor.url}: {where}: {reason}")
    return result.out


def _sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        reader = HashingReader(handle)
        reader.drain()
    return reader.sha256
