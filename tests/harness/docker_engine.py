"""A private Docker engine for tests, and the Debian site image, built once per machine.

The engine runs as TESTING.md says: vfs storage, no iptables, no bridge, its own data root, exec
root, pid file and socket, so several sessions can run one each. There is no image registry: the
site image is a debootstrap root filesystem, cached as a tarball and `docker import`ed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3-minimal", "python3", "mariadb-server", "mariadb-client", "ca-certificates")
SITE_REPOSITORY, SITE_VERSION = "tma-site", "bookworm"
SITE_TAG = f"{SITE_REPOSITORY}:{SITE_VERSION}"
HASH_LABEL = "org.tma-ops.rootfs-hash"
CACHE_DIR = Path(os.environ.get("TMA_TEST_IMAGE_CACHE", "/var/cache/tma-ops-test-images"))
RECIPE_REVISION = 1  # bump when the preparation of the root filesystem below changes
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HarnessError(RuntimeError):
    """The test infrastructure could not be set up; the message says why."""


class HarnessUnavailable(HarnessError):
    """A tool or privilege the harness needs is missing on this machine (tests skip on it)."""


@dataclass
class DockerEngine:
    host: str  # unix:///.../docker.sock, for DockerClient(base_url=...) and ExecutorSpec
    data_root: Path
    exec_root: Path
    log: Path
    process: subprocess.Popen[bytes]

    def client(self, timeout: int = 120) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, timeout=timeout)


def start_dockerd(base: Path, timeout: float = 60) -> DockerEngine:
    """Start dockerd with everything under `base` and wait until its API answers."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise HarnessUnavailable("dockerd not found: install docker.io (scripts/test-deps)")
    base.mkdir(parents=True, exist_ok=True)
    config = base / "daemon.json"
    config.write_text("{}\n")
    engine_paths = {"data_root": base / "data", "exec_root": base / "exec", "log": base / "log"}
    argv = [
        dockerd,
        *("--data-root", str(engine_paths["data_root"])),
        *("--exec-root", str(engine_paths["exec_root"])),
        *("--pidfile", str(base / "dockerd.pid"), "--config-file", str(config)),
        *("--storage-driver", "vfs", "--iptables=false", "--ip-masq=false", "--bridge=none"),
        *("--shutdown-timeout", "3", "-H", f"unix://{base / 'docker.sock'}"),
    ]
    with open(engine_paths["log"], "wb") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    engine = DockerEngine(host=f"unix://{base / 'docker.sock'}", process=process, **engine_paths)
    try:
        _wait_for_api(engine, timeout)
    except BaseException:
        stop_dockerd(engine)
        raise
    return engine


def _wait_for_api(engine: DockerEngine, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if engine.process.poll() is not None:
            raise HarnessError(
                f"dockerd exited {engine.process.returncode} at start: {_tail(engine.log)}"
            )
        with contextlib.suppress(docker.errors.DockerException, OSError):
            if engine.client(timeout=5).ping():
                return
        if time.monotonic() > deadline:
            raise HarnessError(f"dockerd did not answer within {timeout}s: {_tail(engine.log)}")
        time.sleep(0.2)


def stop_dockerd(engine: DockerEngine, timeout: float = 30) -> None:
    """Stop the engine (it stops its containers and its containerd), killing it if it hangs."""
    if engine.process.poll() is None:
        engine.process.terminate()
        try:
            engine.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(engine.process.pid, signal.SIGKILL)  # the session started for it
            engine.process.wait()


def remove_tree(path: Path) -> None:
    """rm -rf, but never through a mount point still under `path` (a rootfs may hold /proc)."""
    mounts = _mounts_under(path)
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    if left := _mounts_under(path):
        raise HarnessError(f"not removing {path}: still mounted: {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=True)


def site_image(engine: DockerEngine, base: Path) -> str:
    """The tag of the Debian site image in `engine`, importing the cached root filesystem (built
    with debootstrap under `base` when the cache has none for this recipe)."""
    digest = recipe_hash()
    client = engine.client(timeout=600)
    with contextlib.suppress(docker.errors.ImageNotFound):
        if client.images.get(SITE_TAG).labels.get(HASH_LABEL) == digest:
            return SITE_TAG
    tarball = cached_rootfs(base, digest)
    client.api.import_image(
        src=str(tarball),
        repository=SITE_REPOSITORY,
        tag=SITE_VERSION,
        changes=[f"LABEL {HASH_LABEL}={digest}", f"ENV PATH={PATH}", 'CMD ["sleep", "infinity"]'],
    )
    return SITE_TAG


def recipe_hash() -> str:
    recipe = repr((SUITE, MIRROR, sorted(PACKAGES), "minbase", RECIPE_REVISION))
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def cached_rootfs(base: Path, digest: str) -> Path:
    """CACHE_DIR/rootfs-<digest>.tar, built once; a lock keeps parallel sessions to one build."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"rootfs-{SUITE}-{digest}.tar"
    with _locked(CACHE_DIR / ".lock"):
        if not tarball.exists():
            _build_rootfs_tarball(base / "rootfs", tarball)
    return tarball


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build_rootfs_tarball(rootfs: Path, tarball: Path) -> None:
    if os.geteuid() != 0:
        raise HarnessUnavailable("building the site image with debootstrap needs root")
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise HarnessUnavailable("debootstrap not found: install it (scripts/test-deps)")
    remove_tree(rootfs)
    include = "--include=" + ",".join(PACKAGES)
    argv = [debootstrap, "--variant=minbase", include, SUITE, str(rootfs), MIRROR]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise HarnessError(_debootstrap_failure(proc, rootfs))
        _trim(rootfs)
        partial = tarball.with_name(tarball.name + ".partial")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        os.replace(partial, tarball)
    finally:
        remove_tree(rootfs)


def _debootstrap_failure(proc: subprocess.CompletedProcess[str], rootfs: Path) -> str:
    lines = (proc.stderr + proc.stdout).splitlines()
    errors = [line for line in lines if line.startswith(("E:", "W:"))] or lines[-3:]
    log = rootfs / "debootstrap" / "debootstrap.log"
    detail = f"; debootstrap.log ends: {_tail(log)}" if log.exists() else ""
    return (
        f"debootstrap {SUITE} from {MIRROR} failed (exit {proc.returncode}): "
        f"{' | '.join(errors) or 'no output'}{detail}"
    )


def _trim(rootfs: Path) -> None:
    """Drop the downloaded packages and package lists: they are half the size of the image."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"):
        for path in rootfs.glob(pattern):
            if path.is_file():
                path.unlink()


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    return [point for point in points if point.startswith(prefix) or point + "/" == prefix]


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror})"
    return " | ".join(text[-lines:]) or "(empty)"
