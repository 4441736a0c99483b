"""The Docker engine as the docker stack sees it: lookups that may find nothing, and every other
call turned into a one-line StackError that names the engine."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import docker
import docker.errors
import requests

from tma_ops.errors import StackError

DEFAULT_HOST = "unix:///var/run/docker.sock"
API_TIMEOUT = 120  # seconds for one API call (a stop adds the container's own stop timeout)
ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException, OSError)
T = TypeVar("T")


class Engine:
    def __init__(self, client: Any, url: str) -> None:
        self.api = client.api
        self.url = url  # for messages
        self._client = client

    @classmethod
    @contextmanager
    def connect(cls, url: str | None) -> Iterator[Engine]:
        """The engine at `url` (default: DOCKER_HOST, else the local socket), closed after use."""
        shown = url or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
        try:
            client = (
                docker.DockerClient(base_url=url, timeout=API_TIMEOUT)
                if url
                else docker.from_env(timeout=API_TIMEOUT)
            )
        except ENGINE_ERRORS as exc:
            raise StackError(
                f"cannot reach the Docker engine at {shown}: {_first_line(exc)}"
            ) from exc
        try:
            yield cls(client, shown)
        finally:
            client.close()

    def call(self, doing: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """function(*args, **kwargs); an engine failure becomes a StackError saying `doing`."""
        try:
            return function(*args, **kwargs)
        except docker.errors.APIError as exc:
            reason = str(exc.explanation or exc).strip()
            raise StackError(f"Docker engine at {self.url}: {doing}: {reason}") from exc
        except ENGINE_ERRORS as exc:
            raise StackError(
                f"cannot reach the Docker engine at {self.url}: {doing}: {_first_line(exc)}"
            ) from exc

    def container(self, name: str) -> dict[str, Any] | None:
        """The container's inspect data, None when the engine has no container of that name."""
        return self._inspect("container", name, self.api.inspect_container)

    def image(self, reference: str) -> dict[str, Any] | None:
        """The image's inspect data, None when the engine has no image of that reference."""
        return self._inspect("image", reference, self.api.inspect_image)

    def _inspect(
        self, kind: str, name: str, inspect: Callable[[str], dict[str, Any]]
    ) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.call(f"inspect {kind} {name}", inspect, name)
        except StackError as exc:
            if isinstance(exc.__cause__, docker.errors.NotFound):
                return None
            raise
        return found

    def images(self, repository: str) -> list[dict[str, Any]]:
        """Summaries (Id, RepoTags, Created in Unix seconds) of the images of `repository`."""
        found: list[dict[str, Any]] = self.call(
            f"list the images of {repository}", self.api.images, name=repository
        )
        return found

    def last_log_line(self, container_id: str) -> str:
        """The container's last non-empty line of output, "" when it said nothing."""
        raw = self.call("read the container's log", self.api.logs, container_id, tail=20)
        lines = [line.strip() for line in bytes(raw).decode(errors="replace").splitlines()]
        said = [line for line in lines if line]
        return said[-1][:300] if said else ""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
