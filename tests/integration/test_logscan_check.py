"""The log scan check on a real WordPress site's PHP error log (php -S with error_log set, a
must-use plugin that logs a warning or dies with a fatal error on request), on plain files for the
ways a log changes under it (appended, truncated, rotated, flooded, gone), and over ssh://."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.docker_fixtures import Container
from harness.fixtures import ssh_host  # noqa: F401
from harness.sshd import SshServer
from harness.wordpress import WordPressSite, fetch, session_lab
from wordpress_stack_support import wordpress_environment

from tma_ops.checks import CheckTarget
from tma_ops.checks.logscan import MAX_READ, LogScan
from tma_ops.checks.suite import build_checks, run_suite, take_baselines
from tma_ops.model import Environment, ExecutorSpec
from tma_ops.model_checks import LogScanCheck

pytestmark = pytest.mark.integration

MIB = 1 << 20
PHP_LOG = "wp-content/php-error.log"  # relative to the site's root, as an inventory may say
TRIGGER_PLUGIN = """<?php
// Writes to the PHP error log on request: ?tma_log=warning or ?tma_log=fatal.
add_action( 'init', function () {
	$what = isset( $_GET['tma_log'] ) ? $_GET['tma_log'] : '';
	if ( 'warning' === $what ) {
		trigger_error( 'tma-log: stock level missing for product 42', E_USER_WARNING );
		echo 'warned';
		exit;
	}
	if ( 'fatal' === $what ) {
		tma_log_format_removed_in_this_release();
	}
} );
"""
FATAL_QUOTE = (
    "PHP Fatal error: Uncaught Error: Call to undefined function "
    "tma_log_format_removed_in_this_release()"
)
WARNING_QUOTE = "PHP Warning: tma-log: stock level missing for product 42"


@pytest.fixture(scope="module")
def log_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WordPressSite]:
    """A served copy of the template site logging PHP errors to wp-content/php-error.log."""
    site = session_lab(request).new_site(tmp_path_factory.mktemp("logscan") / "site")
    plugin = site.root / "wp-content/mu-plugins/tma-log-trigger.php"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(TRIGGER_PLUGIN)
    site.serve(ini={"log_errors": "1", "error_log": str(site.root / PHP_LOG)})
    try:
        yield site
    finally:
        site.stop()


def site_scan(site: WordPressSite, **settings: Any) -> LogScan:
    spec = LogScanCheck(check="logscan", paths=[PHP_LOG], **settings)
    env = wordpress_environment(site)
    return LogScan(spec, CheckTarget("atelier", "staging", env, site.base / "artifacts"))


def visit(site: WordPressSite, what: str) -> None:
    status, body = fetch(f"{site.url}/?tma_log={what}")
    expected = {"warning": (200, "warned"), "fatal": (500, "critical error")}
    assert (status, expected[what][1] in body) == (expected[what][0], True)


def test_old_lines_are_not_counted_and_a_quiet_site_passes(log_site: WordPressSite) -> None:
    visit(log_site, "fatal")  # before the change: not the change's fault
    log = log_site.root / PHP_LOG
    assert "PHP Fatal error" in log.read_text()
    check = site_scan(log_site)
    baseline = check.baseline()
    assert fetch(log_site.url + "/")[0] == 200
    result = check.check(baseline)
    assert result.ok, result.detail
    assert result.kind == "logscan"
    assert (result.data["fatal"], result.data["warning"]) == (0, 0)
    assert result.detail == "no fatal line in 1 file; 0 B read"
    assert result.data["files"][str(log)]["change"] == "appended"


def test_a_warning_is_counted_and_fails_only_when_asked(log_site: WordPressSite) -> None:
    lenient, strict = site_scan(log_site), site_scan(log_site, fail_on_warning=True)
    baseline = lenient.baseline()
    visit(log_site, "warning")
    passed = lenient.check(baseline)
    assert passed.ok, passed.detail
    assert (passed.data["fatal"], passed.data["warning"]) == (0, 1)
    assert passed.detail.startswith("no fatal line in 1 file; 1 warning line, first in ")
    failed = strict.check(baseline)
    assert not failed.ok
    assert failed.detail.startswith(f"1 warning line, first in {log_site.root / PHP_LOG}: '[")
    assert WARNING_QUOTE in failed.detail


def test_a_fatal_error_fails_quoting_its_line(log_site: WordPressSite) -> None:
    check = site_scan(log_site)
    baseline = check.baseline()
    visit(log_site, "warning")
    visit(log_site, "fatal")
    result = check.check(baseline)
    assert not result.ok
    assert (result.data["fatal"], result.data["warning"]) == (1, 1)
    assert result.detail.startswith(f"1 fatal line, first in {log_site.root / PHP_LOG}: '[")
    assert FATAL_QUOTE in result.detail
    quoted = result.detail.split(": '", 1)[1].split("'; ", 1)[0]
    assert len(quoted) <= 200
    assert "\n" not in result.detail


def test_a_truncated_log_is_read_from_its_start(log_site: WordPressSite) -> None:
    log = log_site.root / PHP_LOG
    with log.open("a") as out:
        out.write("INFO padding the log past the size of one new line\n" * 200)
    check = site_scan(log_site)
    baseline = check.baseline()
    os.truncate(log, 0)  # logrotate's copytruncate
    visit(log_site, "fatal")
    assert log.stat().st_size < baseline["files"][str(log)]["size"]
    result = check.check(baseline)
    assert not result.ok
    assert result.data["files"][str(log)]["change"] == "truncated"
    assert f"{log} was truncated since the baseline: read from its start" in result.detail
    assert FATAL_QUOTE in result.detail


def test_a_rotated_log_is_read_from_its_start(log_site: WordPressSite) -> None:
    log = log_site.root / PHP_LOG
    check = site_scan(log_site)
    baseline = check.baseline()
    log.rename(log.with_name("php-error.log.1"))  # PHP opens its log anew for each line
    visit(log_site, "warning")
    result = check.check(baseline)
    assert result.ok, result.detail
    assert result.data["files"][str(log)]["change"] == "rotated"
    assert result.data["warning"] == 1
    assert f"{log} was rotated since the baseline: read from its start" in result.detail


def test_the_suite_takes_the_baseline_and_judges_after(log_site: WordPressSite) -> None:
    declared = wordpress_environment(log_site).model_dump()
    declared["smoke"] = [{"check": "logscan", "name": "php errors", "paths": [PHP_LOG]}]
    env = Environment.model_validate(declared)
    checks = build_checks(CheckTarget("atelier", "staging", env, log_site.base / "artifacts"))
    baselines = take_baselines(checks)
    assert list(baselines) == ["0:php errors"]
    visit(log_site, "fatal")
    [result] = run_suite(checks, baselines)
    assert not result.ok and FATAL_QUOTE in result.detail


# --- plain files --------------------------------------------------------------------------------


def plain_scan(
    root: Path, executor: Any = "local://", database: Any = None, **settings: Any
) -> LogScan:
    spec = LogScanCheck(check="logscan", paths=settings.pop("paths", ["app.log"]), **settings)
    env = Environment.model_validate(
        {
            "executor": executor,
            "root": str(root),
            "database": database or {"engine": "sqlite", "path": str(root / "site.db")},
            "smoke": [spec.model_dump()],
        }
    )
    return LogScan(spec, CheckTarget("atelier", "production", env, root / "artifacts"))


def write(path: Path, text: str, mode: str = "a") -> None:
    with path.open(mode) as out:
        out.write(text)


def old_lines(count: int = 50) -> str:
    return "".join(f"PHP Warning: old {n}, before the change\n" for n in range(count))


def append(log: Path) -> None:
    write(log, "PHP Warning: new 1\nPHP Warning: new 2\n")


def copytruncate_and_refill(log: Path) -> None:
    """Truncated, then written past its old size: only its first bytes tell."""
    size = log.stat().st_size
    write(log, "PHP Warning: new 1\nPHP Warning: new 2\n" + "INFO refill\n" * size, "w")


def rotate(log: Path) -> None:
    log.rename(log.with_name("app.log.1"))
    write(log, "PHP Warning: new 1\nPHP Warning: new 2\n" + "INFO larger than before\n" * 500)


def create_after_baseline(log: Path) -> None:
    write(log, "PHP Warning: new 1\nPHP Warning: new 2\n")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (append, "appended"),
        (copytruncate_and_refill, "truncated"),
        (rotate, "rotated"),
        (create_after_baseline, "new"),
    ],
)
def test_only_what_was_written_since_the_baseline_is_read(
    tmp_path: Path, change: Any, expected: str
) -> None:
    log = tmp_path / "app.log"
    if change is not create_after_baseline:
        write(log, old_lines())
    check = plain_scan(tmp_path)
    baseline = check.baseline()
    change(log)
    result = check.check(baseline)
    assert result.ok, result.detail
    assert result.data["files"][str(log)]["change"] == expected
    assert result.data["warning"] == 2, result.detail  # never the 50 old ones
    assert "first in " + str(log) + ": 'PHP Warning: new 1'" in result.detail


def test_a_flooded_log_is_read_up_to_the_limit_and_says_what_it_skipped(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, old_lines())
    check = plain_scan(tmp_path)
    baseline = check.baseline()
    filler = "INFO " + "x" * 1018 + "\n"  # 1 KiB a line
    write(log, "PHP Fatal error: early, in the skipped part\n" + filler * (6 << 10))
    write(log, "PHP Warning: late\n")
    result = check.check(baseline)
    assert result.ok, result.detail  # the early fatal was not read: the detail says so
    assert result.data["files"][str(log)]["read"] == MAX_READ
    assert f"{log}: skipped 2 MiB written since the baseline, read the newest 4 MiB" in (
        result.detail
    )
    assert result.data["warning"] == 1


def test_without_baseline_the_end_of_the_file_is_scanned(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "PHP Fatal error: long ago\n" + "INFO filler\n" * (10 << 10))  # 120 KiB
    write(log, "PHP Warning: recent\n")
    result = plain_scan(tmp_path).check(None)
    assert result.ok, result.detail
    assert (result.data["fatal"], result.data["warning"]) == (0, 1)
    assert f"no baseline for {log}: scanned the last 64 KiB" in result.detail


def test_missing_logs(tmp_path: Path) -> None:
    never, gone = tmp_path / "never.log", tmp_path / "gone.log"
    write(gone, old_lines(3))
    check = plain_scan(tmp_path, paths=["never.log", str(gone)])
    baseline = check.baseline()
    assert baseline["files"][str(never)] is None
    gone.unlink()
    result = check.check(baseline)
    assert result.ok, result.detail
    assert f"{never} does not exist (nothing logged)" in result.detail
    assert f"{gone} is gone since the baseline (rotated away?): not scanned" in result.detail


def test_credentials_in_a_quoted_line_are_masked(tmp_path: Path) -> None:
    password = "Sh0p-db-S3cret"
    database = {"engine": "mariadb", "name": "shop", "user": "shop", "password": password}
    log = tmp_path / "app.log"
    write(log, "")
    check = plain_scan(tmp_path, database=database)
    baseline = check.baseline()
    write(log, f"ERROR cannot connect to mysql://shop:hunter22@db/shop (tried {password})\n")
    result = check.check(baseline)
    assert not result.ok
    assert "mysql://shop:***@db/shop (tried ***)" in result.detail
    assert password not in result.detail and "hunter22" not in result.detail


def test_a_path_that_is_no_file_fails_naming_it(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    check = plain_scan(tmp_path, paths=["logs"])
    result = check.check(check.baseline())
    assert not result.ok
    assert result.detail.startswith(f"cannot read {tmp_path / 'logs'}: local://: `sh` exited 2: ")
    assert result.detail.endswith("is not a regular file; 0 B read")


def test_over_ssh(ssh_host: SshServer, tmp_path: Path) -> None:  # noqa: F811
    log = tmp_path / "app.log"  # on the host's file system, which this machine shares
    write(log, old_lines())
    spec: ExecutorSpec = ssh_host.spec()
    check = plain_scan(tmp_path, executor=spec.model_dump())
    baseline = check.baseline()
    quiet = check.check(baseline)
    assert quiet.ok and quiet.data["warning"] == 0, quiet.detail
    write(log, "2025-03-12 10:01:02 CRITICAL payment worker lost\n")
    result = check.check(baseline)
    assert not result.ok
    expected = f"1 fatal line, first in {log}: '2025-03-12 10:01:02 CRITICAL payment worker lost'"
    assert result.detail.startswith(expected)


def test_in_a_docker_container(site_container: Container) -> None:
    log = site_container.host_dir / "logscan" / "app.log"  # /srv/site/logscan/app.log inside
    log.parent.mkdir(exist_ok=True)
    write(log, old_lines(), "w")
    root = Path(site_container.mount) / "logscan"
    check = plain_scan(root, executor=site_container.spec.model_dump())
    baseline = check.baseline()
    log.rename(log.with_name("app.log.1"))
    write(log, 'PHP Parse error:  syntax error, unexpected token "}" in shop.php\n')
    result = check.check(baseline)
    assert not result.ok
    inside = f"{root}/app.log"
    assert result.detail.startswith(f"1 fatal line, first in {inside}: 'PHP Parse error: syntax")
    assert f"{inside} was rotated since the baseline: read from its start" in result.detail
