"""`tma-ops tickets` as a real process on the demo inventory and on broken ticket files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import DEMO, run

pytestmark = pytest.mark.integration


def test_demo_month_as_json(tmp_path: Path) -> None:
    result = run("-i", str(DEMO), "tickets", "blog", "--month", "2024-05", "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # the P0 of 6 May was answered late
    report = json.loads(result.stdout)
    assert (report["site"], report["month"], report["timezone"]) == (
        "blog",
        "2024-05",
        "Europe/Paris",
    )
    assert [t["id"] for t in report["tickets"]] == [f"BLOG-{n}" for n in range(121, 128)]
    consumption = report["consumption"]
    assert consumption["corrective"] == {
        "used": 5, "allowance": 5, "carried_over": 0, "available": 5, "unlimited": False,
        "over": 0, "gauge": 1.0,
    }  # fmt: skip
    assert consumption["evolutive_hours"]["used"] == 2.75
    assert consumption["evolutive_hours"]["carried_over"] == 1.0  # April left 1 h of 2
    assert consumption["over"] is False
    compliance = report["compliance"]
    assert compliance["missed"] == ["BLOG-121"]
    p0, p1, p2, p3 = compliance["priorities"]
    assert (p0["late"], p0["rate"], p0["resolutions_missed"]) == (1, 0.0, 0)
    assert (p1["met"], p1["rate"]) == (1, 1.0)
    assert (p2["met"], p2["pending"], p2["rate"]) == (2, 1, 1.0)  # BLOG-127 still within target
    assert p3["untimed"] == 2
    by_id = {t["id"]: t for t in compliance["tickets"]}
    # Opened Tuesday 16:30, answered Friday 10:00: 8 and 9 May are holidays in the contract.
    assert by_id["BLOG-122"]["first_response"]["elapsed_hours"] == 2.5


def test_demo_month_as_table(tmp_path: Path) -> None:
    result = run("-i", str(DEMO), "tickets", "blog", "--month", "2024-05", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("blog: tickets of 2024-05 (business tier, times in Europe/Paris)")
    assert "  corrective tickets  5 used of 5" in lines
    assert "  evolutive hours     2.75 used of 3.00 (2.00 + 1.00 carried over)" in lines
    assert any(
        line.split()[:2] == ["BLOG-121", "P0"] and "late (6.2h > 4.0h" in line for line in lines
    )


def test_an_earlier_month_is_within_targets(tmp_path: Path) -> None:
    result = run("-i", str(DEMO), "tickets", "blog", "--month", "2024-04", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["consumption"]["evolutive_hours"]["used"] == 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tickets", "shop", "--month", "2024-05"], "sites.shop.contract.tickets: no ticket file"),
        (["tickets", "blog", "--month", "2024-5"], "--month: expected a month written YYYY-MM"),
        (["tickets", "blog", "--month", "2024-05", "--as-of", "soon"], "--as-of: expected an ISO"),
    ],
)
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run("-i", str(DEMO), *args, cwd=tmp_path)
    assert result.returncode in (2, 3)
    assert result.stderr.startswith(f"tma-ops: error: {message}")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_bad_ticket_rows_each_get_a_line(tmp_path: Path) -> None:
    inventory = tmp_path / "tma.yaml"
    inventory.write_text(
        DEMO.read_text(encoding="utf-8").replace("tickets-blog.csv", "tickets.yaml"),
        encoding="utf-8",
    )
    (tmp_path / "tickets.yaml").write_text(
        "- {id: 1, title: a, priority: P7, opened: '2024-05-02 10:00'}\n"
        "- {id: 2, title: b, priority: P1, opened: '2024-05-02 10:00', time_spent: lots}\n",
        encoding="utf-8",
    )
    result = run("-i", str(inventory), "tickets", "blog", "--month", "2024-05", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"tma-ops: error: {tmp_path / 'tickets.yaml'}:1: priority: expected one of P0, P1, P2, "
        "P3; got 'P7'",
        f"tma-ops: error: {tmp_path / 'tickets.yaml'}:2: time_spent: expected minutes (90) or "
        "hours and minutes (1h30); got 'lots'",
    ]
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("days: mon-fri", "days: mon-fry", "sites.blog.contract.business_hours.days: expected "
         "weekday names"),
        ("{max_hours: 2}", "{max_hours: -2}", "sites.blog.contract.carry_over.max_hours: "
         "expected a number of at least 0; got -2"),
    ],
)  # fmt: skip
def test_bad_contract_is_one_inventory_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    inventory = tmp_path / "tma.yaml"
    text = DEMO.read_text(encoding="utf-8")
    assert old in text
    inventory.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = run("inventory", "check", str(inventory), cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.startswith(f"tma-ops: error: {inventory}:")
    assert message in result.stderr and len(result.stderr.splitlines()) == 1
