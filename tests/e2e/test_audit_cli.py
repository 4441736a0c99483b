"""`tma-ops audit` through the real CLI on the demo workspace: after a cycle and a restore test
every one of the 28 points shows its evidence or its declaration; a site never maintained
(shop, untouched here) raises the rule of the three criticals."""

from __future__ import annotations

import json

import pytest
from e2e_support import Workspace

from tma_ops.audit_points import POINTS
from tma_ops.errors import EXIT_OK, EXIT_WARNINGS

pytestmark = pytest.mark.e2e


def test_audit_lists_28_points_with_evidence_and_fires_on_a_neglected_site(
    workspace: Workspace,
) -> None:
    assert workspace.cli("cycle", "blog").returncode == EXIT_OK
    assert workspace.cli("restore-test", "blog").returncode == EXIT_OK

    audited = workspace.cli("--json", "audit", "blog")

    assert audited.returncode in (EXIT_OK, EXIT_WARNINGS), audited.stderr
    report = json.loads(audited.stdout)
    points = {p["id"]: p for p in report["points"]}
    assert list(points) == [p.id for p in POINTS]
    assert all(p["evidence"] for p in points.values())
    seen = {"C1": "pass", "C3": "pass", "D1": "pass", "D2": "pass", "B2": "pass", "C2": "fail"}
    assert {point: points[point]["status"] for point in seen} == seen
    assert points["C2"]["evidence"].startswith("store file://")  # the demo's store is local
    assert points["A5"]["status"] == "declared-pass"
    assert points["A5"]["evidence"].startswith("declared: CDN")
    assert points["E6"]["status"] == "declared-fail"
    # every point of the demo's blog is either seen in evidence or declared, none left unknown
    assert not [p for p in points.values() if p["status"] == "unknown"]
    assert points["D3"]["status"] == "declared-pass"
    assert points["B3"]["status"] == "declared-fail"
    assert report["audit_now"] is False
    assert audited.returncode == EXIT_WARNINGS  # C2 (critical) fails: the store is on the host

    table = workspace.cli("audit", "blog", "--lang", "fr")
    assert all(f"{p.id} {p.priority}" in table.stdout for p in POINTS)
    assert "Sauvegardes" in table.stdout and "declared: CDN" in table.stdout

    neglected = workspace.cli("--json", "audit", "shop")

    assert neglected.returncode == EXIT_WARNINGS
    shop = json.loads(neglected.stdout)
    assert shop["audit_now"] is True
    present = {s["id"] for s in shop["signals"] if s["state"] == "present"}
    assert {"no_staging", "stale_updates", "no_tested_backup"} <= present
    assert "AUDIT NOW" in workspace.cli("audit", "shop").stdout
