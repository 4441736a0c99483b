"""The Python stack's case for the driver conformance suite: a Wagtail site served by gunicorn.

The site (tests/harness/wagtail.py) pins Wagtail 6.2.3; the case updates it to 6.4.2, whose
migrations change the images, documents and users apps, and reads the running home page's link
to the release notes of the Wagtail that serves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.mariadb import free_port
from harness.wagtail import (
    RESTART,
    SETTINGS,
    UPDATE,
    WagtailSite,
    WagtailUnavailable,
    build_template,
    copy_site,
    start_site,
    stop_site,
)
from stack_conformance_support import DriverCase

from tma_ops.model import Environment
from tma_ops.model_stacks import PythonStack
from tma_ops.stacks.python import PythonDriver


@pytest.fixture(scope="session")
def wagtail_template(tmp_path_factory: pytest.TempPathFactory) -> WagtailSite:
    try:
        return build_template(tmp_path_factory.mktemp("wagtail-template") / "site")
    except WagtailUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def wagtail_site(wagtail_template: WagtailSite, tmp_path: Path) -> Iterator[WagtailSite]:
    """A served copy of the template site, stopped after the test."""
    site = copy_site(wagtail_template, tmp_path / "site")
    start_site(site, free_port("127.0.0.1"))
    try:
        yield site
    finally:
        stop_site(site)


def site_environment(site: WagtailSite) -> Environment:
    return Environment.model_validate(
        {
            # Ansible's modules run with the system interpreter (see tests of the ansible module).
            "executor": {"url": "local://", "python": "/usr/bin/python3"},
            "root": str(site.root),
            "database": {"engine": "sqlite", "path": str(site.root / "db.sqlite3")},
            "smoke": [{"url": site.url, "contains": "Welcome"}],
        }
    )


def site_driver(
    index_url: str | None = None, restart: str = RESTART, ready_timeout: float = 60
) -> PythonDriver:
    """The driver as an inventory would configure it for the harness's site."""
    spec = {
        "kind": "python",
        "settings": SETTINGS,
        "restart": restart,
        "index_url": index_url,
        "ready_timeout": ready_timeout,
    }
    return PythonDriver.from_config(PythonStack.model_validate(spec))


@pytest.fixture
def python_driver_case(wagtail_site: WagtailSite) -> DriverCase:
    component, to_version = UPDATE
    return DriverCase(
        kind="python",
        driver=site_driver(),
        env=site_environment(wagtail_site),
        component=component,
        to_version=to_version,
        served=wagtail_site.served_release,
        migrates=True,
    )
