"""The WordPress stack's case for the driver conformance suite, and fixtures of its own tests:
a real WordPress (Debian's package, PHP, MariaDB) served by `php -S`, its marker plugin updated
from a zip archive."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness.wordpress import (
    MARKER_PLUGIN,
    WordPressLab,
    WordPressSite,
    marker_plugin_files,
    session_lab,
    write_zip,
)
from stack_conformance_support import DriverCase

from tma_ops.model import Environment
from tma_ops.stacks.wordpress import WordPressDriver


@dataclass
class WordPressCase:
    site: WordPressSite
    channel: Path
    env: Environment
    driver: WordPressDriver


def wordpress_environment(site: WordPressSite) -> Environment:
    return Environment.model_validate(
        {
            # pyenv's python3 shim breaks Ansible on these machines
            "executor": {"url": "local://", "python": "/usr/bin/python3"},
            "root": str(site.root),
            "database": {
                "engine": "mariadb",
                "name": site.database,
                "host": "127.0.0.1",
                "port": site.server.port,
                "user": "wordpress",
            },
            "smoke": [{"url": site.url + "/", "contains": "tma-marker"}],
        }
    )


@contextmanager
def served_case(lab: WordPressLab, base: Path) -> Iterator[WordPressCase]:
    """A served copy of the template site and a channel holding the marker plugin 2.0.0."""
    site = lab.new_site(base / "site")
    channel = base / "channel"
    write_zip(channel / f"{MARKER_PLUGIN}-2.0.0.zip", marker_plugin_files("2.0.0"))
    site.serve()
    try:
        yield WordPressCase(site, channel, wordpress_environment(site), WordPressDriver(channel))
    finally:
        site.stop()


@pytest.fixture
def wordpress_driver_case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DriverCase]:
    with served_case(session_lab(request), tmp_path) as case:
        yield DriverCase(
            kind="wordpress",
            driver=case.driver,
            env=case.env,
            component=MARKER_PLUGIN,
            to_version="2.0.0",
            served=case.site.marker,
        )
