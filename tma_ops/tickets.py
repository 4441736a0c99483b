"""Importing a site's tickets from a CSV file (header row) or a YAML file (a list of mappings).

Columns: id, title, priority (P0-P3), kind (corrective or evolutive, default corrective),
opened, first_response, resolved (ISO date-times; without an offset they are in the client's
time zone; empty: not yet), time_spent (minutes, or 1h30), status (free text, optional).
Every bad row is reported as one line naming file:line, the column and what was expected.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal

import yaml

from tma_ops.errors import EXIT_ERROR, TmaError
from tma_ops.model_contract import PRIORITIES, Priority

Kind = Literal["corrective", "evolutive"]
KINDS: tuple[Kind, ...] = ("corrective", "evolutive")
COLUMNS = ("id", "title", "priority", "kind", "opened", "first_response", "resolved",
           "time_spent", "status")  # fmt: skip
REQUIRED = ("id", "title", "priority", "opened")
TIME_SPENT = re.compile(r"^(?:(\d+)h(?:(\d{1,2})(?:m|min)?)?|(\d+)(?:m|min)?)$")


class TicketImportError(TmaError):
    """Bad rows in a ticket file; `problems` holds one line per bad row."""

    exit_code = EXIT_ERROR

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Ticket:
    id: str
    title: str
    priority: Priority
    kind: Kind
    opened: datetime  # aware
    first_response: datetime | None
    resolved: datetime | None
    time_spent: timedelta
    status: str | None
    origin: str  # file:line

    def to_json(self) -> dict[str, Any]:
        def stamp(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat()

        return {
            "id": self.id,
            "title": self.title,
            "priority": self.priority,
            "kind": self.kind,
            "opened": stamp(self.opened),
            "first_response": stamp(self.first_response),
            "resolved": stamp(self.resolved),
            "time_spent_minutes": int(self.time_spent.total_seconds() // 60),
            "status": self.status,
        }


def load_tickets(path: Path, zone: tzinfo) -> list[Ticket]:
    """The tickets of a CSV (.csv) or YAML (.yaml, .yml) file; naive times are in `zone`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise TicketImportError(
            [f"{path}: cannot read the ticket file: {reason}; expected a CSV or YAML file"]
        ) from exc
    if path.suffix.lower() == ".csv":
        rows = csv_rows(path, text)
    elif path.suffix.lower() in (".yaml", ".yml"):
        rows = yaml_rows(path, text)
    else:
        raise TicketImportError(
            [f"{path}: unknown ticket file type {path.suffix!r}; expected .csv, .yaml or .yml"]
        )
    return tickets_of(path, rows, zone)


Row = tuple[int, dict[str, Any]]  # line number, column -> value


def csv_rows(path: Path, text: str) -> list[Row]:
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [name.strip().lower() for name in next(reader, [])]
    _check_header(path, 1, header)
    rows: list[Row] = []
    line = reader.line_num + 1
    for cells in reader:
        if any(cell.strip() for cell in cells):
            if len(cells) > len(header):
                raise TicketImportError(
                    [
                        f"{path}:{line}: expected {len(header)} columns as in the header; "
                        f"got {len(cells)}"
                    ]
                )
            rows.append((line, dict(zip(header, cells, strict=False))))
        line = reader.line_num + 1
    return rows


def yaml_rows(path: Path, text: str) -> list[Row]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else []
    except yaml.MarkedYAMLError as exc:
        where = f":{exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise TicketImportError([f"{path}{where}: invalid YAML: {exc.problem}"]) from exc
    finally:
        loader.dispose()
    if not isinstance(data, list) or not isinstance(node, yaml.SequenceNode | type(None)):
        raise TicketImportError([f"{path}:1: expected a list of tickets (one mapping each)"])
    rows: list[Row] = []
    for item, item_node in zip(data, node.value if node else [], strict=True):
        line = item_node.start_mark.line + 1
        if not isinstance(item, dict):
            raise TicketImportError([f"{path}:{line}: expected a ticket mapping; got {item!r}"])
        unknown = [str(k) for k in item if str(k) not in COLUMNS]
        if unknown:
            raise TicketImportError(
                [f"{path}:{line}: {unknown[0]}: unknown key; expected one of {', '.join(COLUMNS)}"]
            )
        rows.append((line, {str(k): v for k, v in item.items()}))
    return rows


