"""The sandbox's side of a restore test: start the restored site, await it, tear it all down."""

from __future__ import annotations

import time
from collections.abc import Callable

from tma_ops.checks.http import HttpSmokeCheck
from tma_ops.config import Site
from tma_ops.dbs import database_of
from tma_ops.errors import ExecutorError, TmaError
from tma_ops.executors import open_executor
from tma_ops.files_archive import state_path
from tma_ops.model_checks import first_http_check
from tma_ops.model_sandbox import SANDBOX
from tma_ops.restore import REPLACED_SUFFIX, STAGED_SUFFIX
from tma_ops.rollback import reload_after_switch

# A start command usually leaves a server running in the background (`php -S ... &`): its output
# goes to a file unlinked at the end, so no pipe stays open and the command returns at once.
COMMAND_SCRIPT = """cd "$1" || exit 1
log=$(mktemp) || exit 1
( eval "$2" ) </dev/null >"$log" 2>&1
rc=$?
[ "$rc" -eq 0 ] || tail -n 3 "$log" >&2
rm -f "$log"
exit "$rc"
"""
POLL_SECONDS = 0.5


def start_sandbox(site: Site, say: Callable[[str], None]) -> None:
    """The stack's reload or restart, then `restore_test.start`; wait for the first http check."""
    env = site.environment(SANDBOX)
    reload_after_switch(site, env)
    if site.restore_test.start:
        say(f"{site.name}: starting the restored site")
        run_sandbox_command(site, site.restore_test.start, "start")
    check = first_http_check(env.smoke)
    if check is not None:
        await_answer(HttpSmokeCheck(check), site.restore_test.ready_timeout)


def run_sandbox_command(site: Site, command: str, what: str) -> None:
    env = site.environment(SANDBOX)
    executor = open_executor(env.executor)
    argv = ["sh", "-c", COMMAND_SCRIPT, what, env.code().root, command]
    result = executor.run(argv, check=False)
    if not result.ok:
        detail = " | ".join(result.err.strip().splitlines()[-3:]) or f"exited {result.rc}"
        raise ExecutorError(f"restore_test.{what} failed in {env.code().root}: {detail}")


def await_answer(check: HttpSmokeCheck, timeout: float) -> None:
    """Poll the check until the site answers (it passes, or gives a status below 500: the smoke
    suite judges it next); after `timeout` seconds, fail with its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        result = check.check()
        status = result.data.get("status")
        if result.ok or (isinstance(status, int) and status < 500):
            return
        if time.monotonic() >= deadline:
            raise TmaError(
                f"the sandbox did not answer {result.name} within {timeout:g}s: {result.detail}"
            )
        time.sleep(POLL_SECONDS)


def tear_down(site: Site) -> None:
    """Stop command, the files root (and anything a restore leaves beside it) removed, the
    database emptied. Every part is tried; the failures are raised together."""
    env = site.environment(SANDBOX)
    problems: list[str] = []
    if site.restore_test.stop:
        _attempt(problems, lambda: run_sandbox_command(site, site.restore_test.stop or "", "stop"))
    executor = open_executor(env.executor)
    leftovers = [env.root, env.root + STAGED_SUFFIX, env.root + REPLACED_SUFFIX]
    leftovers.append(state_path(env.root))
    _attempt(problems, lambda: executor.run(["rm", "-rf", "--", *leftovers]))
    engine, db_executor = database_of(env)
    _attempt(problems, lambda: engine.wipe(db_executor))
    if problems:
        raise TmaError("; ".join(problems))


def _attempt(problems: list[str], action: Callable[[], object]) -> None:
    try:
        action()
    except Exception as exc:  # the other parts of the teardown still run
        problems.append(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
