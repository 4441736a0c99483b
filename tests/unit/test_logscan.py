from __future__ import annotations

import pytest

from tma_ops.checks.logscan import (
    Change,
    FileMark,
    LinePatterns,
    amount,
    change_since,
    classify_line,
    count_lines,
    read_window,
    shorten,
)
from tma_ops.model_checks import LogScanCheck

pytestmark = pytest.mark.unit

DEFAULTS = LinePatterns.of(LogScanCheck(check="logscan", paths=["error.log"]))
IGNORING = LinePatterns.of(
    LogScanCheck(check="logscan", paths=["error.log"], ignore=[r"wp-includes/deprecated"])
)
CUSTOM = LinePatterns.of(
    LogScanCheck(check="logscan", paths=["app.log"], fatal=[r"panic:"], warning=[r"slow query"])
)

FATAL_PHP = (
    "[12-Mar-2025 10:01:02 UTC] PHP Fatal error:  Uncaught Error: Call to undefined function "
    "tma_missing() in /srv/www/wp-content/plugins/shop/shop.php:12"
)
WARNING_PHP = "[12-Mar-2025 10:01:02 UTC] PHP Warning:  Undefined variable $cart in shop.php"


@pytest.mark.parametrize(
    ("patterns", "line", "severity"),
    [
        (DEFAULTS, FATAL_PHP, "fatal"),
        (DEFAULTS, "PHP Parse error:  syntax error, unexpected '}' in x.php", "fatal"),
        (DEFAULTS, WARNING_PHP, "warning"),
        (DEFAULTS, "PHP Deprecated:  Creation of dynamic property", "warning"),
        (DEFAULTS, "PHP Notice:  Trying to access array offset", "warning"),
        (DEFAULTS, "Traceback (most recent call last):", "fatal"),
        (DEFAULTS, "2025-03-12 10:01:02 ERROR django.request Internal Server Error: /", "fatal"),
        (DEFAULTS, "2025-03-12 10:01:02 CRITICAL worker lost", "fatal"),
        (DEFAULTS, "2025-03-12 10:01:02 WARNING cache miss storm", "warning"),
        (DEFAULTS, "2025-03-12 10:01:02 INFO GET / 200", None),
        (DEFAULTS, "no errors today", None),  # lower case "errors" is not an ERROR level
        (DEFAULTS, "ERRORS: 0", None),  # a word boundary: ERRORS is not ERROR
        (DEFAULTS, "", None),
        # a line matching fatal and warning counts once, as fatal
        (DEFAULTS, "PHP Warning: see ERROR above", "fatal"),
        (IGNORING, "PHP Deprecated: x in /srv/wp-includes/deprecated.php", None),
        (IGNORING, "PHP Fatal error: y in /srv/wp-includes/deprecated.php", None),  # ignored wins
        (IGNORING, WARNING_PHP, "warning"),
        (CUSTOM, "panic: runtime error: index out of range", "fatal"),
        (CUSTOM, "slow query (2.3 s): SELECT ...", "warning"),
        (CUSTOM, FATAL_PHP, None),  # custom patterns replace the defaults
    ],
)
def test_classify_line(patterns: LinePatterns, line: str, severity: str | None) -> None:
    assert classify_line(line, patterns) == severity


def test_count_lines_keeps_the_first_of_each_kind() -> None:
    text = "\n".join(
        ["INFO start", WARNING_PHP, FATAL_PHP, "PHP Warning: two", "PHP Fatal error: b"]
    )
    count = count_lines(text + "\n", DEFAULTS)
    assert (count.fatal, count.warning) == (2, 2)
    assert count.first_fatal == FATAL_PHP
    assert count.first_warning == WARNING_PHP  # quoted whole: shortened once secrets are masked


def test_count_lines_keeps_enough_of_a_long_line_to_quote_it() -> None:
    long_line = "PHP Fatal error: " + "x" * 5000
    assert count_lines(long_line, DEFAULTS).first_fatal == long_line[:1000]


