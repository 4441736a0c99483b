"""Run the real `tma-ops` command line in a subprocess, with no TMA_OPS_* settings leaking in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).parents[2] / "inventories" / "demo" / "tma.yaml"


def run(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMA_OPS_")}
    return subprocess.run(
        [sys.executable, "-m", "tma_ops", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
