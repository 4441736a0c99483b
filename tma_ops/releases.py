"""Release trees on an environment: code in root/releases/<id>, shared paths in root/shared,
root/current a relative symlink to the live release, switched atomically.

```
root/releases/<id>/          one code tree per release; ids sort by time
root/shared/<path>           declared shared paths (uploads, a config file), linked into each
                             release as RELATIVE symlinks (releases/<id>/a/b -> ../../../shared/a/b)
root/current -> releases/<id>
root/.tma-releases.json      {"releases": {id: {"status", "created_at", "run_id", ...}}}
```
Every link is relative so that a snapshot of root restored into another environment's root keeps
pointing into that root, never back into production.

Each operation is one stdlib-only Python helper run through the executor (one round trip), so the
same code works over local://, ssh:// and docker://. Renames are rename(2): a new `current` is a
temporary symlink renamed over the old one, the marks file a temporary file renamed over the old
one. Adoption of a plain tree is staged in root.tma-adopt and finished by renaming it to root;
each of its steps looks at what is already done, so a rerun after a kill finishes the job.
"""

from __future__ import annotations

import json
import posixpath
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tma_ops.errors import ReleaseError
from tma_ops.executors import Executor
from tma_ops.faults import pause_point
from tma_ops.release_helpers import (
    ADOPT,
    BOOT,
    MAINTENANCE,
    MARK,
    PRELUDE,
    PREPARE,
    PRUNE,
    STATE,
    SWITCH,
)

RELEASE_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z(?:-[A-Za-z0-9_]{1,40})?$")
STATUSES = ("pending", "good", "bad")
INFO_FIELDS: dict[str, tuple[type, ...]] = {
    "run_id": (str, type(None)),
    "snapshot_id": (str, type(None)),
    "migrations": (list,),
    "previous": (str, type(None)),  # prepare records the live release instead
    "reason": (str,),
}
COPY_TIMEOUT = 3600.0  # seconds for `cp -a` of a release


@dataclass(frozen=True)
class Release:
    id: str
    status: str  # pending | good | bad, "unknown" for a directory without a mark
    created_at: str
    run_id: str | None
    snapshot_id: str | None
    migrations: list[str]
    previous: str | None
    reason: str
    is_current: bool
    migrations_recorded: bool = False  # False until the update said which migrations it ran


# --- pure parts -------------------------------------------------------------------------------


