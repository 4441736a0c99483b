"""`tma-ops inventory check` as a real process: exit code, one stderr line, traceback on --debug."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_support import DEMO, run

pytestmark = pytest.mark.integration


def demo_text(old: str, new: str) -> str:
    text = DEMO.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


def bad_executor() -> str:
    document = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    document["sites"]["blog"]["environments"]["production"]["executor"] = "ftp://host"
    return yaml.safe_dump(document, sort_keys=False)


BAD = [
    pytest.param(
        bad_executor(),
        "sites.blog.environments.production.executor.url: expected an executor URL like local://",
        id="unknown-executor",
    ),
    pytest.param(
        demo_text("    tier: critique\n", "    tier: [critique\n"),
        "invalid YAML",
        id="invalid-yaml",
    ),
    pytest.param(
        demo_text("database: {engine: sqlite", "databse: {engine: sqlite"),
        "sites.blog.environments.production.databse: unknown key; expected one of",
        id="typo-in-key",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_inventory_exits_3_with_one_line(text: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "tma.yaml"
    path.write_text(text, encoding="utf-8")
    result = run("inventory", "check", str(path), cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"tma-ops: error: {path}:"), result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_good_inventory_exits_0(tmp_path: Path) -> None:
    result = run("inventory", "check", str(DEMO), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"ok: 2 site(s) in {DEMO}: blog, shop\n"


def test_debug_prints_the_traceback(tmp_path: Path) -> None:
    path = tmp_path / "tma.yaml"
    path.write_text(bad_executor(), encoding="utf-8")
    result = run("--debug", "inventory", "check", str(path), cwd=tmp_path)
    assert result.returncode == 3
    assert "Traceback (most recent call last)" in result.stderr
    assert "tma_ops.errors.InventoryError" in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"tma-ops: error: {path}:")
    assert "expected an executor URL like local://" in last
