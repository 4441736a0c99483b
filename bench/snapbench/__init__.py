"""Pieces of bench/snapshot_bench.py: site generation, services, measurement, legs, report."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The test harness (tests/harness: MariaDB) is imported as `harness`, as the tests do.
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))
