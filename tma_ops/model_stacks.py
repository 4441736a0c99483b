"""What an inventory may say about a site's stack: one model per stack driver, told by `kind`.

Paths on this machine (channels) are taken from the inventory file's directory; paths on the
environment are relative to the environment's root unless absolute. Commands (restart, build)
run on the environment, in its root, through its executor.
"""

from __future__ import annotations

from string import Formatter
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArchiveStack(_Strict):
    kind: Literal["archive"]
    channel: str
    components_dir: str
    version_file: str = "VERSION"


class WordPressStack(_Strict):
    """WordPress core, plugins and themes, read and updated by WordPress's own code through the
    PHP CLI (no WP-CLI needed). Updates come from a channel directory of `<slug>-<version>.zip`
    archives (premium plugins, themes; `wordpress-<version>.zip`: core)."""

    kind: Literal["wordpress"]
    channel: str | None = None
    php: str = "php"  # PHP CLI on the environment
    # Shell command run after an update instead of waiting for opcache to revalidate, e.g.
    # `sudo systemctl reload php8.2-fpm` where opcache.validate_timestamps is off.
    reload: str | None = None


class PythonStack(_Strict):
    """A Django/Wagtail site in a virtualenv, its dependencies pinned in a requirements file.

    After `pip install -r`, `manage.py migrate` and `collectstatic` (when set), `restart` runs in
    the environment's root (e.g. `systemctl reload gunicorn`, or a HUP to gunicorn's pidfile),
    then the environment's first smoke URL must answer with its status within `ready_timeout`
    seconds.
    """

    kind: Literal["python"]
    project_dir: str = "."  # where manage.py is
    venv: str = ".venv"
    requirements: str = "requirements.txt"  # `name==version` lines, rewritten by an update
    settings: str | None = None  # DJANGO_SETTINGS_MODULE
    collectstatic: bool = True
    restart: str | None = None  # shell command run after an update (e.g. HUP gunicorn)
    index_url: str | None = None  # package index to query and install from (default: pip's)
    ready_timeout: float = Field(60, gt=0)


class NodeStack(_Strict):
    """A Node app with package.json and package-lock.json, updated with npm.

    After an update the `build` script runs (`npm run <build>`), then `restart`, a shell command
    run in app_dir (e.g. `systemctl restart app`; one that starts a server in the background
    must detach it from its output), then the environment's first smoke URL must answer with its
    status within `ready_timeout` seconds.
    """

    kind: Literal["node"]
    app_dir: str = "."  # where package.json is
    npm: str = "npm"  # npm on the environment
    build: str | None = None  # npm script run after an update, e.g. "build"
    restart: str | None = None
    registry: str | None = None  # npm registry URL to query and install from (default: npm's)
    ready_timeout: float = Field(60, gt=0)


CONTAINER_PLACEHOLDERS = ("executor", "root")


class DockerService(_Strict):
    """One service: its container in each environment and the repository its tags come from.

    `container` names the service's container in an environment. Two placeholders tell the
    environments apart when they share one engine: `{executor}` is the name in the environment's
    executor URL (NAME of docker://NAME, the host of ssh://), `{root}` the last part of its root
    (a Compose project's directory: `{root}-web-1`). Without a placeholder, both environments use
    the same name, each on its own engine.
    """

    name: str  # the component in plans and reports
    container: str  # e.g. "{executor}-web", "{root}-web-1", "shop-web"
    image: str  # repository, without the tag (e.g. "registry.example:5000/shop/web")
    # A TCP port that must accept a connection inside the new container (probed there with
    # bash, nc or python3) before the old container is removed.
    port: int | None = Field(None, ge=1, le=65535)

    @field_validator("container")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        fields = {field for _, field, _, _ in Formatter().parse(value) if field is not None}
        unknown = fields - set(CONTAINER_PLACEHOLDERS)
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{sorted(unknown)[0]}}} in {value!r}; expected "
                "{executor} or {root}"
            )
        return value

    @field_validator("image")
    @classmethod
    def _repository_only(cls, value: str) -> str:
        if "@" in value or ":" in value.rsplit("/", 1)[-1]:
            raise ValueError(f"expected a repository without tag or digest, got {value!r}")
        return value


class DockerStack(_Strict):
    """Services whose image tags are updated and containers recreated with the same settings.

    Updates are the tags of each service's repository present on the environment's engine
    (imported, loaded or pulled there beforehand). An update stops the old container, keeps it
    under `<container>.tma-old` until the new one runs (and is healthy, and answers on `port`),
    then removes it; a new container that fails gives way to the old one again.
    """

    kind: Literal["docker"]
    services: Annotated[list[DockerService], Field(min_length=1)]
    docker_host: str | None = None  # Docker engine URL (default: the environment executor's)
    ready_timeout: float = Field(120, gt=0)  # seconds a new container has to run and answer

    @field_validator("services")
    @classmethod
    def _unique_names(cls, value: list[DockerService]) -> list[DockerService]:
        names = [service.name for service in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"service {twice[0]!r} is named twice; expected unique names")
        return value


Stack = Annotated[
    ArchiveStack | WordPressStack | PythonStack | NodeStack | DockerStack,
    Field(discriminator="kind"),
]
