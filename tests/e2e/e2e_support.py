"""Helpers of the end-to-end tests: a demo workspace and a way to run the real `tma-ops`."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from tma_ops.config import Inventory, load_inventory
from tma_ops.dbs.sqlite import SqliteEngine
from tma_ops.demo.app import start_server
from tma_ops.demo.workspace import build_workspace
from tma_ops.executors.local import LocalExecutor
from tma_ops.fingerprint import Fingerprint, environment_fingerprint, tree_fingerprint
from tma_ops.journal import Journal

TEMPLATE = Path(__file__).parents[2] / "inventories" / "demo" / "tma.yaml"


class CliRunner:
    """Runs the real `tma-ops` against `inventory_file`, with `env` as the environment."""

    inventory_file: Path
    cli_timeout = 300

    @property
    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tma_ops", "-i", str(self.inventory_file), *args],
            capture_output=True,
            text=True,
            env={**self.env, **env},
            timeout=self.cli_timeout,
            check=False,
        )

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tma_ops", "-i", str(self.inventory_file), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**self.env, **env},
        )


@dataclass
class Workspace(CliRunner):
    root: Path
    inventory_file: Path
    port: int

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "TMA_DEMO_PORT": str(self.port), "TMA_OPS_PAUSE_AT": ""}

    def inventory(self) -> Inventory:
        return load_inventory(self.inventory_file)

    def fingerprint(self, site: str, env: str = "production") -> Fingerprint:
        return environment_fingerprint(self.inventory().site(site), env)

    def journal(self) -> Journal:
        return Journal(self.root / "state" / "journal.sqlite")


def make_workspace(path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    inventory_file = build_workspace(path, TEMPLATE)
    server = start_server(path)
    port = server.server_address[1]
    monkeypatch.setenv("TMA_DEMO_PORT", str(port))
    try:
        yield Workspace(path, inventory_file, port)
    finally:
        server.shutdown()
        server.server_close()


def installed_versions(root: Path) -> dict[str, str]:
    plugins = root / "plugins"
    return {
        d.name: (d / "VERSION").read_text().splitlines()[0]
        for d in sorted(plugins.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    }


def leftovers(workspace_root: Path) -> list[str]:
    """Staging dirs or temp files a crashed step could leave behind in the sites."""
    sites = workspace_root / "sites"
    return sorted(str(p.relative_to(sites)) for p in sites.rglob("*") if ".tma-" in p.name)


def pre_promotion_snapshot_id(workspace: Workspace, site: str) -> str:
    events = workspace.journal().events(site=site)
    done = [e for e in events if e.step == "pre_promotion_snapshot" and e.status == "done"]
    return str(done[-1].data["snapshot_id"])


def unpack_snapshot(workspace: Workspace, site: str, snapshot_id: str, into: Path) -> Fingerprint:
    """Unpack a stored snapshot with plain zstd + tar semantics; fingerprint what it holds."""
    parts = workspace.root / "store" / site / "snapshots" / snapshot_id
    into.mkdir(parents=True)
    with open(parts / "db.sqlite.zst", "rb") as packed, open(into / "site.sqlite", "wb") as out:
        zstandard.ZstdDecompressor().copy_stream(packed, out)
    with open(parts / "files.tar.zst", "rb") as packed:
        reader = zstandard.ZstdDecompressor().stream_reader(packed)
        with tarfile.open(fileobj=reader, mode="r|") as archive:
            archive.extractall(into / "www", filter="tar")
    local = LocalExecutor()
    return Fingerprint(
        tree_fingerprint(local, str(into / "www")),
        SqliteEngine(str(into / "site.sqlite")).fingerprint(local),
    )
