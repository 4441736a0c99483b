"""Holding SIGTERM and SIGINT while a child process runs, then delivering them."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

HELD = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def held_signals() -> Iterator[Callable[[], bool]]:
    """Yield a `cancelled()` callback for a runner polling its child (ansible-runner does).

    A signal arriving inside the block only marks the run cancelled, so the runner can stop its
    child cleanly; once the block ends, the previous handlers are back and the signal is raised
    again, reaching them as if it had just arrived.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    caught: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in HELD}
    try:
        yield lambda: bool(caught)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])
