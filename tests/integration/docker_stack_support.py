"""The docker stack's case for the driver conformance suite, and what its own tests share.

A service `web` runs the test web app (harness.docker_images) from `tma-test/web:<tag>` on the
private engine, in a container without network whose data lives in a named volume. The
environment's executor is that container (docker://NAME), and the service's container is named
`{executor}`: a Docker-based site whose app container is also where tma-ops runs commands.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest
from harness.docker_engine import DockerEngine, cached_rootfs, recipe_hash
from harness.docker_images import APP, PORT, import_service_image, service_rootfs
from stack_conformance_support import DriverCase

from tma_ops.executors.docker import DockerExecutor
from tma_ops.model import Environment
from tma_ops.model_stacks import DockerStack
from tma_ops.stacks.docker import DockerDriver

WEB = "tma-test/web"
DATA = "/srv/data"  # the named volume's mount point, the environment's root
HEALTHY = 'HEALTHCHECK --interval=1s --timeout=3s --retries=3 CMD ["python3", "{app}", "--check"]'
SICK = (
    "HEALTHCHECK --interval=1s --timeout=3s --retries=1 "
    'CMD ["python3", "-c", "raise SystemExit(\'database unreachable\')"]'
)
COMMON = ["VOLUME /srv/cache", "WORKDIR /srv/app"]
# The tags on the engine; `-crash`, `-mute`, `-sick` are variants, never offered to 1.0.
TAGS = {
    "1.0": [*COMMON, "ENV APP_VERSION=1.0", "LABEL org.example.release=1.0"],
    "1.1": [
        *COMMON,
        "ENV APP_VERSION=1.1",
        "LABEL org.example.release=1.1",
        HEALTHY.format(app=APP),
    ],
    "1.1-crash": [*COMMON, "ENV APP_VERSION=1.1-crash", f'CMD ["python3", "{APP}", "--fail"]'],
    "1.1-mute": [*COMMON, "ENV APP_VERSION=1.1-mute", f'CMD ["python3", "{APP}", "--mute"]'],
    "1.1-sick": [*COMMON, "ENV APP_VERSION=1.1-sick", SICK],
}


@pytest.fixture(scope="session")
def docker_web_images(
    docker_engine: DockerEngine, site_image_tag: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """tag -> image id of the web app's tags (site_image_tag: the root filesystem is cached)."""
    rootfs = service_rootfs(cached_rootfs(tmp_path_factory.mktemp("web-rootfs"), recipe_hash()))
    return {
        tag: import_service_image(docker_engine, rootfs, f"{WEB}:{tag}", changes)
        for tag, changes in TAGS.items()
    }


def web_driver(
    container: str = "{executor}",
    image: str = WEB,
    ready_timeout: float = 30,
    docker_host: str | None = None,
) -> DockerDriver:
    """The driver of a stack whose one service, `web`, answers on PORT."""
    service = {"name": "web", "container": container, "image": image, "port": PORT}
    stack = {"kind": "docker", "services": [service], "ready_timeout": ready_timeout}
    stack |= {"docker_host": docker_host} if docker_host else {}
    return DockerDriver.from_config(DockerStack.model_validate(stack))


def environment(engine: DockerEngine, executor: str, root: str = DATA) -> Environment:
    return Environment.model_validate(
        {
            "executor": {"url": executor, "docker_host": engine.host},
            "root": root,
            "database": {"engine": "sqlite", "path": f"{root}/site.sqlite"},
            "smoke": [{"url": f"http://127.0.0.1:{PORT}/"}],
        }
    )


def run_web(engine: DockerEngine, name: str, image: str, **settings: Any) -> None:
    """Run the web app as a service would be run, and wait until it answers."""
    remove_service(engine, name)
    options: dict[str, Any] = {
        "name": name,
        "detach": True,
        "init": True,
        "network_mode": "none",
        "volumes": {f"{name}-data": {"bind": DATA, "mode": "rw"}},
        **settings,
    }
    engine.client().containers.run(image, **options)
    wait_answering(engine, name)


def served(engine: DockerEngine, name: str) -> str:
    """What the web app in container `name` answers."""
    executor = DockerExecutor(environment(engine, f"docker://{name}").executor)
    return executor.run(["python3", APP, "--get"], timeout=30).out.strip()


def wait_answering(engine: DockerEngine, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    container = engine.client().containers.get(name)
    while container.exec_run(["python3", APP, "--get"]).exit_code != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} does not answer: {container.logs(tail=5)!r}")
        time.sleep(0.2)


def remove_service(engine: DockerEngine, name: str) -> None:
    """The service's containers (and any left by an update) and its data volume."""
    client = engine.client()
    for container in (name, f"{name}.tma-old"):
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(container).remove(force=True, v=True)
    with contextlib.suppress(docker.errors.NotFound):
        client.volumes.get(f"{name}-data").remove(force=True)


@contextlib.contextmanager
def web_service(engine: DockerEngine, name: str, image: str, **settings: Any) -> Iterator[str]:
    """The web app of `image` running as container `name`, removed afterwards."""
    run_web(engine, name, image, **settings)
    try:
        yield name
    finally:
        remove_service(engine, name)


@pytest.fixture
def docker_driver_case(
    docker_engine: DockerEngine, docker_web_images: dict[str, str]
) -> Iterator[DriverCase]:
    with web_service(docker_engine, "tma-dstack-case", f"{WEB}:1.0") as name:
        yield DriverCase(
            kind="docker",
            driver=web_driver(),
            env=environment(docker_engine, f"docker://{name}"),
            component="web",
            to_version="1.1",
            served=lambda: served(docker_engine, name),
        )
