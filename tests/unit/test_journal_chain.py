"""The journal's chain decisions, on rows held in memory: hashing, checks, verification."""

from __future__ import annotations

from typing import Any

import pytest

from tma_ops.journal_chain import (
    GENESIS_HASH,
    canonical_json,
    chained_event,
    check_json_data,
    checked_fields,
    equal_filters,
    row_values,
    verify_rows,
)
from tma_ops.redact import Redactor

pytestmark = pytest.mark.unit

COLUMNS = ("id", "time", "run_id", "site", "step", "status", "data", "prev_hash", "hash")


def chain(count: int) -> list[dict[str, Any]]:
    """Rows as a storage keeps them: data as canonical JSON text."""
    rows: list[dict[str, Any]] = []
    prev = GENESIS_HASH
    for i in range(1, count + 1):
        fields = {"run_id": "r", "site": "shop", "step": f"s{i}", "status": "ok"}
        event = chained_event(i, prev, fields, {"i": i})
        rows.append(dict(zip(COLUMNS, row_values(event), strict=True)))
        prev = event.hash
    return rows


def test_canonical_json_is_compact_sorted_and_unicode() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"ok": [1, 2.5, None, True, "x", {"n": {}}]}, None),
        ({"t": (1, 2)}, None),
        ({"x": float("inf")}, "JSON cannot represent"),
        ({"a": {"b": object()}}, r"data\['a'\]\['b'\] is a object"),
        ({("t",): 1}, "has a tuple key"),
        ({"b": b"bytes"}, r"data\['b'\] is a bytes"),
    ],
)
def test_check_json_data(value: Any, message: str | None) -> None:
    if message is None:
        check_json_data(value)
        return
    with pytest.raises(TypeError, match=message):
        check_json_data(value)


def test_checked_fields_redacts_and_refuses() -> None:
    redact = Redactor(["hunter2-secret"])
    fields, clean = checked_fields(
        redact, {"run_id": "r", "site": "s"}, {"cmd": "x hunter2-secret", "token": 5}
    )
    assert fields == {"run_id": "r", "site": "s"}
    assert clean == {"cmd": "x ***", "token": "***"}
    assert checked_fields(redact, {}, None)[1] == {}
    with pytest.raises(TypeError, match="step must be str, not int"):
        checked_fields(redact, {"step": 3}, {})


@pytest.mark.parametrize(
    ("given", "clause", "values"),
    [
        ({}, "", []),
        ({"site": None, "run_id": None}, "", []),
        ({"site": "shop", "run_id": None}, " WHERE site = ?", ["shop"]),
        ({"site": "a", "run_id": "b"}, " WHERE site = ? AND run_id = ?", ["a", "b"]),
    ],
)
def test_equal_filters(given: dict[str, str | None], clause: str, values: list[str]) -> None:
    assert equal_filters("?", **given) == (clause, values)


def _edit(rows: list[dict[str, Any]], index: int, **changes: Any) -> None:
    rows[index] = rows[index] | changes


@pytest.mark.parametrize(
    ("damage", "head", "expected"),
    [
        (None, "last", (True, 4, None, "ok: 4 events, chain intact")),
        (
            lambda rows: _edit(rows, 1, status="failed"),
            "last",
            (False, 1, 2, "event 2: hash does not match its content (the event was edited)"),
        ),
        (
            lambda rows: _edit(rows, 2, data="not json"),
            "last",
            (False, 2, 3, "event 3: data is not valid JSON (the event was edited)"),
        ),
        (
            lambda rows: _edit(rows, 0, data='{"i": 1}'),
            "last",
            (False, 0, 1, "event 1: data is not in canonical form (the event was edited)"),
        ),
        (
            lambda rows: rows.pop(1),
            "last",
            (
                False,
                1,
                3,
                "event 3: previous event missing or altered (chain broken after event 1)",
            ),
        ),
        (
            lambda rows: rows.pop(),
            (4, "f" * 64),
            (False, 3, 4, "journal truncated: head says event 4, last found is 3"),
        ),
        (None, None, (False, 4, 5, "journal head is missing")),
        (
            None,
            (3, "f" * 64),
            (
                False,
                4,
                4,
                "journal head does not match: head says event 3, last found is 4 "
                "(events written around the journal or head altered)",
            ),
        ),
    ],
)
def test_verify_rows(damage: Any, head: Any, expected: tuple[Any, ...]) -> None:
    rows = chain(4)
    if head == "last":
        head = (rows[-1]["id"], rows[-1]["hash"])
    if damage:
        damage(rows)
    report = verify_rows(rows, head)
    assert (report.ok, report.count, report.first_broken_id, report.reason) == expected
