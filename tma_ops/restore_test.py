"""A restore test: prove that a production snapshot in the off-site store brings the site back.

One run, journaled (step `restore-test`): choose a snapshot, fetch every part from the site's
store and check it (restore_test_fetch), decrypt and restore it into the `sandbox` environment,
run the stack's reload and the site's start command, wait for the first http check, run the
sandbox's whole smoke suite, then tear the sandbox down whatever happened. Time to recovery runs
from the start of the fetch to the passing smoke suite. Production is only ever read from the
store: the sandbox must be an environment of its own (tma_ops.model_sandbox).
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tma_ops.checks import CheckTarget
from tma_ops.checks.suite import build_checks, run_suite
from tma_ops.config import Site
from tma_ops.cycle import new_run_id
from tma_ops.errors import EXIT_ERROR, InventoryError, SnapshotError, TmaError, one_line
from tma_ops.journal import Journal
from tma_ops.lock import SiteLock
from tma_ops.model_sandbox import SANDBOX, is_production, sandbox_conflict
from tma_ops.progress import SILENT, TransferProgress
from tma_ops.restore import restore_snapshot
from tma_ops.restore_test_fetch import PartFault, fetch_and_verify, parts_to_read
from tma_ops.restore_test_record import (
    STEP,
    RestoreTestOutcome,
    failure_cause,
    failure_exit_code,
    utc_stamp,
)
from tma_ops.restore_test_sandbox import start_sandbox, tear_down
from tma_ops.snapshot import Manifest, chain_of, created_at, list_snapshots
from tma_ops.stores import Store
from tma_ops.stores.file import FileStore


@dataclass(frozen=True)
class SnapshotChoice:
    """`named` (an id or unique prefix), `random` (seeded) or `latest`."""

    mode: str = "latest"
    wanted: str | None = None
    seed: int | None = None


def choose_snapshot(site: str, manifests: list[Manifest], choice: SnapshotChoice) -> Manifest:
    """The snapshot to test among the site's (oldest first): a named one may be any of them;
    `random` and `latest` take production's."""
    if choice.mode == "named":
        wanted = choice.wanted or ""
        matches = [m for m in manifests if m.snapshot_id.startswith(wanted)]
        if len(matches) != 1:
            what = "no snapshot matches" if not matches else f"{len(matches)} snapshots match"
            raise SnapshotError(f"site {site!r}: {what} {wanted!r}; see `tma-ops snapshots list`")
        return matches[0]
    production = [m for m in manifests if m.environment == "production"]
    if not production:
        raise SnapshotError(f"site {site!r} has no production snapshot to test")
    if choice.mode == "random":
        return random.Random(choice.seed).choice(production)
    return production[-1]


def require_sandbox(site: Site) -> None:
    """Refuse, before anything is touched, a site whose sandbox is missing or not its own."""
    if SANDBOX not in site.environments:
        raise InventoryError(
            f"{site.source or 'inventory'}: sites.{site.name}.environments: no sandbox "
            "environment; expected environments.sandbox to restore the test into"
        )
    sandbox = site.environments[SANDBOX]
    # The loader checked the written paths; this checks them again once resolved.
    conflict = "sandbox is marked production" if is_production(SANDBOX, sandbox) else None
    conflict = conflict or sandbox_conflict(sandbox, site.environments)
    if conflict:
        raise InventoryError(
            f"{site.source or 'inventory'}: sites.{site.name}.environments.{conflict}; "
            "refusing to restore into it"
        )


def run_restore_test(
    site: Site,
    store: Store,
    journal: Journal,
    state_dir: Path,
    *,
    choice: SnapshotChoice = SnapshotChoice(),
    progress: TransferProgress = SILENT,
    say: Callable[[str], None] = print,
) -> RestoreTestOutcome:
    """Run one restore test of `site` and journal it; a failure is recorded, not raised."""
    require_sandbox(site)
    run_id = new_run_id()
    # The site lock, not a sandbox lock: a cycle or a prune of the same site may delete the
    # snapshot being read (retention), and two restore tests would share the sandbox.
    with SiteLock(state_dir, site.name) as lock:
        lock.acquire(run_id)
        manifest = choose_snapshot(site.name, list_snapshots(store, site.name), choice)
        say(f"{site.name}: restore test of snapshot {manifest.snapshot_id} ({choice.mode})")
        journal.append(
            run_id=run_id,
            site=site.name,
            step=STEP,
            status="started",
            data={
                "snapshot_id": manifest.snapshot_id,
                "environment": SANDBOX,
                "chosen": choice.mode,
            },
        )
        run = _Run(site, store, journal, state_dir, run_id, manifest, choice, progress, say)
        try:
            run.carry_out()
        except BaseException as exc:  # interrupted: the test is still recorded, as failed
            run.outcome.fail(run.stage, f"interrupted ({one_line(exc)})", EXIT_ERROR)
            journal.append(
                run_id=run_id,
                site=site.name,
                step=STEP,
                status="failed",
                data=run.outcome.event_data(),
            )
            raise
    outcome = run.outcome
    status = "passed" if outcome.passed else "failed"
    journal.append(
        run_id=run_id, site=site.name, step=STEP, status=status, data=outcome.event_data()
    )
    return outcome


