"""Smoke check seam: each check looks at one environment and says pass or fail, with why.

A check may need to remember something from before the change it judges (log files' sizes,
screenshots): `baseline()` returns it as JSON-able data, recorded in the journal, and
`check(baseline)` gets it back. A check run without a baseline (after an emergency rollback, for
instance) judges what it can and says what it could not compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tma_ops.model import Environment


@dataclass(frozen=True)
class CheckResult:
    name: str  # what was checked, e.g. the URL
    ok: bool
    detail: str  # one line: why it failed, or a short summary when it passed
    data: dict[str, Any] = field(default_factory=dict)  # measurements (status, latency_ms, ...)
    kind: str = "http"


@dataclass(frozen=True)
class CheckTarget:
    """The environment a check looks at, and the local directory for its evidence files."""

    site: str
    env_name: str
    env: Environment
    artifacts: Path  # e.g. <state>/artifacts/<site>/<run>/<env>/; created by the check if needed


class Check(Protocol):
    name: str

    def baseline(self) -> dict[str, Any]:
        """What to remember before the change (JSON-able); {} when nothing is needed."""
        ...

    def check(self, baseline: dict[str, Any] | None = None) -> CheckResult: ...
