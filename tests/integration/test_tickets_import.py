"""Importing real CSV and YAML ticket files: good rows parsed, every bad row named file:line."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tma_ops.tickets import TicketImportError, load_tickets

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")
HEADER = "id,title,priority,kind,opened,first_response,resolved,time_spent,status\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(TicketImportError) as caught:
        load_tickets(path, PARIS)
    return caught.value.problems


def test_csv_tickets_are_read_with_the_client_time_zone(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        HEADER
        + "A-1,Site en panne,P0,,2024-05-06 07:40,2024-05-06T15:10:00+00:00,,2h15,\n"
        + '\n"A-2","Titre, avec virgule",p2,evolutive,2024-05-07T10:00,,,45,en cours\n',
    )
    first, second = load_tickets(path, PARIS)
    assert first.opened == datetime(2024, 5, 6, 7, 40, tzinfo=PARIS)
    assert first.first_response == datetime.fromisoformat("2024-05-06T15:10:00+00:00")
    assert (first.kind, first.time_spent, first.resolved, first.status) == (
        "corrective",
        timedelta(hours=2, minutes=15),
        None,
        None,
    )
    assert (second.title, second.priority, second.kind) == (
        "Titre, avec virgule",
        "P2",
        "evolutive",
    )
    assert second.origin == f"{path}:4"
    assert second.to_json()["time_spent_minutes"] == 45


def test_csv_semicolons_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffid;title;priority;opened\nX;Un titre;P3;2024-05-02 09:00\n".encode())
    [only] = load_tickets(path, PARIS)
    assert (only.id, only.priority) == ("X", "P3")


def test_csv_every_bad_row_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.csv",
        HEADER
        + "B-1,ok,P1,,2024-05-06 10:00,,,,\n"
        + "B-2,bad priority,P5,,2024-05-06 10:00,,,,\n"
        + "B-3,bad kind,P1,bug,2024-05-06 10:00,,,,\n"
        + "B-4,no time,P1,,2024-05-06,,,,\n"
        + "B-5,answered before opened,P1,,2024-05-06 10:00,2024-05-06 09:00,,,\n"
        + "B-6,bad time spent,P1,,2024-05-06 10:00,,,1.5h,\n"
        + ",no id,P1,,2024-05-06 10:00,,,,\n"
        + "B-1,duplicate,P1,,2024-05-06 10:00,,,,\n",
    )
    assert problems(path) == [
        f"{path}:3: priority: expected one of P0, P1, P2, P3; got 'P5'",
        f"{path}:4: kind: expected one of corrective, evolutive; got 'bug'",
        f"{path}:5: opened: expected an ISO date-time like 2024-05-03T14:30 or "
        "2024-05-03 14:30+02:00; got '2024-05-06'",
        f"{path}:6: first_response: expected a time after opened (2024-05-06T10:00:00+02:00); "
        "got 2024-05-06T09:00:00+02:00",
        f"{path}:7: time_spent: expected minutes (90) or hours and minutes (1h30); got '1.5h'",
        f"{path}:8: id: this column is required; got nothing",
        f"{path}:9: id: 'B-1' is already used at line 2; expected each ticket id once",
    ]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("id,title,priority,opened,owner", "header: unknown column 'owner'"),
        ("id,title,opened", "header: missing column 'priority'"),
        ("id,title,priority,opened,id", "header: a column written twice"),
    ],
)
def test_csv_bad_header(tmp_path: Path, header: str, message: str) -> None:
    path = write(tmp_path, "h.csv", header + "\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:1: {message}; expected columns among id, title")


def test_yaml_tickets_and_their_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.yaml",
        "# tickets of the site\n"
        "- id: 101\n"
        "  title: Formulaire cassé\n"
        "  priority: P1\n"
        "  opened: 2024-05-06T10:00:00\n"
        "  first_response: 2024-05-06 11:30+02:00\n"
        "  time_spent: 90\n"
        "- id: 102\n"
        "  title: Nouveau champ\n"
        "  priority: P3\n"
        "  kind: evolutive\n"
        "  opened: '2024-05-07 09:00'\n"
        "  time_spent: 1h30\n",
    )
    first, second = load_tickets(path, PARIS)
    assert first.id == "101" and first.opened == datetime(2024, 5, 6, 10, tzinfo=PARIS)
    assert first.first_response == datetime(2024, 5, 6, 11, 30, tzinfo=PARIS)
    assert first.time_spent == second.time_spent == timedelta(minutes=90)
    assert (first.origin, second.origin) == (f"{path}:2", f"{path}:8")


def test_yaml_bad_rows_are_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.yaml",
        "- {id: a, title: t, priority: P1, opened: 2024-05-06}\n"
        "- {id: b, title: t, priority: P9, opened: '2024-05-06 10:00'}\n"
        "- {id: a, title: t, priority: P1, opened: '2024-05-06 10:00'}\n",
    )
    assert problems(path) == [
        f"{path}:1: opened: expected an ISO date-time like 2024-05-03T14:30 or "
        "2024-05-03 14:30+02:00; got a date without a time",
        f"{path}:2: priority: expected one of P0, P1, P2, P3; got 'P9'",
        f"{path}:3: id: 'a' is already used at line 1; expected each ticket id once",
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("t.yaml", "id: 1\n", ":1: expected a list of tickets"),
        ("t.yaml", "- [1, 2]\n", ":1: expected a ticket mapping"),
        ("t.yaml", "- id: 1\n  owner: me\n", ":1: owner: unknown key; expected one of id, title"),
        ("t.yaml", "- id: [1\n", ":2: invalid YAML"),
        ("t.json", "[]", ": unknown ticket file type '.json'"),
    ],
)
def test_file_level_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = write(tmp_path, name, text)
    [problem] = problems(path)
    assert problem.startswith(f"{path}{message}")


def test_missing_file(tmp_path: Path) -> None:
    [problem] = problems(tmp_path / "none.csv")
    assert problem.startswith(f"{tmp_path / 'none.csv'}: cannot read the ticket file")
