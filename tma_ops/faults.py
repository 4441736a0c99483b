"""Named pause points for crash-recovery tests.

When TMA_OPS_PAUSE_AT names a point, the process writes TMA_OPS_PAUSE_FILE (if set) and sleeps
there, so a test can kill it with SIGKILL at an exact place in the cycle. Unset, nothing happens.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def pause_point(name: str) -> None:
    if os.environ.get("TMA_OPS_PAUSE_AT") != name:
        return
    marker = os.environ.get("TMA_OPS_PAUSE_FILE")
    if marker:
        Path(marker).write_text(f"{os.getpid()} {name}\n")
    time.sleep(float(os.environ.get("TMA_OPS_PAUSE_SECONDS", "300")))
