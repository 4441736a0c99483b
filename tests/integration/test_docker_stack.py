"""The docker stack on a real Docker engine: a service's container recreated on a new image tag
with its settings and data, or left as it was."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from docker_stack_support import (
    DATA,
    WEB,
    environment,
    served,
    web_driver,
    web_service,
)
from harness.docker_engine import DockerEngine
from stack_conformance_support import CONTEXT

from tma_ops.errors import IntegrityError, StackError
from tma_ops.stacks import Change, Update

pytestmark = pytest.mark.integration

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def container(engine: DockerEngine, name: str) -> dict[str, Any]:
    attrs: dict[str, Any] = engine.client().api.inspect_container(name)
    return attrs


def names_like(engine: DockerEngine, name: str) -> list[str]:
    found = engine.client().containers.list(all=True, filters={"name": name})
    return sorted(c.name for c in found)


def write(engine: DockerEngine, name: str, path: str, text: str) -> None:
    result = engine.client().containers.get(name).exec_run(["sh", "-c", f"echo {text} > {path}"])
    assert result.exit_code == 0, result.output


def read(engine: DockerEngine, name: str, path: str) -> str:
    script = 'read -r line < "$1" && echo "$line"'  # the image has sh, not cat
    result = engine.client().containers.get(name).exec_run(["sh", "-c", script, "sh", path])
    assert result.exit_code == 0, result.output
    return bytes(result.output).decode().strip()


def manual_update(images: dict[str, str], tag: str, repository: str = WEB) -> Update:
    return Update(
        component="web",
        from_version="1.0",
        to_version=tag,
        artifact=f"{repository}:{tag}",
        sha256=images[tag].removeprefix("sha256:"),
        kind="image",
        scheme="docker",
    )


@contextlib.contextmanager
def tagged(engine: DockerEngine, repository: str, tags: dict[str, str]) -> Iterator[None]:
    """`repository:<tag>` on each given image id, untagged afterwards."""
    api = engine.client().api
    for tag, image_id in tags.items():
        api.tag(image_id, repository, tag, force=True)
    try:
        yield
    finally:
        for tag in tags:
            with contextlib.suppress(docker.errors.APIError):
                api.remove_image(f"{repository}:{tag}")


@contextlib.contextmanager
def networks(engine: DockerEngine, *names: str) -> Iterator[None]:
    """Internal networks (no route out) on small subnets of their own."""
    client = engine.client()
    created = []
    try:
        for number, name in enumerate(names, start=1):
            subnet = f"10.231.{number}.0/24"
            pool = docker.types.IPAMPool(subnet=subnet)
            ipam = docker.types.IPAMConfig(pool_configs=[pool])
            created.append(client.networks.create(name, internal=True, ipam=ipam))
        yield
    finally:
        for network in created:
            with contextlib.suppress(docker.errors.APIError):
                network.remove()


def test_an_update_keeps_the_settings_and_data_and_takes_the_new_images_defaults(
    docker_engine: DockerEngine, docker_web_images: dict[str, str], tmp_path: Path
) -> None:
    name, conf = "tma-dstack-settings", tmp_path / "conf"
    conf.mkdir()
    (conf / "site.ini").write_text("name = shop\n")
    with networks(docker_engine, "tma-dstack-front", "tma-dstack-back"):
        settings = {
            "environment": {"SITE_NAME": "shop"},
            "labels": {"org.example.role": "web"},
            "hostname": "web-1",
            "restart_policy": {"Name": "unless-stopped"},
            "network_mode": None,
            "network": "tma-dstack-front",
            "volumes": {
                f"{name}-data": {"bind": DATA, "mode": "rw"},
                str(conf): {"bind": "/srv/conf", "mode": "ro"},
            },
        }
        with web_service(docker_engine, name, f"{WEB}:1.0", **settings):
            back = docker_engine.client().networks.get("tma-dstack-back")
            back.connect(name, aliases=["app"], ipv4_address="10.231.2.50")
            write(docker_engine, name, f"{DATA}/note", "kept-in-volume")
            write(docker_engine, name, "/srv/cache/note", "kept-in-anonymous-volume")
            before = container(docker_engine, name)
            driver, env = web_driver(), environment(docker_engine, f"docker://{name}")
            update = next(u for u in driver.available(env, driver.inventory(env)))
            applied = driver.apply(env, [update], CONTEXT)
            after = container(docker_engine, name)

            assert applied.changes == [Change("web", "1.0", "1.1")]
            assert after["Id"] != before["Id"]
            assert after["Image"] == docker_web_images["1.1"]
            assert after["Config"]["Image"] == f"{WEB}:1.1"
            env_vars = after["Config"]["Env"]
            assert "SITE_NAME=shop" in env_vars and "APP_VERSION=1.1" in env_vars
            assert "APP_VERSION=1.0" not in env_vars
            assert after["Config"]["Labels"] == {
                "org.example.role": "web",
                "org.example.release": "1.1",
            }
            assert after["Config"]["Hostname"] == "web-1"
            for key in ("RestartPolicy", "Init", "NetworkMode"):
                assert after["HostConfig"][key] == before["HostConfig"][key], key
            assert set(before["HostConfig"]["Binds"]) < set(after["HostConfig"]["Binds"])
            assert after["State"]["Health"]["Status"] == "healthy"
            assert read(docker_engine, name, f"{DATA}/note") == "kept-in-volume"
            assert read(docker_engine, name, "/srv/cache/note") == "kept-in-anonymous-volume"
            assert read(docker_engine, name, "/srv/conf/site.ini") == "name = shop"
            endpoints = after["NetworkSettings"]["Networks"]
            assert set(endpoints) == {"tma-dstack-front", "tma-dstack-back"}
            assert "app" in endpoints["tma-dstack-back"]["Aliases"]
            assert endpoints["tma-dstack-back"]["IPAddress"] == "10.231.2.50"
            assert served(docker_engine, name) == "web 1.1"
            assert names_like(docker_engine, name) == [name]


def test_available_offers_the_newest_tag_of_each_class_pinned_to_its_image(
    docker_engine: DockerEngine, docker_web_images: dict[str, str]
) -> None:
    repository, old, new = "tma-test/offers", docker_web_images["1.0"], docker_web_images["1.1"]
    tags = {"1.0": old, "1.0.1": new, "1.0.2": new, "1.1": new, "2.0": old}
    tags |= {"1.1-crash": docker_web_images["1.1-crash"], "latest": new, "0.9": old}
    with (
        tagged(docker_engine, repository, tags),
        web_service(docker_engine, "tma-dstack-offers", f"{repository}:1.0"),
    ):
        driver = web_driver(image=repository)
        env = environment(docker_engine, "docker://tma-dstack-offers")
        installed = driver.inventory(env)
        offered = driver.available(env, installed)

    assert [(c.name, c.version, c.kind) for c in installed] == [("web", "1.0", "image")]
    assert [(u.to_version, u.semver_class) for u in offered] == [
        ("1.0.2", "patch"),
        ("1.1", "minor"),
        ("2.0", "major"),
    ]
    for update in offered:
        assert update.artifact == f"{repository}:{update.to_version}"
        assert f"sha256:{update.sha256}" == tags[update.to_version]
        assert (update.from_version, update.kind, update.scheme) == ("1.0", "image", "docker")
        assert ISO_UTC.match(update.released), update.released


def test_a_tag_moved_to_another_image_since_the_plan_is_refused(
    docker_engine: DockerEngine, docker_web_images: dict[str, str]
) -> None:
    repository, name = "tma-test/moved", "tma-dstack-moved"
    tags = {"1.0": docker_web_images["1.0"], "1.1": docker_web_images["1.1"]}
    with (
        tagged(docker_engine, repository, tags),
        web_service(docker_engine, name, f"{repository}:1.0"),
    ):
        driver, env = web_driver(image=repository), environment(docker_engine, f"docker://{name}")
        installed = driver.inventory(env)
        [update] = driver.available(env, installed)
        before = container(docker_engine, name)["Id"]
        docker_engine.client().api.tag(
            docker_web_images["1.1-crash"], repository, "1.1", force=True
        )

        with pytest.raises(IntegrityError, match="re-tagged since it was planned") as refused:
            driver.apply(env, [update], CONTEXT)

        assert "\n" not in str(refused.value)
        assert driver.inventory(env) == installed
        assert container(docker_engine, name)["Id"] == before
        assert served(docker_engine, name) == "web 1.0"
        assert names_like(docker_engine, name) == [name]


@pytest.mark.parametrize(
    ("tag", "said"),
    [
        ("1.1-crash", r"exited \(exit code 3\): cannot read /srv/data/settings.json"),
        ("1.1-mute", r"not ready after 4s: nothing answers on port 8000"),
        ("1.1-sick", r"unhealthy: database unreachable"),
    ],
)
def test_a_new_container_that_fails_gives_way_to_the_old_one(
    docker_engine: DockerEngine, docker_web_images: dict[str, str], tag: str, said: str
) -> None:
    name = "tma-dstack-fails"
    with web_service(docker_engine, name, f"{WEB}:1.0"):
        write(docker_engine, name, f"{DATA}/note", "still-here")
        driver, env = web_driver(ready_timeout=4), environment(docker_engine, f"docker://{name}")
        before = container(docker_engine, name)["Id"]

        with pytest.raises(StackError, match=said) as failed:
            driver.apply(env, [manual_update(docker_web_images, tag)], CONTEXT)

        message = str(failed.value)
        assert message.startswith(f"service web: {WEB}:{tag} failed: ")
        assert message.endswith(f"the old container {name} runs again")
        assert "\n" not in message
        assert container(docker_engine, name)["Id"] == before
        assert served(docker_engine, name) == "web 1.0"
        assert read(docker_engine, name, f"{DATA}/note") == "still-here"
        assert names_like(docker_engine, name) == [name]


@pytest.mark.parametrize("new_container_left", [False, True])
def test_an_interrupted_update_is_undone_then_made(
    docker_engine: DockerEngine, docker_web_images: dict[str, str], new_container_left: bool
) -> None:
    name = "tma-dstack-interrupted"
    with web_service(docker_engine, name, f"{WEB}:1.0"):
        write(docker_engine, name, f"{DATA}/note", "still-here")
        api = docker_engine.client().api
        api.rename(name, f"{name}.tma-old")
        api.stop(f"{name}.tma-old", timeout=5)
        if new_container_left:
            api.create_container(
                f"{WEB}:1.1-crash",
                name=name,
                host_config=api.create_host_config(network_mode="none"),
            )
        driver, env = web_driver(), environment(docker_engine, f"docker://{name}")
        if not new_container_left:
            assert [c.version for c in driver.inventory(env)] == ["1.0"]

        applied = driver.apply(env, [manual_update(docker_web_images, "1.1")], CONTEXT)

        assert [c.version for c in driver.inventory(env)] == ["1.1"]
        assert Change("web", "1.1-crash" if new_container_left else "1.0", "1.1") in applied.changes
        assert served(docker_engine, name) == "web 1.1"
        assert read(docker_engine, name, f"{DATA}/note") == "still-here"
        assert names_like(docker_engine, name) == [name]


@pytest.mark.parametrize(
    ("template", "production", "staging"),
    [
        (
            "{executor}",
            ("docker://tma-dstack-shop", DATA),
            ("docker://tma-dstack-shop-staging", DATA),
        ),
        (
            "tma-dstack-{root}",
            ("docker://tma-dstack-app", "/srv/shop"),
            ("docker://tma-dstack-app", "/srv/shop-staging"),
        ),
    ],
)
def test_production_and_staging_on_one_engine_are_told_apart(
    docker_engine: DockerEngine,
    docker_web_images: dict[str, str],
    template: str,
    production: tuple[str, str],
    staging: tuple[str, str],
) -> None:
    driver = web_driver(container=template)
    envs = {
        "production": environment(docker_engine, production[0], production[1]),
        "staging": environment(docker_engine, staging[0], staging[1]),
    }
    with (
        web_service(docker_engine, "tma-dstack-shop", f"{WEB}:1.0"),
        web_service(docker_engine, "tma-dstack-shop-staging", f"{WEB}:1.0"),
    ):
        before = container(docker_engine, "tma-dstack-shop")["Id"]
        [update] = driver.available(envs["staging"], driver.inventory(envs["staging"]))
        driver.apply(envs["staging"], [update], CONTEXT)

        assert served(docker_engine, "tma-dstack-shop-staging") == "web 1.1"
        assert served(docker_engine, "tma-dstack-shop") == "web 1.0"
        assert container(docker_engine, "tma-dstack-shop")["Id"] == before
        driver.apply(envs["production"], [update], CONTEXT)
        assert served(docker_engine, "tma-dstack-shop") == "web 1.1"


def test_what_cannot_be_read_or_reached_is_said_in_one_line(
    docker_engine: DockerEngine, docker_web_images: dict[str, str]
) -> None:
    missing = environment(docker_engine, "docker://tma-dstack-nothing")
    engine = docker_engine.host
    cases = [
        (
            web_driver(),
            missing,
            f"container tma-dstack-nothing not found on the Docker engine at {engine}",
        ),
        (
            web_driver(docker_host="unix:///nonexistent/docker.sock"),
            missing,
            "cannot reach the Docker engine at unix:///nonexistent/docker.sock",
        ),
    ]
    with web_service(docker_engine, "tma-dstack-other", f"{WEB}:1.0"):
        other = environment(docker_engine, "docker://tma-dstack-other")
        cases.append(
            (
                web_driver(image="tma-test/other"),
                other,
                "runs 'tma-test/web:1.0', not a tag of tma-test/other",
            )
        )
        for driver, env, said in cases:
            with pytest.raises(StackError) as failed:
                driver.inventory(env)
            assert said in str(failed.value)
            assert "\n" not in str(failed.value)
