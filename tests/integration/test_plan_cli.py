"""`tma-ops plan` as a real process on an archive-stack site, with OSV advisories from files.

The site (business tier) has five premium plugins; the channel offers:
- forms 1.0.0 -> 1.0.1: on hold, but fixes WPV-FORMS: planned (security beats the hold);
- seo 2.0 -> 2.0.1: fixes WPV-SEO; no release date and `unknown_release: hold`, so the cooldown
  would hold it: planned (security beats the cooldown);
- gallery 1.0.0 -> 1.0.1: no advisory; held by the cooldown (no release date);
- payments 3.1.0 -> 4.0.0: a major; held without --approve, planned with it;
- legacy 0.9: affected by WPV-LEGACY, no fix published: reported as still vulnerable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tma_ops.config import load_inventory
from tma_ops.steps import RunContext
from tma_ops.steps.plan import plan_updates

pytestmark = pytest.mark.integration

INSTALLED = {
    "forms": "1.0.0",
    "seo": "2.0",
    "gallery": "1.0.0",
    "payments": "3.1.0",
    "legacy": "0.9",
}
CHANNEL = {"forms": "1.0.1", "seo": "2.0.1", "gallery": "1.0.1", "payments": "4.0.0"}


def osv(ident: str, slug: str, *events: dict[str, str]) -> dict[str, Any]:
    return {
        "id": ident,
        "summary": f"{slug}: stored XSS",
        "database_specific": {"severity": "HIGH"},
        "affected": [
            {
                "package": {"ecosystem": "WordPress", "name": slug},
                "ranges": [{"type": "ECOSYSTEM", "events": list(events)}],
            }
        ],
    }


def environment(root: Path) -> dict[str, Any]:
    return {
        "executor": {"url": "local://", "python": "/usr/bin/python3"},
        "root": str(root / "www"),
        "database": {"engine": "sqlite", "path": str(root / "site.sqlite")},
        "smoke": [{"url": "http://127.0.0.1:9/"}],
    }


def build_site(workspace: Path, **updates: Any) -> Path:
    """The site's two environments, the channel, the OSV feed and the inventory file."""
    for env in ("production", "staging"):
        for name, version in INSTALLED.items():
            plugin = workspace / env / "www" / "plugins" / name
            plugin.mkdir(parents=True)
            (plugin / "VERSION").write_text(f"{version}\n")
    channel = workspace / "channel"
    channel.mkdir()
    for name, version in CHANNEL.items():
        with zipfile.ZipFile(channel / f"{name}-{version}.zip", "w") as archive:
            archive.writestr(f"{name}/VERSION", f"{version}\n")
    feed = workspace / "osv"
    feed.mkdir()
    (feed / "forms.json").write_text(
        json.dumps(osv("WPV-FORMS", "forms", {"introduced": "0"}, {"fixed": "1.0.1"}))
    )
    (feed / "more.json").write_text(
        json.dumps(
            {
                "vulns": [
                    osv("WPV-SEO", "seo", {"introduced": "2.0"}, {"fixed": "2.0.1"}),
                    osv("WPV-LEGACY", "legacy", {"introduced": "0"}),
                ]
            }
        )
    )
    policy = {
        "hold": {"forms": "client freeze until the sales end"},
        "unknown_release": "hold",
        "cooldown": {"major": 0},
        "advisories": ["osv"],
        "ecosystem": "WordPress",
        **updates,
    }
    site = {
        "tier": "business",
        "store": "file://./store",
        "stack": {"kind": "archive", "channel": "channel", "components_dir": "plugins"},
        "environments": {env: environment(workspace / env) for env in ("production", "staging")},
        "updates": policy,
    }
    inventory = workspace / "tma.yaml"
    inventory.write_text(yaml.safe_dump({"version": 1, "sites": {"blog": site}}))
    return inventory


