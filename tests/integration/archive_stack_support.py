"""The archive stack's case for the driver conformance suite: components updated from zips."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from stack_conformance_support import DriverCase

from tma_ops.model import Environment
from tma_ops.stacks.archive import ArchiveStack

COMPONENTS = "components"


def _component(name: str, version: str) -> dict[str, str]:
    return {f"{name}/VERSION": f"{version}\n", f"{name}/main.txt": f"{name} at {version}\n"}


@pytest.fixture
def archive_driver_case(tmp_path: Path) -> DriverCase:
    root, channel = tmp_path / "site", tmp_path / "channel"
    channel.mkdir()
    for rel, text in {**_component("forms", "1.0.0"), **_component("seo", "2.0")}.items():
        (root / COMPONENTS / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / COMPONENTS / rel).write_text(text)
    with zipfile.ZipFile(channel / "forms-1.1.0.zip", "w") as archive:
        for rel, text in _component("forms", "1.1.0").items():
            archive.writestr(rel, text)
    env = Environment.model_validate(
        {
            "executor": "local://",
            "root": str(root),
            "database": {"engine": "sqlite", "path": str(root / "site.sqlite")},
            "smoke": [{"url": "http://127.0.0.1/"}],
        }
    )
    main = root / COMPONENTS / "forms" / "main.txt"
    return DriverCase(
        kind="archive",
        driver=ArchiveStack(channel, COMPONENTS),
        env=env,
        component="forms",
        to_version="1.1.0",
        served=main.read_text,
    )
