"""Pieces of bench/rollback_bench.py: the site kept as releases, the two legs, the report.

They build on bench/snapbench (site generator, MariaDB and process measuring): bench/ and tests/
(the harness, imported as `harness`) go on sys.path here, so that a child process started
from this directory finds them too.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import snapbench  # noqa: E402, F401 - puts tests/ on sys.path for the harness
