"""Release trees on real directories, through the local executor and over SSH (a separate host in
a network namespace; it shares this machine's filesystem, so the tests look at the result
directly): adoption, prepare + switch, rollback targets, prune, maintenance files, a root archived
and restored elsewhere, and adoptions killed at every step then run again."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

import pytest
from harness.fixtures import ssh_host  # noqa: F401 - the session host, started on first use
from harness.sshd import SshServer

from tma_ops.errors import ReleaseError
from tma_ops.executors import Executor, Result
from tma_ops.executors.local import LocalExecutor
from tma_ops.executors.ssh import SshExecutor
from tma_ops.release_helpers import ADOPT_SUFFIX, MARKS_FILE
from tma_ops.releases import ReleaseTree
from tma_ops.streams import Readable

pytestmark = pytest.mark.integration

SHARED = ["wp-config.php", "wp-content/uploads"]
A, B, C, D, E = (f"2026010{n}T000000Z-r{n}" for n in range(1, 6))
CONFIG = "<?php define('DB_NAME', 'site');\n"
PHOTO = b"\xff\xd8 a photo"


def plain_site(root: Path) -> Path:
    """A small WordPress-like tree, not yet kept as releases."""
    (root / "wp-content" / "uploads" / "2026").mkdir(parents=True)
    (root / "wp-content" / "plugins" / "hello").mkdir(parents=True)
    (root / "index.php").write_text("<?php // v1\n")
    (root / "wp-config.php").write_text(CONFIG)
    (root / "wp-config.php").chmod(0o640)
    (root / "wp-content" / "uploads" / "2026" / "photo.jpg").write_bytes(PHOTO)
    (root / "wp-content" / "plugins" / "hello" / "hello.php").write_text("<?php // hello 1.0\n")
    return root


@pytest.fixture(params=["local", "ssh"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    if request.param == "local":
        yield LocalExecutor()
        return
    server: SshServer = request.getfixturevalue("ssh_host")
    with SshExecutor(server.spec()) as remote:
        yield remote


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return plain_site(tmp_path / "site")


@pytest.fixture
def tree(executor: Executor, root: Path) -> ReleaseTree:
    return ReleaseTree(executor, str(root), SHARED)


def marks(root: Path) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, dict[str, object]]] = json.loads((root / MARKS_FILE).read_text())
    return data["releases"]


def assert_layout(root: Path, current: str, releases: list[str]) -> None:
    """root holds exactly `releases`, each with relative links into shared/; current is right."""
    assert os.readlink(root / "current") == f"releases/{current}"
    assert sorted(path.name for path in (root / "releases").iterdir()) == releases
    assert (root / "shared" / "wp-config.php").read_text() == CONFIG
    assert (root / "shared" / "wp-content" / "uploads" / "2026" / "photo.jpg").read_bytes() == PHOTO
    for release in releases:
        top = root / "releases" / release
        assert os.readlink(top / "wp-config.php") == "../../shared/wp-config.php"
        assert os.readlink(top / "wp-content" / "uploads") == "../../../shared/wp-content/uploads"
        assert (top / "wp-content" / "plugins" / "hello" / "hello.php").is_file()
    assert not Path(str(root) + ADOPT_SUFFIX).exists()
    assert not [path for path in root.rglob("*.tma-new")] + list(root.glob("*.partial"))


def test_adopt_turns_the_plain_tree_into_the_first_release(tree: ReleaseTree, root: Path) -> None:
    assert (tree.exists(), tree.current_id(), tree.releases()) == (False, None, [])
    release = tree.adopt(A)
    assert (release.id, release.status, release.is_current) == (A, "good", True)
    assert (release.reason, release.migrations, release.migrations_recorded) == (
        "adopted",
        [],
        True,
    )
    assert_layout(root, A, [A])
    assert (root / "current" / "index.php").read_text() == "<?php // v1\n"
    assert (root / "current" / "wp-config.php").read_text() == CONFIG
    assert marks(root)[A]["status"] == "good"
    assert (tree.exists(), tree.current_id()) == (True, A)
    assert tree.adopt(A) == release  # already done: nothing to do
    assert tree.adopt(B) == release  # a rerun after a kill right at the end
    tree.prepare(B)
    with pytest.raises(ReleaseError, match=rf"{root} already holds releases \(current -> "):
        tree.adopt(C)


def test_adopt_refuses_a_tree_without_a_shared_path(executor: Executor, root: Path) -> None:
    tree = ReleaseTree(executor, str(root), [*SHARED, "wp-content/cache"])
    with pytest.raises(ReleaseError, match=f"shared path wp-content/cache not found in {root}$"):
        tree.adopt(A)
    assert (root / "index.php").is_file() and not (root / "releases").exists()
    assert not Path(str(root) + ADOPT_SUFFIX).exists()


def test_prepare_edit_and_switch(tree: ReleaseTree, root: Path) -> None:
    tree.adopt(A)
    path = tree.prepare(B, run_id="run-b", snapshot_id="snap-b", previous="ignored")
    assert path == f"{root}/releases/{B}"
    new = Path(path)
    assert (new / "wp-config.php").stat().st_mode & 0o777 == 0o640  # through the link
    assert (new / "index.php").stat().st_mtime == (
        root / "releases" / A / "index.php"
    ).stat().st_mtime
    (new / "index.php").write_text("<?php // v2\n")
    (new / "wp-content" / "uploads" / "2026" / "new.jpg").write_bytes(b"uploaded")
    release = {r.id: r for r in tree.releases()}[B]
    assert (release.status, release.previous, release.run_id) == ("pending", A, "run-b")
    assert (release.snapshot_id, release.is_current, release.migrations_recorded) == (
        "snap-b",
        False,
        False,
    )

    seconds = tree.switch(B)
    assert 0 < seconds < 30
    assert tree.current_id() == B
    assert (root / "current" / "index.php").read_text() == "<?php // v2\n"
    assert (root / "releases" / A / "index.php").read_text() == "<?php // v1\n"  # unchanged
    for name in ("wp-config.php", "wp-content/uploads/2026/new.jpg"):  # one file, not copies
        assert os.path.samefile(root / "releases" / A / name, root / "releases" / B / name)
    tree.mark(B, "good", migrations=["0002_add_field"])
    release = {r.id: r for r in tree.releases()}[B]
    assert (release.status, release.migrations, release.migrations_recorded) == (
        "good",
        ["0002_add_field"],
        True,
    )
    assert_layout(root, B, [A, B])


def test_prepare_again_replaces_an_interrupted_copy(tree: ReleaseTree, root: Path) -> None:
    tree.adopt(A)
    half = root / "releases" / B
    half.mkdir()
    (half / "half-copied.php").write_text("partial")
    tree.prepare(B)
    assert not (half / "half-copied.php").exists()
    assert (half / "index.php").read_text() == "<?php // v1\n"
    tree.prepare(B)  # a pending one may be prepared again
    tree.mark(B, "good")
    with pytest.raises(ReleaseError, match=f"release {B} already exists \\(good\\)"):
        tree.prepare(B)
    with pytest.raises(ReleaseError, match=f"release {A} is the current release"):
        tree.prepare(A)


def test_refusals_name_what_is_wrong(tree: ReleaseTree, root: Path) -> None:
    with pytest.raises(ReleaseError, match="is not a link into releases/: adopt the tree first"):
        tree.prepare(B)
    tree.adopt(A)
    missing = f"{root}/releases/{B}"
    with pytest.raises(ReleaseError, match=f"release {B} has no directory {missing}$"):
        tree.switch(B)
    with pytest.raises(ReleaseError, match=f"release {B} has no directory"):
        tree.mark(B, "bad")
    with pytest.raises(ReleaseError, match="release status 'broken' is not valid"):
        tree.mark(A, "broken")
    with pytest.raises(ReleaseError, match=r"release id '\.\./etc' is not valid"):
        tree.switch("../etc")
    assert tree.current_id() == A
    (root / MARKS_FILE).write_text("[1, 2]")
    with pytest.raises(ReleaseError, match=f"cannot read {root}/{MARKS_FILE}"):
        tree.releases()


def promote(tree: ReleaseTree, release_id: str, status: str = "good") -> None:
    tree.prepare(release_id, run_id=release_id)
    tree.switch(release_id)
    tree.mark(release_id, status)


def test_rollback_target_skips_a_bad_release(tree: ReleaseTree, root: Path) -> None:
    tree.adopt(A)
    assert tree.rollback_target() is None
    promote(tree, B, "bad")
    promote(tree, C, "pending")
    target = tree.rollback_target()
    assert target is not None and target.id == A

    tree.switch(target.id)  # a code-only rollback
    tree.mark(C, "bad", reason="smoke test failed")
    assert tree.current_id() == A
    assert marks(root)[C] | {"created_at": ""} == {
        "status": "bad",
        "reason": "smoke test failed",
        "created_at": "",
        "run_id": C,
        "snapshot_id": None,
        "previous": B,
    }
    assert tree.rollback_target() is None  # nothing older than A


def test_a_code_only_rollback_is_quick(root: Path) -> None:
    tree = ReleaseTree(LocalExecutor(), str(root), SHARED)
    tree.adopt(A)
    promote(tree, B)
    timings = []
    for _ in range(5):
        started = time.monotonic()
        target = tree.rollback_target()
        assert target is not None
        tree.switch(target.id)
        tree.mark(B, "bad")
        timings.append(time.monotonic() - started)
        tree.switch(B)
        tree.mark(B, "good")
    assert statistics.median(timings) < 1.0


def test_prune_keeps_the_current_release_and_the_rollback_target(
    tree: ReleaseTree, root: Path
) -> None:
    tree.adopt(A)
    promote(tree, B)
    promote(tree, C, "bad")
    promote(tree, D)
    promote(tree, E)
    assert tree.prune(keep=1) == [A, B, C]  # D: the rollback target
    assert_layout(root, E, [D, E])
    assert sorted(marks(root)) == [D, E]
    assert tree.prune(keep=1) == []

    tree.switch(D)  # rolled back: E is newer than current
    tree.mark(E, "bad")
    assert tree.prune(keep=0) == [E]
    assert_layout(root, D, [D])
    assert tree.rollback_target() is None


def test_maintenance_files_on_and_off(tree: ReleaseTree, root: Path) -> None:
    tree.adopt(A)
    tree.prepare(B)
    page = "<?php $upgrading = time(); ?>\n"
    for _ in range(2):  # idempotent
        tree.set_maintenance([A, B], ".maintenance", page, on=True)
        for release in (A, B):
            assert (root / "releases" / release / ".maintenance").read_text() == page
    assert (root / "current" / ".maintenance").is_file()
    for _ in range(2):
        tree.set_maintenance([A, B], ".maintenance", page, on=False)
        assert not list((root / "releases").glob("*/.maintenance"))
    with pytest.raises(ReleaseError, match=f"release {C} has no directory"):
        tree.set_maintenance([A, C], ".maintenance", page, on=True)
    assert not (root / "releases" / A / ".maintenance").exists()  # all or nothing


def test_an_archived_root_restored_elsewhere_keeps_working_links(
    tree: ReleaseTree, executor: Executor, root: Path, tmp_path: Path
) -> None:
    tree.adopt(A)
    promote(tree, B)
    staging = tmp_path / "staging"
    staging.mkdir()
    archive = tmp_path / "root.tar"
    subprocess.run(["tar", "-C", str(root), "-cf", str(archive), "."], check=True)
    subprocess.run(["tar", "-C", str(staging), "-xf", str(archive)], check=True)

    config = staging / "current" / "wp-config.php"
    assert config.read_text() == CONFIG
    assert Path(os.path.realpath(config)).is_relative_to(staging)
    assert Path(os.path.realpath(staging / "current")).is_relative_to(staging)
    copy = ReleaseTree(executor, str(staging), SHARED)
    assert copy.current_id() == B
    promote(copy, C)
    (staging / "current" / "wp-config.php").write_text("staging config")
    assert (root / "current" / "wp-config.php").read_text() == CONFIG
    assert tree.current_id() == B and not (root / "releases" / C).exists()


def test_an_adoption_stopped_after_staging_finishes_when_run_again(
    tree: ReleaseTree, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(name: str) -> None:
        if name == "releases-adopt:staged":
            raise KeyboardInterrupt(name)

    monkeypatch.setattr("tma_ops.releases.pause_point", killed)
    with pytest.raises(KeyboardInterrupt):
        tree.adopt(A)
    assert not root.exists() and Path(str(root) + ADOPT_SUFFIX).is_dir()
    assert tree.exists() is False
    monkeypatch.undo()
    release = tree.adopt(B)  # a new id: the adoption finishes under the one it began with
    assert release.id == A and release.is_current
    assert_layout(root, A, [A])


class KilledAfter:
    """A local executor whose release helper for one adoption phase dies (like SIGKILL) before
    its `budget`+1-th change to the filesystem."""

    CRASH = """