def run(inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMA_OPS_")}
    return subprocess.run(
        [sys.executable, "-m", "tma_ops", "-i", str(inventory), *args],
        cwd=inventory.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def entries(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    document = json.loads(result.stdout)
    return {e["component"]: e for e in document["entries"]}


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return build_site(tmp_path)


def test_plan_table(inventory: Path) -> None:
    result = run(inventory, "plan", "blog")
    assert result.returncode == 1, result.stderr  # a component stays vulnerable: warnings
    lines = result.stdout.splitlines()
    assert lines[0] == "blog: plan from production (business tier): 2 planned, 2 held"
    assert lines[1].split() == [
        "component",
        "from",
        "to",
        "class",
        "advisories",
        "decision",
        "reason",
    ]
    rows = {line.split()[0]: line for line in lines[2:6]}
    assert rows["forms"].split()[:6] == ["forms", "1.0.0", "1.0.1", "patch", "WPV-FORMS", "planned"]
    assert "despite on hold: client freeze until the sales end" in rows["forms"]
    assert rows["seo"].split()[:6] == ["seo", "2.0", "2.0.1", "patch", "WPV-SEO", "planned"]
    assert "despite release date unknown" in rows["seo"]
    assert rows["gallery"].split()[5] == "held"
    assert "release date unknown; the patch cooldown of 3 days needs one" in rows["gallery"]
    assert rows["payments"].split()[3:6] == ["major", "-", "held"]
    assert "needs approval (--approve payments)" in rows["payments"]
    assert lines[6:] == [
        "blog: still vulnerable after this plan:",
        "  legacy 0.9: WPV-LEGACY (legacy: stored XSS): no fixed version published",
    ]
    assert result.stderr == ""


def test_plan_json_and_approval(inventory: Path) -> None:
    held = run(inventory, "plan", "blog", "--json")
    approved = run(inventory, "plan", "blog", "--json", "--approve", "payments")
    assert (held.returncode, approved.returncode) == (1, 1), held.stderr + approved.stderr
    assert entries(held)["payments"]["decision"] == "held"
    payments = entries(approved)["payments"]
    assert (payments["class"], payments["decision"]) == ("major", "planned")
    assert payments["reason"].startswith("major approved (--approve payments)")
    document = json.loads(approved.stdout)
    assert sorted(u["component"] for u in document["updates"]) == ["forms", "payments", "seo"]
    assert all(len(u["sha256"]) == 64 for u in document["updates"])
    assert document["approved"] == ["payments"]
    assert [v["component"] for v in document["vulnerable"]] == ["legacy"]
    assert entries(approved)["forms"]["security"] is True


def test_approve_all_and_unknown_names(inventory: Path) -> None:
    result = run(inventory, "plan", "blog", "--approve", "all", "--approve", "paymnets")
    assert "  --approve paymnets: no such component; nothing approved by it" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.strip().startswith("payments"))
    assert "major approved (--approve all)" in row


def test_inventory_approval_of_a_major_line(tmp_path: Path) -> None:
    inventory = build_site(tmp_path, approve={"payments": 4})
    assert entries(run(inventory, "plan", "blog", "--json"))["payments"]["decision"] == "planned"


def test_nothing_vulnerable_exits_0(tmp_path: Path) -> None:
    inventory = build_site(tmp_path)
    (tmp_path / "osv" / "more.json").unlink()
    result = run(inventory, "plan", "blog")
    assert result.returncode == 0, result.stderr
    assert "still vulnerable" not in result.stdout


def test_missing_advisory_source_is_one_line(tmp_path: Path) -> None:
    inventory = build_site(tmp_path, advisories=["feeds/osv.json"])
    result = run(inventory, "plan", "blog")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"tma-ops: error: advisories {tmp_path / 'feeds' / 'osv.json'}: not found; expected an "
        "OSV JSON file, a directory of them or an http(s) URL"
    ]


@pytest.mark.parametrize(
    ("updates", "expected"),
    [
        pytest.param(
            {"advisories": ["ftp://mirror/osv.json"]},
            "sites.blog.updates.advisories: expected an OSV file or directory path, or an "
            "http(s) URL; got 'ftp://mirror/osv.json'",
            id="advisory-url-scheme",
        ),
        pytest.param(
            {"cooldown": {"patch": -1}},
            "sites.blog.updates.cooldown.patch: expected an integer of at least 0; got -1",
            id="negative-cooldown",
        ),
        pytest.param(
            {"cooldown": {"hotfix": 1}},
            "sites.blog.updates.cooldown.hotfix: unknown key; expected one of patch, minor, major",
            id="unknown-class",
        ),
        pytest.param(
            {"unknown_release": "wait"},
            "sites.blog.updates.unknown_release: expected one of 'plan', 'hold'; got 'wait'",
            id="unknown-release-value",
        ),
        pytest.param(
            {"ecosystem": "Packagist"},
            "sites.blog.updates.ecosystem: expected one of 'PyPI', 'npm', 'WordPress'",
            id="unknown-ecosystem",
        ),
    ],
)
def test_bad_policy_is_one_line_naming_the_key(
    tmp_path: Path, updates: dict[str, Any], expected: str
) -> None:
    inventory = build_site(tmp_path, **updates)
    result = run(inventory, "plan", "blog")
    assert result.returncode == 3, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert expected in result.stderr


def test_plan_step_records_the_plan_for_the_cycle(inventory: Path) -> None:
    site = load_inventory(inventory).site("blog")
    told: list[str] = []
    ctx = RunContext(site, None, None, "run-1", {}, None, told.append, approved=frozenset({"*"}))
    record = plan_updates(ctx)
    assert sorted(u["component"] for u in record["updates"]) == ["forms", "payments", "seo"]
    assert [h["component"] for h in record["held"]] == ["gallery"]
    assert record["held"][0]["reason"].startswith("release date unknown")
    assert {e["component"] for e in record["entries"]} == set(CHANNEL)
    assert record["vulnerable"][0]["advisory"] == "WPV-LEGACY"
    assert record["approved"] == ["*"]
    assert any(line.startswith("blog: reading advisories from ") for line in told)
    assert "blog: 3 advisory record(s) read" in told
    assert any(line.startswith("blog: plan: payments 3.1.0 -> 4.0.0 (major)") for line in told)
    assert any(line.startswith("blog: still vulnerable: legacy 0.9: WPV-LEGACY") for line in told)
