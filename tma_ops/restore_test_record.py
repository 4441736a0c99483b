"""What a restore test records: its outcome as the journal's final event, the one-line cause of a
failure, and the history read back from the journal (for `--due` and `status`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tma_ops.errors import EXIT_ERROR, EXIT_INTEGRITY, IntegrityError, TmaError, one_line
from tma_ops.journal import Journal

STEP = "restore-test"
STAGES = ("fetch-verify", "restore", "start", "smoke", "teardown")
_NO_IDENTITY = "none of the identity file's keys can decrypt"


@dataclass
class RestoreTestOutcome:
    """The final event's data (formats: restore-test journal events), plus the run's id."""

    site: str
    run_id: str
    snapshot_id: str
    snapshot_created_at: str
    snapshot_age_s: float
    tested_at: str
    chosen: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    bytes_read: int = 0
    time_to_recovery_s: float | None = None
    smoke: list[dict[str, Any]] = field(default_factory=list)
    failed_stage: str | None = None
    cause: str | None = None
    teardown: str = "skipped"
    exit_code: int = 0

    @property
    def passed(self) -> bool:
        return self.failed_stage is None

    def event_data(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "snapshot_created_at": self.snapshot_created_at,
            "snapshot_age_s": round(self.snapshot_age_s, 3),
            "environment": "sandbox",
            "tested_at": self.tested_at,
            "parts": self.parts,
            "bytes_read": self.bytes_read,
            "time_to_recovery_s": (
                None if self.time_to_recovery_s is None else round(self.time_to_recovery_s, 3)
            ),
            "smoke": self.smoke,
            "failed_stage": self.failed_stage,
            "cause": self.cause,
            "teardown": self.teardown,
        }

    def fail(self, stage: str, cause: str, exit_code: int) -> None:
        """Keep the first failure: a later one (a teardown after a failed smoke) adds nothing."""
        if self.failed_stage is None:
            self.failed_stage, self.cause, self.exit_code = stage, cause, exit_code


def failure_cause(exc: BaseException) -> str:
    """One line naming the fault; a key that decrypts nothing is said in plain words."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, IntegrityError) and _NO_IDENTITY in text:
        key = text.split(": ", 1)[0]
        return (
            f"{key}: cannot decrypt: no identity matches (the identity file holds none of the "
            "age keys the snapshot was encrypted to)"
        )
    if isinstance(exc, TmaError) and text:
        return text
    return one_line(exc)


def failure_exit_code(exc: BaseException) -> int:
    """Damaged or undecryptable backups are integrity failures (6); anything else is 2."""
    return EXIT_INTEGRITY if isinstance(exc, IntegrityError) else EXIT_ERROR


def utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class PastTest:
    run_id: str
    passed: bool
    tested_at: datetime
    snapshot_id: str
    cause: str | None


def past_tests(journal: Journal, site: str) -> list[PastTest]:
    """The site's finished restore tests, oldest first."""
    found = []
    for event in journal.events(site=site):
        if event.step != STEP or event.status not in ("passed", "failed"):
            continue
        stamp = event.data.get("tested_at") or event.time
        found.append(
            PastTest(
                run_id=event.run_id,
                passed=event.status == "passed",
                tested_at=parse_stamp(str(stamp)),
                snapshot_id=str(event.data.get("snapshot_id", "")),
                cause=event.data.get("cause"),
            )
        )
    return found


def last_passed_at(tests: list[PastTest]) -> datetime | None:
    passed = [t.tested_at for t in tests if t.passed]
    return max(passed) if passed else None
