"""The node stack's case for the driver conformance suite: a real express app from the registry.

The app is installed from the npm registry once per session (`node_app_template`) and copied
for each test (`node_app`), which starts it on a free port and stops it afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.node_app import (
    RESTART,
    NodeApp,
    build_node_app,
    copy_node_app,
    start_node_app,
    stop_node_app,
)
from stack_conformance_support import DriverCase

from tma_ops.model import Environment
from tma_ops.model_stacks import NodeStack
from tma_ops.stacks.node import NodeDriver

_TEMPLATE: dict[str, Path] = {}  # one install per session, however many modules import these


@pytest.fixture(scope="session")
def node_app_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "app" not in _TEMPLATE:
        _TEMPLATE["app"] = build_node_app(tmp_path_factory.mktemp("node-template") / "app")
    return _TEMPLATE["app"]


@pytest.fixture
def node_app(node_app_template: Path, tmp_path: Path) -> Iterator[NodeApp]:
    app = start_node_app(copy_node_app(node_app_template, tmp_path / "site" / "app"))
    try:
        yield app
    finally:
        stop_node_app(app)


def node_env(app: NodeApp) -> Environment:
    """A local environment whose root holds the app in `app/`, checked at the app's URL."""
    root = app.dir.parent
    return Environment.model_validate(
        {
            "executor": "local://",
            "root": str(root),
            "database": {"engine": "sqlite", "path": str(root / "site.sqlite")},
            "smoke": [{"url": app.url}],
        }
    )


def node_driver(**overrides: object) -> NodeDriver:
    """The driver as an inventory configures it: the app in `app/`, built and restarted."""
    spec = {"kind": "node", "app_dir": "app", "build": "build", "restart": RESTART}
    return NodeDriver.from_config(NodeStack.model_validate(spec | overrides))


@pytest.fixture
def node_driver_case(node_app: NodeApp) -> DriverCase:
    return DriverCase(
        kind="node",
        driver=node_driver(),
        env=node_env(node_app),
        component="express",
        to_version="4.17.3",  # the last patch release of 4.17, the line the app pins
        served=node_app.page,
    )
