"""Docker stack: services whose image tag is updated and whose container is recreated on it.

A component is a service; its version is the tag its container was created from. Updates are the
tags of the service's repository present on the environment's engine (imported, loaded or pulled
there beforehand), newest per class among the tags of the same variant (`1.2-alpine` only
follows `-alpine` tags). A planned update is pinned to the image id, so a tag moved to another
image since it was planned is refused (IntegrityError).

The engine is the stack's `docker_host`, else the environment executor's, else (local:// and
docker:// environments) DOCKER_HOST or the local socket; an ssh:// environment must name it.
How each environment names a service's container: model_stacks.DockerService.
Recreating a container and undoing a failed or interrupted one: docker_recreate.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from datetime import UTC, datetime
from string import Formatter
from typing import Any
from urllib.parse import urlsplit

from tma_ops import model_stacks
from tma_ops.ansible import PlaybookContext
from tma_ops.errors import IntegrityError, StackError
from tma_ops.model import Environment
from tma_ops.stacks import Applied, Component, Update, changes_between
from tma_ops.stacks.docker_engine import Engine
from tma_ops.stacks.docker_recreate import Readiness, backup_name, recover, replace
from tma_ops.versions import classify, newest_per_class, parse

SCHEME = "docker"
DEFAULT_REGISTRY_PREFIXES = ("docker.io/", "index.docker.io/", "library/")


class DockerDriver:
    def __init__(
        self,
        services: Sequence[model_stacks.DockerService],
        docker_host: str | None = None,
        ready_timeout: float = 120,
    ) -> None:
        self.services = {service.name: service for service in services}
        self.docker_host = docker_host
        self.ready_timeout = ready_timeout

    @classmethod
    def from_config(cls, spec: model_stacks.DockerStack) -> DockerDriver:
        return cls(spec.services, spec.docker_host, spec.ready_timeout)

    def inventory(self, env: Environment) -> list[Component]:
        with Engine.connect(self.engine_url(env)) as engine:
            return self._inventory(engine, env)

    def available(self, env: Environment, installed: list[Component]) -> list[Update]:
        updates = []
        with Engine.connect(self.engine_url(env)) as engine:
            for component in installed:
                service = self._service(component.name)
                if parse(SCHEME, component.version) is None:
                    raise StackError(
                        f"service {service.name}: tag {component.version!r} is not a version; "
                        "run a version tag to be offered updates"
                    )
                tags = _tags_of(engine, service.image)
                for tag in newest_per_class(SCHEME, component.version, tags).values():
                    updates.append(_update_to(service, component.version, tag, tags[tag]))
        return updates

    def pending_migrations(self, env: Environment) -> list[str]:
        return []  # an image's own entrypoint migrates, if it does

    def apply(
        self, env: Environment, updates: Sequence[Update], context: PlaybookContext
    ) -> Applied:
        """Recreate each planned service's container on its planned image, one after the other.

        Every planned image is checked before any container changes; a service whose new
        container fails keeps its old one, and the error names the services already updated.
        """
        with Engine.connect(self.engine_url(env)) as engine:
            before = self._inventory(engine, env)
            image_ids = [self._planned_image(engine, update) for update in updates]
            done: list[str] = []
            for update, image_id in zip(updates, image_ids, strict=True):
                try:
                    self._apply_one(engine, env, update, image_id)
                except StackError as exc:
                    if not done:
                        raise
                    raise StackError(f"{exc}; already updated: {', '.join(done)}") from exc
                done.append(update.describe())
                context.applied(update.component)
            return Applied(changes_between(before, self._inventory(engine, env)))

    def engine_url(self, env: Environment) -> str | None:
        """The engine's URL, None for the default one (DOCKER_HOST, else the local socket)."""
        url = self.docker_host or env.executor.docker_host
        if url is None and env.executor.scheme == "ssh":
            raise StackError(
                f"environment {env.executor.url}: the docker stack needs its Docker engine's URL; "
                "set docker_host on the executor (e.g. ssh://user@host) or on the stack"
            )
        return url

    def container_name(self, service: model_stacks.DockerService, env: Environment) -> str:
        """The service's container in `env` (see model_stacks.DockerService)."""
        used = {field for _, field, _, _ in Formatter().parse(service.container) if field}
        values = {
            "executor": _executor_name(env) if "executor" in used else "",
            "root": _root_name(env) if "root" in used else "",
        }
        for placeholder in used:
            if not values[placeholder]:
                raise StackError(
                    f"service {service.name}: container {service.container!r} uses "
                    f"{{{placeholder}}}, which environment {env.executor.url} does not give"
                )
        return service.container.format(**values)

    def _inventory(self, engine: Engine, env: Environment) -> list[Component]:
        components = []
        for service in self.services.values():
            tag = self._running_tag(engine, service, env)
            components.append(Component(service.name, tag, kind="image", ecosystem=""))
        return components

    def _running_tag(
        self, engine: Engine, service: model_stacks.DockerService, env: Environment
    ) -> str:
        """The tag the service's container was created from (its old container's, when an
        interrupted update left only that one: what the next apply puts back)."""
        name = self.container_name(service, env)
        found = engine.container(name) or engine.container(backup_name(name))
        if found is None:
            raise StackError(
                f"service {service.name}: container {name} not found on the Docker engine "
                f"at {engine.url}"
            )
        reference = found["Config"]["Image"]
        repository, tag = split_reference(reference)
        if not tag or not same_repository(repository, service.image):
            raise StackError(
                f"service {service.name}: container {name} runs {reference!r}, "
                f"not a tag of {service.image}"
            )
        return tag

    def _planned_image(self, engine: Engine, update: Update) -> str:
        """The id of the image `update` installs, checked against the plan."""
        service = self._service(update.component)
        repository, tag = split_reference(update.artifact)
        if not same_repository(repository, service.image) or tag != update.to_version:
            raise StackError(
                f"update {update.describe()}: {update.artifact!r} is not "
                f"{service.image}:{update.to_version}"
            )
        image = engine.image(update.artifact)
        if image is None:
            raise StackError(
                f"update {update.describe()}: image {update.artifact} is not on the Docker "
                f"engine at {engine.url}"
            )
        planned = f"sha256:{update.sha256}"
        if not update.sha256 or image["Id"] != planned:
            raise IntegrityError(
                f"update {update.describe()}: {update.artifact} is image {image['Id'][:19]} on "
                f"{engine.url}, not the planned {planned[:19]} (re-tagged since it was planned)"
            )
        return planned

    def _apply_one(self, engine: Engine, env: Environment, update: Update, image_id: str) -> None:
        service = self._service(update.component)
        name = self.container_name(service, env)
        recover(engine, name)
        current = engine.container(name)
        if current is None:
            raise StackError(
                f"service {service.name}: container {name} not found on the Docker engine "
                f"at {engine.url}"
            )
        on_tag = split_reference(current["Config"]["Image"])[1] == update.to_version
        if on_tag and current["Image"] == image_id:
            return  # applied already
        try:
            replace(engine, current, update.artifact, image_id, self._readiness(service))
        except IntegrityError as exc:
            raise IntegrityError(f"service {service.name}: {exc}") from exc
        except StackError as exc:
            raise StackError(f"service {service.name}: {update.artifact} failed: {exc}") from exc

    def _readiness(self, service: model_stacks.DockerService) -> Readiness:
        return Readiness(port=service.port, timeout=self.ready_timeout)

    def _service(self, name: str) -> model_stacks.DockerService:
        if name not in self.services:
            known = ", ".join(sorted(self.services))
            raise StackError(f"no service {name!r} in the docker stack; expected one of {known}")
        return self.services[name]


