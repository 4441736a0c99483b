"""What an inventory may say about a site's client and its uptime watch.

client:
  name: Boulangerie Martin
  timezone: Europe/Paris          # IANA name; month boundaries and naive times are taken there
  language: fr
monitor:
  url: https://shop.example.org/  # default: production's first http check
  interval_s: 60
  tls_warn_days: 14
  sla_uptime: 99.5                # default by tier
  maintenance_windows:
    - {start: "2026-03-14T22:00", end: "2026-03-15T02:00"}
    - {weekly: "sun 02:00-04:00"}
  alerts:
    webhook: https://hooks.example.org/T0/B0/secret
    email: {to: [ops@example.org], from: monitor@example.org, smtp_host: smtp.example.org}
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKLY = re.compile(r"^\s*(mon|tue|wed|thu|fri|sat|sun)\s+(\d\d):(\d\d)\s*-\s*(\d\d):(\d\d)\s*$")
# The guide's SLA target is 99.5 % a month; every tier is held to it unless the site says more.
SLA_BY_TIER = {"essentiel": 99.5, "business": 99.5, "critique": 99.5}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"expected an IANA time zone like Europe/Paris, got {value!r}") from exc
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value


TimeZoneName = Annotated[str, AfterValidator(_timezone)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class ClientSpec(Strict):
    name: str | None = None  # None: the site's name
    timezone: TimeZoneName = "Europe/Paris"
    language: Literal["fr", "en"] = "fr"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class MaintenanceWindow(Strict):
    """A declared maintenance: one-off `{start, end}` (ISO; naive times are in the client's
    zone) or every week, `{weekly: "sun 02:00-04:00"}` in the client's zone, where an end
    before the start runs past midnight into the next day."""

    start: datetime | None = None
    end: datetime | None = None
    weekly: str | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError as exc:
                raise ValueError(f"expected an ISO date-time, got {value!r}") from exc
        return value

    @field_validator("weekly")
    @classmethod
    def _weekly_text(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = WEEKLY.match(value)
        if not match:
            raise ValueError(f"expected a weekly window like 'sun 02:00-04:00', got {value!r}")
        hours, minutes = (int(match[2]), int(match[4])), (int(match[3]), int(match[5]))
        if any(h > 24 or (h == 24 and m) or m > 59 for h, m in zip(hours, minutes, strict=True)):
            raise ValueError(f"expected times between 00:00 and 24:00, got {value!r}")
        if hours[0] == 24 or (hours[0], minutes[0]) == (hours[1], minutes[1]):
            raise ValueError(f"expected a start before 24:00 and different from the end: {value!r}")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> MaintenanceWindow:
        if self.weekly is not None:
            if self.start is not None or self.end is not None:
                raise ValueError("expected either weekly or start and end, not both")
            return self
        if self.start is None or self.end is None:
            raise ValueError("expected start and end (ISO date-times) or weekly: 'sun 02:00-04:00'")
        if (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError("expected start and end both with a UTC offset or both without")
        if self.end <= self.start:
            raise ValueError(f"expected end after start, got {self.start} .. {self.end}")
        return self

    @property
    def weekday(self) -> int:
        return WEEKDAYS.index((self.weekly or "").split()[0])

    def bounds(self) -> tuple[time, int]:
        """A weekly window's local start time and duration in minutes."""
        match = WEEKLY.match(self.weekly or "")
        assert match is not None  # validated
        start = int(match[2]) * 60 + int(match[3])
        end = int(match[4]) * 60 + int(match[5])
        duration = end - start if end > start else end + 24 * 60 - start
        return time(start // 60, start % 60), duration


class EmailAlerts(Strict):
    to: Annotated[list[str], Field(min_length=1)]
    from_: str = Field(alias="from")
    smtp_host: str
    smtp_port: int = Field(25, ge=1, le=65535)
    username: str | None = None
    password_file: str | None = None
    starttls: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("to", mode="before")
    @classmethod
    def _one_address(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class AlertSpec(Strict):
    webhook: HttpUrl | None = None  # receives a JSON POST; its URL often holds a token
    email: EmailAlerts | None = None


class MonitorSpec(Strict):
    url: HttpUrl | None = None  # None: production's first http check
    interval_s: int = Field(60, ge=5, le=86400)
    timeout_s: float = Field(10, gt=0, le=120)
    tls_warn_days: int = Field(14, ge=0, le=365)
    maintenance_windows: list[MaintenanceWindow] = []
    sla_uptime: float | None = Field(None, gt=0, le=100)  # None: the tier's target
    alerts: AlertSpec = AlertSpec()

    def secrets(self) -> list[str]:
        return [self.alerts.webhook] if self.alerts.webhook else []


def sla_target(spec: MonitorSpec, tier: str) -> float:
    return spec.sla_uptime if spec.sla_uptime is not None else SLA_BY_TIER.get(tier, 99.5)