class _Run:
    def __init__(
        self,
        site: Site,
        store: Store,
        journal: Journal,
        state_dir: Path,
        run_id: str,
        manifest: Manifest,
        choice: SnapshotChoice,
        progress: TransferProgress,
        say: Callable[[str], None],
    ) -> None:
        self.site, self.store, self.journal = site, store, journal
        self.state_dir, self.run_id, self.manifest = state_dir, run_id, manifest
        self.progress, self.say = progress, say
        now = datetime.now(UTC)
        self.outcome = RestoreTestOutcome(
            site=site.name,
            run_id=run_id,
            snapshot_id=manifest.snapshot_id,
            snapshot_created_at=manifest.created_at,
            snapshot_age_s=(now - created_at(manifest)).total_seconds(),
            tested_at=utc_stamp(now),
            chosen=choice.mode,
        )

    def carry_out(self) -> None:
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f"restore-test-{self.run_id}-", dir=self._work_dir()))
        try:
            with self._stage("fetch-verify"):
                chain = self._chain()
                records = parts_to_read(self.manifest, chain)
                self.outcome.parts = [record.as_event() for record in records]
                work_store = FileStore(work)
                self.outcome.bytes_read = fetch_and_verify(
                    self.store, records, chain, work_store, self.progress
                )
            with self._stage("restore"):
                restore_snapshot(
                    self.site, self.manifest, SANDBOX, work_store, progress=self.progress
                )
            with self._stage("start"):
                start_sandbox(self.site, self.say)
            with self._stage("smoke"):
                self._smoke()
            self.outcome.time_to_recovery_s = time.monotonic() - started
        except _StageFailed:
            pass
        finally:
            shutil.rmtree(work, ignore_errors=True)
            self._tear_down()

    def _chain(self) -> list[Manifest]:
        try:
            return chain_of(self.store, self.manifest)
        except SnapshotError as exc:  # a lost parent of an increment: the backup is damaged
            raise PartFault(str(exc)) from exc

    def _work_dir(self) -> Path:
        directory = self.state_dir / "restore-test"
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def _smoke(self) -> None:
        target = CheckTarget(
            site=self.site.name,
            env_name=SANDBOX,
            env=self.site.environment(SANDBOX),
            artifacts=self.state_dir / "artifacts" / self.site.name / self.run_id / SANDBOX,
        )
        results = run_suite(build_checks(target))
        self.outcome.smoke = [
            {"name": r.name, "kind": r.kind, "ok": r.ok, "detail": r.detail} for r in results
        ]
        for result in results:
            mark = "ok" if result.ok else "FAILED"
            self.say(f"smoke {SANDBOX}: {mark} {result.name}: {result.detail}")
        failed = [r for r in results if not r.ok]
        if failed:
            names = "; ".join(f"{r.name}: {r.detail}" for r in failed)
            raise TmaError(f"{len(failed)} of {len(results)} smoke check(s) failed: {names}")

    def _tear_down(self) -> None:
        if not self.site.restore_test.teardown:
            self.outcome.teardown = "skipped"
            self.say(f"{self.site.name}: sandbox kept (restore_test.teardown is false)")
            return
        try:
            with self._stage("teardown"):
                tear_down(self.site)
            self.outcome.teardown = "done"
        except _StageFailed:
            self.outcome.teardown = f"failed: {self._teardown_error}"

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        if name != "teardown":  # an interruption is blamed on the stage it stopped
            self.stage = name
        self.say(f"{self.site.name}: {name}")
        try:
            yield
        except Exception as exc:
            self._record_stage(name, began)
            cause = failure_cause(exc)
            self.say(f"{self.site.name}: {name} FAILED: {cause}")
            if name == "teardown":
                self._teardown_error = cause
            self.outcome.fail(name, cause, failure_exit_code(exc))
            raise _StageFailed from exc
        self._record_stage(name, began)

    def _record_stage(self, name: str, began: float) -> None:
        seconds = round(time.monotonic() - began, 3)
        self.journal.append(
            run_id=self.run_id,
            site=self.site.name,
            step=STEP,
            status="stage",
            data={"stage": name, "seconds": seconds},
        )

    _teardown_error = ""
    stage = "fetch-verify"


class _StageFailed(Exception):
    """A stage failed; its cause is already in the outcome."""
