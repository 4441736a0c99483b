"""What the engines' `count_rows` share: checked identifiers and the `since` bound.

Identifiers are checked against a strict pattern before any SQL is written, and quoted by each
engine; the bound is parsed and re-printed by us, so no caller text reaches a query as such.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from tma_ops.errors import InventoryError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


@dataclass(frozen=True)
class Since:
    """Count rows whose `column` is later than `moment` (aware, UTC)."""

    column: str
    moment: datetime

    @property
    def text(self) -> str:
        """The moment as the engines read a UTC date and time: 2026-11-29 01:02:03.000000."""
        return self.moment.strftime("%Y-%m-%d %H:%M:%S.%f")

    @property
    def epoch(self) -> str:
        """The moment as unix seconds, for integer epoch columns: 1795914123.000000."""
        return f"{self.moment.timestamp():.6f}"


def check_identifier(name: str, what: str = "table", *, qualified: bool = False) -> list[str]:
    """The parts of a checked name (`schema.table` when `qualified`), else an InventoryError."""
    parts = name.split(".") if isinstance(name, str) else [""]
    if not 1 <= len(parts) <= (2 if qualified else 1) or not all(map(IDENTIFIER.match, parts)):
        form = " (or schema.table)" if qualified else ""
        if not qualified and what == "table" and isinstance(name, str) and "." in name:
            form = " (schema.table only on PostgreSQL)"
        raise InventoryError(
            f"{what} name {name!r} is not valid: expected letters, digits, _ or $, not starting "
            f"with a digit{form}"
        )
    return parts


def since_bound(column: str | None, since: str | None) -> Since | None:
    """The checked bound of a count, None to count every row."""
    if column is None and since is None:
        return None
    if column is None or since is None:
        raise InventoryError("a row count since a moment needs both since_column and since")
    check_identifier(column, "column")
    try:
        moment = datetime.fromisoformat(since)
    except (TypeError, ValueError):
        raise InventoryError(
            f"since {since!r} is not valid: expected an ISO-8601 UTC timestamp like "
            "2026-11-29T01:02:03Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Since(column, moment.astimezone(UTC))


def quote_name(parts: list[str], mark: str) -> str:
    """A checked name quoted for an engine (mark: '"' or '`'); the parts hold no quote mark."""
    return ".".join(mark + part + mark for part in parts)
