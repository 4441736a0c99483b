"""Helpers of the end-to-end tests: a demo workspace and a way to run the real `tma-ops`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
import zstandard

from tma_ops.config import Inventory, load_inventory
from tma_ops.dbs.sqlite import SqliteEngine
from tma_ops.demo.app import start_server
from tma_ops.demo.workspace import build_workspace
from tma_ops.executors.local import LocalExecutor
from tma_ops.files_archive import STATE_SUFFIX
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
    """Staging dirs or temp files a crashed step could leave behind in the sites (tar's state file
    for incremental snapshots stays beside each root on purpose)."""
    sites = workspace_root / "sites"
    return sorted(
        str(p.relative_to(sites))
        for p in sites.rglob("*")
        if ".tma-" in p.name and not p.name.endswith(STATE_SUFFIX)
    )


def pre_promotion_snapshot_id(workspace: Workspace, site: str) -> str:
    events = workspace.journal().events(site=site)
    done = [e for e in events if e.step == "pre_promotion_snapshot" and e.status == "done"]
    return str(done[-1].data["snapshot_id"])


def unpack_snapshot(workspace: Workspace, site: str, snapshot_id: str, into: Path) -> Fingerprint:
    """Unpack a stored snapshot with zstd and GNU tar, chain first; fingerprint what it holds."""
    snapshots = workspace.root / "store" / site / "snapshots"
    manifest = json.loads((snapshots / snapshot_id / "manifest.json").read_text())
    into.mkdir(parents=True)
    with open(into / "site.sqlite", "wb") as out:
        for chunk in manifest["parts"]["db"]["chunks"]:  # the dump is its chunks joined
            with open(workspace.root / "store" / chunk["key"], "rb") as packed:
                zstandard.ZstdDecompressor().copy_stream(packed, out)
    (into / "www").mkdir()
    for link in [*manifest["chain"], snapshot_id]:
        files_key = json.loads((snapshots / link / "manifest.json").read_text())["parts"]["files"]
        archive = workspace.root / "store" / files_key["key"]
        subprocess.run(
            f"zstd -dc '{archive}' | tar -C '{into / 'www'}' --listed-incremental=/dev/null -xpf -",
            shell=True,
            check=True,
        )
    local = LocalExecutor()
    return Fingerprint(
        tree_fingerprint(local, str(into / "www")),
        SqliteEngine(str(into / "site.sqlite")).fingerprint(local),
    )


def edit_inventory(
    workspace: Workspace,
    name: str,
    site: dict[str, object] | None = None,
    **environment: object,
) -> None:
    """Add `site` keys to the site and `environment` keys to each of its environments."""
    data = yaml.safe_load(workspace.inventory_file.read_text())
    data["sites"][name].update(site or {})
    for env in data["sites"][name]["environments"].values():
        env.update(environment)
    workspace.inventory_file.write_text(yaml.safe_dump(data, sort_keys=False))


def add_posts(workspace: Workspace, site: str, count: int) -> None:
    path = workspace.root / f"sites/{site}/production/site.sqlite"
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.executemany(
            "INSERT INTO posts (title, body, published) VALUES (?, ?, ?)",
            [(f"written after the promotion {n}", "body", "2026-11-29") for n in range(count)],
        )


def post_count(workspace: Workspace, site: str) -> int:
    path = workspace.root / f"sites/{site}/production/site.sqlite"
    with closing(sqlite3.connect(path)) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM posts").fetchone()[0])
