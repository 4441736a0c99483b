"""Timing one command in a child process: wall time, peak RSS, and what it printed.

Peak RSS: `tree_rss` is the largest sum over the whole process tree, sampled every 50 ms from
/proc (a shell pipeline's tar + zstd + age run at the same time: their memory adds up). wait4's
ru_maxrss is not used: on Linux it keeps the parent's high-water mark across fork and exec, so a
small child would report this benchmark's own size. The tma-ops child reports its own VmHWM.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from snapbench.services import descendants, kill_tree

PAGE = resource.getpagesize()
SAMPLE_EVERY = 0.05
TIMELINE_EVERY = 0.5


@dataclass
class Run:
    seconds: float
    tree_rss: int  # bytes
    output: str
    cpu: float = 0.0  # user + system seconds of the process and the descendants it waited for
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (seconds, tree RSS)


class CommandFailed(RuntimeError):
    pass


class TreeRss(threading.Thread):
    """Samples the summed resident memory of a process and its descendants."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.timeline: list[tuple[float, int]] = []  # one sample every TIMELINE_EVERY
        self._stop_event = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self._stop_event.wait(SAMPLE_EVERY):
            total = sum(_rss(pid) for pid in [self.pid, *descendants(self.pid)])
            self.peak = max(self.peak, total)
            elapsed = time.monotonic() - start
            if elapsed >= len(self.timeline) * TIMELINE_EVERY:
                self.timeline.append((round(elapsed, 2), total))

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def _rss(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * PAGE if len(fields) > 1 else 0


def measured(argv: list[str], *, env: dict[str, str] | None = None, log: Path) -> Run:
    """Run argv to completion; raise CommandFailed (with the end of its stderr) if it fails."""
    with tempfile.TemporaryFile() as out, open(log, "ab") as err:
        err.write(f"\n$ {' '.join(argv)}\n".encode())
        err.flush()
        start = time.perf_counter()
        process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
        )
        sampler = TreeRss(process.pid)
        sampler.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            sampler.stop()
            kill_tree(process)
            raise
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        tree = sampler.stop()
        out.seek(0)
        output = out.read().decode(errors="replace")
    if process.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-8:]
        raise CommandFailed(
            f"{argv[0]} exited {process.returncode}: " + " | ".join(tail) + f" (log: {log})"
        )
    cpu = usage.ru_utime + usage.ru_stime
    return Run(seconds, tree, output, cpu, sampler.timeline)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
