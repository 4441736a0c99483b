"""The docker stack's pure parts: image references, container names per environment, the engine
chosen, and the settings a recreated container keeps from its inspect data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tma_ops.config import load_inventory
from tma_ops.errors import InventoryError, StackError
from tma_ops.model import Environment
from tma_ops.model_stacks import DockerStack
from tma_ops.stacks.docker import DockerDriver, same_repository, split_reference
from tma_ops.stacks.docker_recreate import (
    anonymous_volumes,
    container_config,
    creation_request,
    network_endpoints,
)

pytestmark = pytest.mark.unit

DEMO = Path(__file__).parents[2] / "inventories" / "demo" / "tma.yaml"
OLD_ID = "0123456789ab" + "c" * 52


def env(executor: str, root: str = "/srv/site", docker_host: str | None = None) -> Environment:
    return Environment.model_validate(
        {
            "executor": {"url": executor, "docker_host": docker_host},
            "root": root,
            "database": {"engine": "sqlite", "path": "/srv/site/site.sqlite"},
            "smoke": [{"url": "http://127.0.0.1/"}],
        }
    )


def driver(container: str, docker_host: str | None = None) -> DockerDriver:
    service = {"name": "web", "container": container, "image": "shop/web"}
    stack = {"kind": "docker", "services": [service], "docker_host": docker_host}
    return DockerDriver.from_config(DockerStack.model_validate(stack))


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("nginx:1.25.3-alpine", ("nginx", "1.25.3-alpine")),
        ("registry.example:5000/shop/web:2.1", ("registry.example:5000/shop/web", "2.1")),
        ("registry.example:5000/shop/web", ("registry.example:5000/shop/web", "latest")),
        ("shop/web:1.0@sha256:" + "a" * 64, ("shop/web", "1.0")),
        ("shop/web@sha256:" + "a" * 64, ("shop/web", "")),
    ],
)
def test_an_image_reference_splits_into_repository_and_tag(
    reference: str, expected: tuple[str, str]
) -> None:
    assert split_reference(reference) == expected


def test_the_default_registry_names_one_repository_several_ways() -> None:
    assert same_repository("nginx", "docker.io/library/nginx")
    assert same_repository("shop/web", "docker.io/shop/web")
    assert not same_repository("shop/web", "registry.example/shop/web")


@pytest.mark.parametrize(
    ("template", "environment", "name"),
    [
        ("{executor}", env("docker://Shop-Staging"), "Shop-Staging"),
        (
            "{executor}-worker",
            env("ssh://deploy@shop-staging.example:2222"),
            "shop-staging.example-worker",
        ),
        ("{root}-web-1", env("ssh://deploy@host", "/srv/shop-staging/"), "shop-staging-web-1"),
        ("shop-web", env("local://", "relative/dir"), "shop-web"),
    ],
)
def test_each_environment_names_the_services_container(
    template: str, environment: Environment, name: str
) -> None:
    stack = driver(template)
    assert stack.container_name(stack.services["web"], environment) == name


def test_a_placeholder_the_environment_does_not_give_is_an_error() -> None:
    stack = driver("{executor}-web")
    with pytest.raises(StackError, match=r"uses \{executor\}, which environment local:// does"):
        stack.container_name(stack.services["web"], env("local://"))


def test_the_engine_is_the_stacks_else_the_environments_and_an_ssh_one_must_be_named() -> None:
    assert driver("web", "tcp://10.0.0.5:2375").engine_url(
        env("docker://a", docker_host="unix:///x")
    ) == ("tcp://10.0.0.5:2375")
    assert driver("web").engine_url(env("docker://a", docker_host="unix:///x")) == "unix:///x"
    assert driver("web").engine_url(env("docker://a")) is None  # DOCKER_HOST, else the socket
    with pytest.raises(StackError, match="set docker_host on the executor"):
        driver("web").engine_url(env("ssh://deploy@host"))


def docker_site(stack: dict[str, Any]) -> str:
    document = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    document["sites"]["blog"]["stack"] = stack
    return yaml.safe_dump(document, sort_keys=False)


@pytest.mark.parametrize(
    ("service", "said"),
    [
        (
            {"container": "{environment}-web", "image": "shop/web"},
            "unknown placeholder {environment}",
        ),
        ({"container": "web", "image": "shop/web:1.0"}, "without tag or digest"),
        ({"container": "web", "image": "shop/web", "port": 0}, "port"),
    ],
)
def test_a_bad_service_in_an_inventory_is_one_line_naming_it(
    tmp_path: Path, service: dict[str, Any], said: str
) -> None:
    path = tmp_path / "tma.yaml"
    path.write_text(docker_site({"kind": "docker", "services": [{"name": "web", **service}]}))
    with pytest.raises(InventoryError) as bad:
        load_inventory(path)
    message = str(bad.value)
    assert "\n" not in message and said in message and "services" in message


def test_two_services_of_one_name_are_refused(tmp_path: Path) -> None:
    web = {"name": "web", "container": "web", "image": "shop/web"}
    path = tmp_path / "tma.yaml"
    path.write_text(docker_site({"kind": "docker", "services": [web, web]}))
    with pytest.raises(InventoryError, match="service 'web' is named twice"):
        load_inventory(path)


IMAGE: dict[str, Any] = {
    "Env": ["PATH=/usr/bin:/bin", "APP_VERSION=1.0"],
    "Cmd": ["python3", "/srv/app/server.py"],
    "Entrypoint": None,
    "WorkingDir": "/srv/app",
    "User": "",
    "Labels": {"org.example.release": "1.0"},
    "ExposedPorts": {"8000/tcp": {}},
    "Volumes": {"/srv/cache": {}},
    "Healthcheck": {"Test": ["CMD", "true"]},
}


def old_container(**changes: Any) -> dict[str, Any]:
    config = {
        **IMAGE,
        "Hostname": OLD_ID[:12],
        "Image": "shop/web:1.0",
        "Env": [*IMAGE["Env"], "SITE_NAME=shop"],
        "Labels": {**IMAGE["Labels"], "org.example.role": "web"},
        "ExposedPorts": {**IMAGE["ExposedPorts"], "9000/tcp": {}},
        "Volumes": {**IMAGE["Volumes"], "/srv/uploads": {}},
        **changes,
    }
    return {
        "Id": OLD_ID,
        "Config": config,
        "HostConfig": {
            "Binds": ["shop-data:/srv/data", "/etc/shop:/srv/conf:ro"],
            "NetworkMode": "front",
        },
        "Mounts": [
            {"Type": "volume", "Name": "shop-data", "Destination": "/srv/data", "RW": True},
            {"Type": "bind", "Source": "/etc/shop", "Destination": "/srv/conf", "RW": False},
            {"Type": "volume", "Name": "f" * 64, "Destination": "/srv/cache", "RW": True},
            {"Type": "volume", "Name": "e" * 64, "Destination": "/srv/uploads", "RW": False},
        ],
        "NetworkSettings": {
            "Networks": {
                "front": {"Aliases": ["web", OLD_ID[:12]], "IPAMConfig": None},
                "back": {"Aliases": [OLD_ID[:12]], "IPAMConfig": {"IPv4Address": "10.1.0.9"}},
            }
        },
    }


def test_the_new_container_keeps_its_own_settings_and_takes_the_new_images_defaults() -> None:
    config = container_config(old_container(), IMAGE, "shop/web:1.1")
    assert config["Image"] == "shop/web:1.1"
    assert config["Env"] == ["SITE_NAME=shop"]
    assert config["Labels"] == {"org.example.role": "web"}
    assert config["ExposedPorts"] == {"9000/tcp": {}}
    assert config["Volumes"] == {"/srv/uploads": {}}
    for key in ("Cmd", "Entrypoint", "WorkingDir", "User", "Healthcheck", "Hostname"):
        assert key not in config, key


def test_settings_given_to_the_container_itself_stay() -> None:
    own = {
        "Cmd": ["gunicorn", "app"],
        "WorkingDir": "/app",
        "User": "www-data",
        "Hostname": "web-1",
    }
    config = container_config(old_container(**own), IMAGE, "shop/web:1.1")
    assert {key: config[key] for key in own} == own


def test_unnamed_volumes_are_passed_on_by_name_and_named_ones_stay_in_the_binds() -> None:
    assert anonymous_volumes(old_container()) == [
        f"{'f' * 64}:/srv/cache",
        f"{'e' * 64}:/srv/uploads:ro",
    ]


def test_the_first_network_is_given_at_creation_and_the_others_after() -> None:
    body, later = creation_request(old_container(), IMAGE, "shop/web:1.1")
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"front": {"Aliases": ["web"]}}}
    assert later == {"back": {"IPAMConfig": {"IPv4Address": "10.1.0.9"}}}
    assert body["HostConfig"]["Binds"][:2] == ["shop-data:/srv/data", "/etc/shop:/srv/conf:ro"]
    assert len(body["HostConfig"]["Binds"]) == 4


def test_a_container_without_its_own_network_keeps_its_mode_only() -> None:
    old = old_container()
    old["HostConfig"]["NetworkMode"] = "none"
    assert network_endpoints(old) == {}
