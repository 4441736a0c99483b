"""pytest fixtures: a private Docker engine and containers of the Debian site image.

A test module uses them with `pytest_plugins = ["harness.docker_fixtures"]`. They skip, with the
reason, when the machine cannot run them (not root, no Docker engine installed): under CI=true
the suite turns such a skip into a failure.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker.errors
import pytest

from harness.docker_engine import (
    DockerEngine,
    HarnessUnavailable,
    remove_tree,
    site_image,
    start_dockerd,
    stop_dockerd,
)
from tma_ops.executors.docker import DockerExecutor
from tma_ops.model import ExecutorSpec

SITE_MOUNT = "/srv/site"


@dataclass(frozen=True)
class Container:
    name: str
    docker_host: str
    host_dir: Path  # bind-mounted at `mount` in the container
    mount: str

    @property
    def url(self) -> str:
        return f"docker://{self.name}"

    @property
    def spec(self) -> ExecutorSpec:
        return ExecutorSpec(url=self.url, docker_host=self.docker_host)


def require_docker() -> None:
    if os.geteuid() != 0:
        pytest.skip("the Docker tests start a private dockerd (and debootstrap): they need root")
    missing = [tool for tool in ("dockerd", "containerd", "runc") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: install docker.io (scripts/test-deps)")


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    require_docker()
    base = Path(tempfile.mkdtemp(prefix="tma-dockerd-"))  # short: socket paths have a limit
    engine = start_dockerd(base)
    try:
        yield engine
    finally:
        stop_dockerd(engine)
        remove_tree(base)


@pytest.fixture(scope="session")
def site_image_tag(docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> str:
    try:
        return site_image(docker_engine, tmp_path_factory.mktemp("site-image"))
    except HarnessUnavailable as exc:
        pytest.skip(str(exc))


def run_container(
    engine: DockerEngine, image: str, name: str, host_dir: Path, mount: str
) -> Container:
    """A running container of `image` that only sleeps (init reaps what the tests start in it),
    without network, with `host_dir` bind-mounted at `mount`."""
    remove_container(engine, name)
    engine.client().containers.run(
        image,
        ["sleep", "infinity"],
        name=name,
        detach=True,
        init=True,
        network_mode="none",
        volumes={str(host_dir): {"bind": mount, "mode": "rw"}},
    )
    return Container(name, engine.host, host_dir, mount)


def remove_container(engine: DockerEngine, name: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        engine.client().containers.get(name).remove(force=True)


@pytest.fixture(scope="session")
def site_container(
    docker_engine: DockerEngine, site_image_tag: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    """The app container of a Docker-based site: its files live in a bind-mounted directory."""
    files = tmp_path_factory.mktemp("site-files")
    yield run_container(docker_engine, site_image_tag, "tma-site", files, SITE_MOUNT)
    remove_container(docker_engine, "tma-site")


@pytest.fixture(scope="session")
def db_container(
    docker_engine: DockerEngine, site_image_tag: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    """The DB container of a Docker-based site (the image has MariaDB; the test starts it)."""
    dumps = tmp_path_factory.mktemp("db-dumps")
    yield run_container(docker_engine, site_image_tag, "tma-db", dumps, "/srv/dumps")
    remove_container(docker_engine, "tma-db")


@pytest.fixture(scope="session")
def stopped_container(docker_engine: DockerEngine) -> Iterator[str]:
    """A container created and never started, from a one-file image (quick even on vfs)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    client = docker_engine.client()
    client.api.import_image_from_data(data.getvalue(), repository="tma-tiny", tag="1")
    remove_container(docker_engine, "tma-stopped")
    client.containers.create("tma-tiny:1", ["/hello"], name="tma-stopped", network_mode="none")
    yield "docker://tma-stopped"
    remove_container(docker_engine, "tma-stopped")


def docker_site_executor(request: pytest.FixtureRequest) -> DockerExecutor:
    """An executor factory for conformance suites whose factories take the fixture request."""
    container: Container = request.getfixturevalue("site_container")
    return DockerExecutor(container.spec)
