"""The exception tree. Each subclass carries the process exit code that `main()` maps it to.

Exit codes (documented in the README):
  0 ok, 1 warnings, 2 error, 3 invalid inventory, 4 site lock held,
  5 smoke test failed and the change was rolled back (production as before),
  6 integrity failure (checksum or journal chain), 7 rollback failed (production needs attention),
  130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_WARNINGS = 1
EXIT_ERROR = 2
EXIT_INVALID_INVENTORY = 3
EXIT_LOCK_HELD = 4
EXIT_ROLLED_BACK = 5
EXIT_INTEGRITY = 6
EXIT_ROLLBACK_FAILED = 7
EXIT_INTERRUPTED = 130


class TmaError(Exception):
    """Root of every error tma-ops raises on purpose; the message is one clear line."""

    exit_code = EXIT_ERROR


class InventoryError(TmaError):
    exit_code = EXIT_INVALID_INVENTORY


class LockHeldError(TmaError):
    exit_code = EXIT_LOCK_HELD


class StaleLockError(LockHeldError):
    """A lock whose owner process is gone: reported, broken only on explicit request."""


class ExecutorError(TmaError):
    """A command or transfer on an environment failed."""


class StoreError(TmaError):
    """The snapshot store refused or failed an operation."""


class ObjectNotFound(StoreError):
    pass


class ObjectLocked(StoreError):
    pass


class SnapshotError(TmaError):
    pass


class IntegrityError(TmaError):
    """Stored bytes, a planned archive or the journal chain do not match what was recorded."""

    exit_code = EXIT_INTEGRITY


class StackError(TmaError):
    """A stack driver could not read components or apply an update."""


class ReleaseError(TmaError):
    """A release tree (releases/<id>, shared/, `current`) is malformed or refused a change."""


class SmokeFailedRolledBack(TmaError):
    """Raised at the end of a run whose smoke test failed and whose change was undone."""

    exit_code = EXIT_ROLLED_BACK


class RollbackFailed(TmaError):
    exit_code = EXIT_ROLLBACK_FAILED


class StepFailed(TmaError):
    """A cycle step failed; says what production was left as, keeps the cause's exit code."""

    def __init__(self, message: str, *, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def one_line(exc: BaseException) -> str:
    """An error as one line for the journal: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
