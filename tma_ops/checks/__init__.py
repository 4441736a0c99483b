"""Smoke check seam: each check looks at one environment and says pass or fail, with why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class CheckResult:
    name: str  # what was checked, e.g. the URL
    ok: bool
    detail: str  # one line: why it failed, or a short summary when it passed
    data: dict[str, Any] = field(default_factory=dict)  # measurements (status, latency_ms, ...)


class Check(Protocol):
    def check(self) -> CheckResult: ...