import os as _os
_left = [{budget}]
def _counted(change):
    def run(*args, **kwargs):
        if _left[0] <= 0:
            _os._exit(137)
        _left[0] -= 1
        return change(*args, **kwargs)
    return run
for _name in ("mkdir", "makedirs", "rename", "replace", "symlink", "unlink", "rmdir", "open"):
    setattr(_os, _name, _counted(getattr(_os, _name)))
import builtins as _builtins
_builtins.open = _counted(_builtins.open)
"""

    def __init__(self, phase: str, budget: int) -> None:
        self.inner = LocalExecutor()
        self.url, self.python = self.inner.url, self.inner.python
        self.phase, self.budget, self.killed = phase, budget, False

    def run(self, argv: list[str], *, timeout: float | None = None, check: bool = True) -> Result:
        if len(argv) == 5 and json.loads(argv[4]).get("phase") == self.phase:
            argv = [*argv[:3], self.CRASH.format(budget=self.budget) + argv[3], argv[4]]
        result = self.inner.run(argv, timeout=timeout, check=check)
        self.killed = self.killed or result.rc == 137
        return result

    def stream_out(self, argv: list[str]) -> AbstractContextManager[BinaryIO]:
        return self.inner.stream_out(argv)

    def stream_in(self, argv: list[str], source: Readable) -> Result:
        return self.inner.stream_in(argv, source)

    def put(self, path: str, source: Readable) -> None:
        self.inner.put(path, source)

    def get(self, path: str) -> AbstractContextManager[BinaryIO]:
        return self.inner.get(path)

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)


@pytest.mark.parametrize("phase", ["stage", "finish"])
def test_an_adoption_killed_at_any_step_finishes_when_run_again(phase: str, tmp_path: Path) -> None:
    kills = 0
    for budget in range(200):
        root = plain_site(tmp_path / f"site-{budget}")
        dying = KilledAfter(phase, budget)
        try:
            ReleaseTree(dying, str(root), SHARED).adopt(A)
        except ReleaseError as exc:
            assert dying.killed, exc
        if not dying.killed:
            break  # the phase made fewer changes than the budget: every step was covered
        kills += 1
        staged = Path(str(root) + ADOPT_SUFFIX) / "releases" / A
        begun = staged.exists() or (root / "current").is_symlink()
        release = ReleaseTree(LocalExecutor(), str(root), SHARED).adopt(B)
        expected = A if begun else B  # finished under the id it began with
        assert (release.id, release.status, release.is_current) == (expected, "good", True)
        assert_layout(root, expected, [expected])
        assert (root / "current" / "wp-content" / "uploads" / "2026" / "photo.jpg").is_file()
    assert kills >= 5