def _check_header(path: Path, line: int, header: list[str]) -> None:
    unknown = [name for name in header if name not in COLUMNS]
    missing = [name for name in REQUIRED if name not in header]
    if unknown or missing or len(set(header)) != len(header):
        what = (
            f"unknown column {unknown[0]!r}"
            if unknown
            else f"missing column {missing[0]!r}"
            if missing
            else "a column written twice"
        )
        raise TicketImportError(
            [
                f"{path}:{line}: header: {what}; expected columns among {', '.join(COLUMNS)} "
                f"with at least {', '.join(REQUIRED)}"
            ]
        )


def tickets_of(path: Path, rows: list[Row], zone: tzinfo) -> list[Ticket]:
    """Parse every row; refuse the file with one line per bad row and per duplicate id."""
    tickets: list[Ticket] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        ticket_id = "" if _blank(row.get("id")) else str(row["id"]).strip()
        if ticket_id in seen:
            problems.append(
                f"{path}:{line}: id: {ticket_id!r} is already used at line {seen[ticket_id]}; "
                "expected each ticket id once"
            )
            continue
        if ticket_id:
            seen[ticket_id] = line
        try:
            tickets.append(ticket_of(row, zone, f"{path}:{line}"))
        except ValueError as exc:
            problems.append(f"{path}:{line}: {exc}")
    if problems:
        raise TicketImportError(problems)
    return tickets


def ticket_of(row: dict[str, Any], zone: tzinfo, origin: str) -> Ticket:
    """One ticket; a ValueError names the column and what was expected."""
    for column in REQUIRED:
        if _blank(row.get(column)):
            raise ValueError(f"{column}: this column is required; got nothing")
    opened = _instant(row, "opened", zone)
    assert opened is not None  # required above
    first_response = _instant(row, "first_response", zone)
    resolved = _instant(row, "resolved", zone)
    for column, moment in (("first_response", first_response), ("resolved", resolved)):
        if moment is not None and moment < opened:
            raise ValueError(
                f"{column}: expected a time after opened ({opened.isoformat()}); "
                f"got {moment.isoformat()}"
            )
    status = row.get("status")
    return Ticket(
        id=str(row["id"]).strip(),
        title=str(row["title"]).strip(),
        priority=_choice(row, "priority", PRIORITIES, None),
        kind=_choice(row, "kind", KINDS, "corrective"),
        opened=opened,
        first_response=first_response,
        resolved=resolved,
        time_spent=parse_time_spent(row.get("time_spent")),
        status=None if _blank(status) else str(status).strip(),
        origin=origin,
    )


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _choice(row: dict[str, Any], column: str, allowed: tuple[str, ...], default: str | None) -> Any:
    value = row.get(column)
    if _blank(value) and default is not None:
        return default
    text = str(value).strip()
    chosen = text.upper() if column == "priority" else text.lower()
    if chosen not in allowed:
        raise ValueError(f"{column}: expected one of {', '.join(allowed)}; got {text!r}")
    return chosen


def _instant(row: dict[str, Any], column: str, zone: tzinfo) -> datetime | None:
    value = row.get(column)
    if _blank(value):
        return None
    moment: datetime | None = value if isinstance(value, datetime) else None
    if moment is None and isinstance(value, str) and re.search(r"\d[T ]\d", value.strip()):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    if moment is None:
        kind = "a date without a time" if isinstance(value, date) else repr(value)
        raise ValueError(
            f"{column}: expected an ISO date-time like 2024-05-03T14:30 or "
            f"2024-05-03 14:30+02:00; got {kind}"
        )
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def parse_time_spent(value: Any) -> timedelta:
    """Minutes (90), or hours and minutes (1h30, 2h, 45m); empty is no time."""
    if _blank(value):
        return timedelta(0)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return timedelta(minutes=value)
    match = TIME_SPENT.match(str(value).strip().lower().replace(" ", ""))
    if not match or isinstance(value, bool | float):
        raise ValueError(
            f"time_spent: expected minutes (90) or hours and minutes (1h30); got {value!r}"
        )
    hours, after_hours, minutes = match.groups()
    if hours is not None:
        return timedelta(hours=int(hours), minutes=int(after_hours or 0))
    return timedelta(minutes=int(minutes))
