"""The steps of the preventive cycle. Each takes the run context and returns the data it records."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tma_ops.config import Site
from tma_ops.journal import Journal
from tma_ops.policy import Outputs
from tma_ops.progress import TransferProgress
from tma_ops.stores import Store


@dataclass
class RunContext:
    site: Site
    store: Store
    journal: Journal
    run_id: str
    outputs: Outputs
    progress: TransferProgress
    say: Callable[[str], None]
    # Components whose major updates the operator approved for this run ("*": all of them).
    approved: frozenset[str] = frozenset()
    # Evidence files of the run's checks (screenshots), kept for the report.
    artifacts: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "tma-ops-checks")

    def record(self, step: str, status: str, data: dict[str, Any] | None = None) -> None:
        self.journal.append(
            run_id=self.run_id, site=self.site.name, step=step, status=status, data=data or {}
        )

    def tell(self, message: str) -> None:
        self.say(f"{self.site.name}: {message}")


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    action: Callable[[RunContext], dict[str, Any]]
    touches_production: bool = False