def new_release_id(now: datetime | None = None) -> str:
    """A fresh id that sorts by time: 20261129T010203Z-ab12cd."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def check_release_id(release_id: str) -> str:
    if not isinstance(release_id, str) or not RELEASE_ID.match(release_id):
        raise ReleaseError(
            f"release id {release_id!r} is not valid: expected a UTC time and an optional "
            "suffix, like 20261129T010203Z-ab12cd"
        )
    return release_id


def check_relative_path(path: str, what: str) -> str:
    parts = path.split("/") if isinstance(path, str) else []
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise ReleaseError(
            f"{what} {path!r} is not valid: expected a relative path inside the release without "
            "'.', '..', empty parts or a leading or trailing '/'"
        )
    return path


def check_shared_paths(paths: Iterable[str]) -> tuple[str, ...]:
    """Relative, normalised paths, none inside another (each becomes one link in a release)."""
    checked: list[str] = []
    for path in paths:
        check_relative_path(path, "shared path")
        for other in checked:
            if other == path or path.startswith(other + "/") or other.startswith(path + "/"):
                raise ReleaseError(f"shared paths {other!r} and {path!r} overlap")
        checked.append(path)
    return tuple(checked)


def shared_link_target(path: str) -> str:
    """Where releases/<id>/<path> points: up to root, then into shared/ (relative)."""
    depth = 2 + path.count("/")  # releases/<id>/ plus the path's own directories
    return "../" * depth + "shared/" + path


def release_id_of_link(target: str | None) -> str | None:
    """The release a `current` link target names ("releases/<id>"), else None."""
    if not target:
        return None
    parts = posixpath.normpath(target).split("/")
    if len(parts) == 2 and parts[0] == "releases" and RELEASE_ID.match(parts[1]):
        return parts[1]
    return None


def release_order(release: Release) -> tuple[str, datetime, str]:
    """Oldest first. Ids carry the time to the second only, so two releases made within the
    same second (an adoption right before a promotion) are ordered by their recorded time."""
    return (release.id[:16], _recorded_time(release.created_at), release.id)


def _recorded_time(created_at: str) -> datetime:
    try:
        return datetime.fromisoformat(created_at).astimezone(UTC)
    except ValueError:  # hand-made release without a mark: its id's second decides
        return datetime.min.replace(tzinfo=UTC)


def release_before(releases: Sequence[Release], release_id: str) -> Release | None:
    """The newest release older than `release_id` that is not marked bad."""
    by_id = {release.id: release for release in releases}
    if release_id not in by_id:
        older = [r for r in releases if r.id < release_id and r.status != "bad"]
        return max(older, key=release_order, default=None)
    limit = release_order(by_id[release_id])
    older = [r for r in releases if release_order(r) < limit and r.status != "bad"]
    return max(older, key=release_order, default=None)


def rollback_target_of(releases: Sequence[Release]) -> Release | None:
    """The newest release older than the current one that is not marked bad."""
    current = next((release for release in releases if release.is_current), None)
    return release_before(releases, current.id) if current is not None else None


def prune_choice(releases: Sequence[Release], keep: int) -> list[str]:
    """Ids to delete, oldest first: all but the newest `keep`, never current nor rollback target."""
    if keep < 0:
        raise ReleaseError(f"releases to keep must be 0 or more, got {keep}")
    target = rollback_target_of(releases)
    protected = {r.id for r in releases if r.is_current} | ({target.id} if target else set())
    ids = [release.id for release in sorted(releases, key=release_order)]
    beyond = ids[: max(len(ids) - keep, 0)]
    return [release_id for release_id in beyond if release_id not in protected]


def check_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """Fields a caller may record about a release, with their types checked."""
    for key, value in info.items():
        kinds = INFO_FIELDS.get(key)
        if kinds is None:
            raise ReleaseError(
                f"release field {key!r} is unknown: expected one of {', '.join(INFO_FIELDS)}"
            )
        items = value if isinstance(value, list) else []
        if not isinstance(value, kinds) or not all(isinstance(item, str) for item in items):
            raise ReleaseError(f"release field {key!r} has an unexpected value {value!r}")
    return dict(info)


def release_of(name: str, mark: object, current: str | None) -> Release:
    """A release read from its directory name and its (hand-editable) mark."""
    fields = mark if isinstance(mark, dict) else {}

    def text(key: str) -> str | None:
        value = fields.get(key)
        return value if isinstance(value, str) else None

    migrations = fields.get("migrations")
    return Release(
        id=name,
        status=text("status") or "unknown",
        created_at=text("created_at") or "",
        run_id=text("run_id"),
        snapshot_id=text("snapshot_id"),
        migrations=[str(item) for item in migrations] if isinstance(migrations, list) else [],
        previous=text("previous"),
        reason=text("reason") or "",
        is_current=name == current,
        migrations_recorded=isinstance(migrations, list),
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _entry(status: str, info: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"status": status, "created_at": _now(), "run_id": None}
    entry |= {"snapshot_id": None, "previous": None, "reason": ""}  # migrations: once known
    return entry | check_info(info)


class ReleaseTree:
    """The release layout under an environment's root, reached only through its executor."""

    def __init__(self, executor: Executor, root: str, shared: Sequence[str]) -> None:
        if not root.startswith("/"):
            raise ReleaseError(f"release root {root!r} is not valid: expected an absolute path")
        self.executor = executor
        self.root = posixpath.normpath(root)
        self.shared = check_shared_paths(shared)
        self._links = {path: shared_link_target(path) for path in self.shared}

    def exists(self) -> bool:
        return self.current_id() is not None

    def current_id(self) -> str | None:
        return release_id_of_link(self._call(STATE)["current"])

    def releases(self) -> list[Release]:
        state = self._call(STATE)
        current = release_id_of_link(state["current"])
        names = [name for name in state["dirs"] if RELEASE_ID.match(name)]
        found = [release_of(name, state["marks"].get(name), current) for name in names]
        return sorted(found, key=release_order)

    def adopt(self, release_id: str) -> Release:
        """Turn the plain tree at root into releases/<id>, current and marked good.

        A rerun after an interruption finishes the adoption under the id it began with (the
        returned release tells which)."""
        entry = _entry("good", {"reason": "adopted", "migrations": []})
        arguments: dict[str, Any] = {"id": check_release_id(release_id), "entry": entry}
        self._call(ADOPT, phase="stage", **arguments)
        pause_point("releases-adopt:staged")
        adopted = self._call(ADOPT, phase="finish", **arguments)["id"]
        return self._release(adopted)

    def prepare(self, release_id: str, **info: Any) -> str:
        """A copy of the current release as releases/<id>, shared paths linked, marked pending."""
        entry = _entry("pending", info)
        self._call(PREPARE, timeout=COPY_TIMEOUT, id=check_release_id(release_id), entry=entry)
        return posixpath.join(self.root, "releases", release_id)

    def switch(self, release_id: str) -> float:
        """Point current at the release (one atomic rename); the seconds it took."""
        started = time.monotonic()
        self._call(SWITCH, id=check_release_id(release_id))
        return time.monotonic() - started

    def mark(self, release_id: str, status: str, **info: Any) -> None:
        if status not in STATUSES:
            raise ReleaseError(
                f"release status {status!r} is not valid: expected {', '.join(STATUSES)}"
            )
        changes = {"status": status, **check_info(info)}
        self._call(MARK, id=check_release_id(release_id), entry=_entry(status, {}), changes=changes)

    def rollback_target(self) -> Release | None:
        return rollback_target_of(self.releases())

    def prune(self, keep: int) -> list[str]:
        """Delete the oldest release directories beyond `keep`; the ids deleted."""
        releases = self.releases()
        if not any(release.is_current for release in releases):
            raise ReleaseError(f"{self.executor.url}: {self.root} has no current release")
        chosen = prune_choice(releases, keep)
        if chosen:
            self._call(PRUNE, ids=chosen)
        return chosen

    def set_maintenance(
        self, release_ids: Iterable[str], file_name: str, content: str, on: bool
    ) -> None:
        """Write (on) or remove (off) a maintenance file at the top of each release."""
        ids = [check_release_id(release_id) for release_id in release_ids]
        name = check_relative_path(file_name, "maintenance file")
        self._call(MAINTENANCE, ids=ids, name=name, content=content, on=on)

    def _release(self, release_id: str) -> Release:
        found = [release for release in self.releases() if release.id == release_id]
        if not found:
            raise ReleaseError(
                f"{self.executor.url}: release {release_id} not found in {self.root}"
            )
        return found[0]

    def _call(self, script: str, *, timeout: float | None = None, **arguments: Any) -> Any:
        payload = json.dumps({"root": self.root, "links": self._links, **arguments})
        argv = [self.executor.python, "-c", BOOT, PRELUDE + script, payload]
        result = self.executor.run(argv, timeout=timeout, check=False)
        if not result.ok:
            lines = [line for line in result.err.strip().splitlines() if line.strip()]
            detail = lines[-1] if lines else f"release helper exited {result.rc}"
            raise ReleaseError(f"{self.executor.url}: {detail}")
        return json.loads(result.out) if result.out.strip() else None