def test_count_lines_drops_a_line_cut_by_a_bounded_read() -> None:
    text = "ror:  cut in its middle\nINFO fine\nPHP Warning: whole\n"
    cut = count_lines(text.replace("ror:", "PHP Fatal error:"), DEFAULTS, starts_mid_line=True)
    assert (cut.fatal, cut.warning) == (0, 1)
    whole = count_lines(text.replace("ror:", "PHP Fatal error:"), DEFAULTS)
    assert (whole.fatal, whole.warning) == (1, 1)


def test_count_lines_counts_a_last_line_still_being_written() -> None:
    assert count_lines("INFO a\nPHP Fatal error: no newline yet", DEFAULTS).fatal == 1


@pytest.mark.parametrize(
    ("line", "quoted"),
    [
        ("short", "short"),
        ("  spaced\tout  line ", "spaced out line"),
        ("x" * 200, "x" * 200),
        ("x" * 201, "x" * 199 + "…"),
    ],
)
def test_shorten(line: str, quoted: str) -> None:
    assert shorten(line) == quoted


BEFORE = FileMark("2049:1001", 5000, 64, "1111")


@pytest.mark.parametrize(
    ("now", "compared", "change"),
    [
        (FileMark("2049:1001", 5000, 64, "1111"), True, "appended"),  # nothing new
        (FileMark("2049:1001", 9000, 64, "1111"), True, "appended"),
        (FileMark("2049:1001", 100, 64, "2222"), True, "truncated"),  # copytruncate
        (FileMark("2049:1001", 0, 0, "4294967295"), True, "truncated"),  # emptied
        # truncated, then refilled past its old size: only the first bytes tell
        (FileMark("2049:1001", 9000, 64, "2222"), True, "truncated"),
        (FileMark("2049:7777", 9000, 64, "1111"), True, "rotated"),  # renamed, a new file
        (FileMark("2049:7777", 10, 10, "3333"), True, "rotated"),
        (FileMark("2050:1001", 9000, 64, "1111"), True, "rotated"),  # other device
        (FileMark("2049:1001", 9000, 64, "1111"), False, "uncompared"),
    ],
)
def test_change_since(now: FileMark, compared: bool, change: Change) -> None:
    assert change_since(BEFORE, now, compared) == change


def test_a_file_absent_at_baseline_is_new() -> None:
    assert change_since(None, FileMark("2049:5", 300, 64, "9"), compared=True) == "new"


MIB = 1 << 20


@pytest.mark.parametrize(
    ("change", "before_size", "now_size", "limit", "start", "skipped"),
    [
        ("appended", 5000, 5000, 4 * MIB, 5000, 0),  # nothing new: read nothing
        ("appended", 5000, 9000, 4 * MIB, 5000, 0),
        ("appended", 5000, 5000 + 6 * MIB, 4 * MIB, 5000 + 2 * MIB, 2 * MIB),  # newest 4 MiB
        ("new", 0, 300, 4 * MIB, 0, 0),
        ("new", 0, 5 * MIB, 4 * MIB, MIB, MIB),
        ("rotated", 5000, 200, 4 * MIB, 0, 0),  # the new file from its start
        ("rotated", 5000, 9000, 4 * MIB, 0, 0),  # even when it outgrew the old one
        ("truncated", 5000, 100, 4 * MIB, 0, 0),
        ("truncated", 5000, 0, 4 * MIB, 0, 0),
        ("uncompared", 0, 1 * MIB, 64 << 10, MIB - (64 << 10), MIB - (64 << 10)),
        ("uncompared", 0, 1000, 64 << 10, 0, 0),
    ],
)
def test_read_window(
    change: Change, before_size: int, now_size: int, limit: int, start: int, skipped: int
) -> None:
    assert read_window(change, before_size, now_size, limit) == (start, skipped)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (512, "512 B"), (1024, "1 KiB"), (12_800, "12.5 KiB"), (4 * MIB, "4 MiB")],
)
def test_amount(size: int, text: str) -> None:
    assert amount(size) == text


def test_mark_round_trips_through_json() -> None:
    assert FileMark.from_json(BEFORE.to_json()) == BEFORE
    assert FileMark.from_json(None) is None
    assert FileMark.from_json({"error": "local://: `sh` exited 2: permission denied"}) is None