def split_reference(reference: str) -> tuple[str, str]:
    """(repository, tag) of an image reference; the tag is "" for a reference by digest only
    and "latest" when none is given."""
    name, _, digest = reference.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = name.rsplit(":", 1)
        return repository, tag
    return name, "" if digest else "latest"


def same_repository(a: str, b: str) -> bool:
    """Whether two repository names are one (`nginx` is `docker.io/library/nginx`)."""
    return _canonical(a) == _canonical(b)


def _canonical(repository: str) -> str:
    for prefix in DEFAULT_REGISTRY_PREFIXES:
        repository = repository.removeprefix(prefix)
    return repository


def _tags_of(engine: Engine, repository: str) -> dict[str, dict[str, Any]]:
    """tag -> image summary, for the tags of `repository` on the engine."""
    tags = {}
    for image in engine.images(repository):
        for reference in image.get("RepoTags") or []:
            name, tag = split_reference(reference)
            if tag and same_repository(name, repository):
                tags[tag] = image
    return tags


def _update_to(
    service: model_stacks.DockerService, installed: str, tag: str, image: dict[str, Any]
) -> Update:
    created = image.get("Created")
    released = (
        datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(created, int) and created > 0
        else ""
    )
    return Update(
        component=service.name,
        from_version=installed,
        to_version=tag,
        semver_class=classify(SCHEME, installed, tag) or "",
        artifact=f"{service.image}:{tag}",
        sha256=str(image["Id"]).removeprefix("sha256:"),
        kind="image",
        ecosystem="",
        scheme=SCHEME,
        released=released,
    )


def _executor_name(env: Environment) -> str:
    parts = urlsplit(env.executor.url)
    if env.executor.scheme == "docker":
        return parts.netloc  # a container name keeps its case
    return parts.hostname or ""


def _root_name(env: Environment) -> str:
    root = os.path.abspath(env.root) if env.executor.scheme == "local" else env.root
    return posixpath.basename(posixpath.normpath(root)) if root.strip("/") else ""
