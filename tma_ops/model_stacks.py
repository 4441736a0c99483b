"""What an inventory may say about a site's stack: one model per stack driver, told by `kind`.

Paths on this machine (channels) are taken from the inventory file's directory; paths on the
environment are relative to the environment's root unless absolute. Commands (restart, build)
run on the environment, in its root, through its executor.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArchiveStack(_Strict):
    kind: Literal["archive"]
    channel: str
    components_dir: str
    version_file: str = "VERSION"


class WordPressStack(_Strict):
    """WordPress core, plugins and themes. Updates come from a channel directory of
    `<slug>-<version>.zip` archives (premium plugins, themes; `wordpress-<version>.zip`: core)."""

    kind: Literal["wordpress"]
    channel: str | None = None
    php: str = "php"  # PHP CLI on the environment
    wp_cli: str | None = None  # WP-CLI on the environment; default: used when `wp` is on PATH


class PythonStack(_Strict):
    """A Django/Wagtail site in a virtualenv, its dependencies pinned in a requirements file."""

    kind: Literal["python"]
    project_dir: str = "."  # where manage.py is
    venv: str = ".venv"
    requirements: str = "requirements.txt"  # `name==version` lines, rewritten by an update
    settings: str | None = None  # DJANGO_SETTINGS_MODULE
    collectstatic: bool = True
    restart: str | None = None  # shell command run after an update (e.g. HUP gunicorn)
    index_url: str | None = None  # package index to query and install from (default: pip's)


class NodeStack(_Strict):
    """A Node app with package.json and package-lock.json, updated with npm."""

    kind: Literal["node"]
    app_dir: str = "."
    npm: str = "npm"
    build: str | None = None  # npm script run after an update, e.g. "build"
    restart: str | None = None
    registry: str | None = None


class DockerService(_Strict):
    container: str  # the running container that serves it
    image: str  # repository, without the tag


class DockerStack(_Strict):
    """Services whose image tags are updated and containers recreated with the same settings."""

    kind: Literal["docker"]
    services: Annotated[list[DockerService], Field(min_length=1)]
    docker_host: str | None = None  # Docker engine URL (default: the environment's)


Stack = Annotated[
    ArchiveStack | WordPressStack | PythonStack | NodeStack | DockerStack,
    Field(discriminator="kind"),
]
