"""Log scan check: the lines written to an environment's log files since the change started.

`baseline()` records each file's identity (device and inode), size and a checksum of its first
bytes; `check(baseline)` reads only what was written since. A file with another identity was
rotated, a shorter one or one whose first bytes changed was truncated (copytruncate): either is
read from its start. Reading is bounded: at most `MAX_READ` bytes per file, the newest; what was
skipped is said. Without a baseline the last `UNCOMPARED_READ` bytes are scanned, and said so.

Files are reached through the environment's executor, one `sh` command per file (stat, cksum,
tail and head: found on any server and in busybox-based containers).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any, Literal

from tma_ops.checks import CheckResult, CheckTarget
from tma_ops.errors import ExecutorError
from tma_ops.executors import Executor, open_executor
from tma_ops.model import Environment, ServerDatabase
from tma_ops.model_checks import LogScanCheck
from tma_ops.redact import Redactor

MAX_READ = 4 << 20  # bytes read per file: a flooding log must not flood the check
UNCOMPARED_READ = 64 << 10  # bytes scanned at the end of a file when there is no baseline
PREFIX = 64  # first bytes whose checksum tells a truncated-and-refilled file from a grown one
QUOTE = 200  # characters of an offending line quoted in the detail
KEPT = 1000  # characters of an offending line kept until its secrets are masked
TIMEOUT = 120.0

# Arguments: path, identity and prefix checksum at baseline ("" when none), size at baseline,
# prefix length, read limit. Prints "missing", or a header "identity size checksum start" then
# the bytes from `start`. The rule for `start` is `read_window`'s, applied here so that one
# command per file is enough.
READ_SCRIPT = r"""
f=$1 want_id=$2 want_sum=$3 offset=$4 plen=$5 limit=$6
[ -e "$f" ] || { echo missing; exit 0; }
[ -f "$f" ] || { echo "$f is not a regular file" >&2; exit 2; }
[ -r "$f" ] || { echo "$f: permission denied" >&2; exit 2; }
mark=$(stat -L -c '%d:%i %s' -- "$f") || exit 2
id=${mark% *} size=${mark#* }
sum=$(head -c "$plen" -- "$f" | cksum) || exit 2
sum=${sum%% *}
if [ "$id" != "$want_id" ] || [ "$size" -lt "$offset" ] || [ "$sum" != "$want_sum" ]; then
  offset=0
fi
start=$((size - limit))
[ "$start" -lt "$offset" ] && start=$offset
echo "$id $size $sum $start"
[ "$limit" -gt 0 ] && tail -c +$((start + 1)) -- "$f" | head -c "$limit"
exit 0
"""

Change = Literal["appended", "new", "rotated", "truncated", "uncompared"]
Severity = Literal["fatal", "warning"]


@dataclass(frozen=True)
class FileMark:
    """What identifies a log file's content at one moment."""

    identity: str  # "device:inode"
    size: int
    prefix_len: int  # how many first bytes `prefix_sum` covers
    prefix_sum: str

    def to_json(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "size": self.size,
            "prefix_len": self.prefix_len,
            "prefix_sum": self.prefix_sum,
        }

    @classmethod
    def from_json(cls, data: Any) -> FileMark | None:
        """The mark recorded at baseline; None for a baseline entry that holds no mark."""
        if not isinstance(data, dict) or "identity" not in data:
            return None
        return cls(
            str(data["identity"]),
            int(data["size"]),
            int(data["prefix_len"]),
            str(data["prefix_sum"]),
        )


# --- pure decisions ----------------------------------------------------------------------------


def change_since(before: FileMark | None, now: FileMark, compared: bool = True) -> Change:
    """How a file changed since the baseline. `now.prefix_sum` covers `before.prefix_len`."""
    if not compared:
        return "uncompared"
    if before is None:
        return "new"
    if now.identity != before.identity:
        return "rotated"
    if now.size < before.size or now.prefix_sum != before.prefix_sum:
        return "truncated"
    return "appended"


def read_window(change: Change, before_size: int, now_size: int, limit: int) -> tuple[int, int]:
    """Where to start reading, and how many bytes written since the baseline are skipped to
    read at most `limit` (the newest are kept)."""
    first_new = before_size if change == "appended" else 0
    start = max(first_new, now_size - limit)
    return start, start - first_new


@dataclass(frozen=True)
class LinePatterns:
    fatal: tuple[re.Pattern[str], ...]
    warning: tuple[re.Pattern[str], ...]
    ignore: tuple[re.Pattern[str], ...]

    @classmethod
    def of(cls, spec: LogScanCheck) -> LinePatterns:
        def compiled(patterns: list[str]) -> tuple[re.Pattern[str], ...]:
            return tuple(re.compile(pattern) for pattern in patterns)

        return cls(compiled(spec.fatal), compiled(spec.warning), compiled(spec.ignore))


def classify_line(line: str, patterns: LinePatterns) -> Severity | None:
    """The line's severity, "fatal" or "warning"; None when it is neither or ignored."""
    if any(p.search(line) for p in patterns.ignore):
        return None
    if any(p.search(line) for p in patterns.fatal):
        return "fatal"
    if any(p.search(line) for p in patterns.warning):
        return "warning"
    return None


@dataclass
class LineCount:
    fatal: int = 0
    warning: int = 0
    first_fatal: str | None = None
    first_warning: str | None = None

    def add(self, other: LineCount) -> None:
        self.fatal += other.fatal
        self.warning += other.warning
        self.first_fatal = self.first_fatal or other.first_fatal
        self.first_warning = self.first_warning or other.first_warning


def count_lines(text: str, patterns: LinePatterns, starts_mid_line: bool = False) -> LineCount:
    """Fatal and warning lines of `text`, with the first of each. A first line cut by a bounded
    read is not judged: its start is missing."""
    lines = text.splitlines()
    if starts_mid_line:
        lines = lines[1:]
    count = LineCount()
    for line in lines:
        severity = classify_line(line, patterns)
        if severity == "fatal":
            count.fatal += 1
            count.first_fatal = count.first_fatal or line[:KEPT]
        elif severity == "warning":
            count.warning += 1
            count.first_warning = count.first_warning or line[:KEPT]
    return count


def shorten(line: str, limit: int = QUOTE) -> str:
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def amount(size: int) -> str:
    """A byte count for people: 512 B, 12 KiB, 4 MiB."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.3g} {unit}"
    return f"{size} B"


# --- reading files through the executor --------------------------------------------------------


@dataclass
class FileScan:
    path: str
    change: Change | Literal["missing", "gone"]
    read: int = 0  # bytes scanned
    skipped: int = 0  # bytes written since the baseline but not scanned (bounded read)
    count: LineCount | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"change": self.change, "read": self.read}
        if self.skipped:
            data["skipped"] = self.skipped
        if self.count is not None:
            data |= {"fatal": self.count.fatal, "warning": self.count.warning}
        if self.error is not None:
            data["error"] = self.error
        return data


HEADER = re.compile(r"(\d+:\d+) (\d+) (\d+) (\d+)")


def read_mark(executor: Executor, path: str) -> FileMark | None:
    """The file's mark now, None when it does not exist."""
    mark, _, _ = read_since(executor, path, None, limit=0)
    return mark


def read_since(
    executor: Executor, path: str, before: FileMark | None, limit: int
) -> tuple[FileMark | None, int, str]:
    """The file's mark (its checksum over `before`'s prefix, else over PREFIX bytes), where the
    script started reading (see `read_window`) and the text it read; (None, 0, "") when the file
    does not exist."""
    if before is None:
        want_id, want_sum, offset, prefix_len = "", "", 0, PREFIX
    else:
        want_id, want_sum = before.identity, before.prefix_sum
        offset, prefix_len = before.size, before.prefix_len
    argv = ["sh", "-c", READ_SCRIPT, "sh", path, want_id, want_sum, str(offset)]
    out = executor.run([*argv, str(prefix_len), str(limit)], timeout=TIMEOUT).out
    header, _, text = out.partition("\n")
    if header == "missing":
        return None, 0, ""
    fields = HEADER.fullmatch(header)
    if fields is None:
        raise ExecutorError(f"{executor.url}: unexpected answer reading {path}: {header[:80]!r}")
    identity, size, checksum, start = fields.groups()
    mark = FileMark(identity, int(size), min(prefix_len, int(size)), checksum)
    return mark, int(start), text


class LogScan:
    """Fails on a fatal line (or a warning line with `fail_on_warning`) written since the
    baseline, or on a log file it cannot read; quotes the first offending line."""

    def __init__(self, spec: LogScanCheck, target: CheckTarget) -> None:
        self.spec = spec
        self.target = target
        self.name = spec.name
        self.patterns = LinePatterns.of(spec)
        self.redactor = Redactor(_secrets_of(target.env))  # log lines may quote credentials

    @property
    def paths(self) -> list[str]:
        """The files to scan: a relative path is taken on the environment's root."""
        return [
            posixpath.normpath(posixpath.join(self.target.env.root, path))
            for path in self.spec.paths
        ]

    def baseline(self) -> dict[str, Any]:
        files: dict[str, Any] = {}
        executor = open_executor(self.target.env.executor)
        try:
            for path in self.paths:
                try:
                    mark = read_mark(executor, path)
                except ExecutorError as exc:  # the check says it could not compare this file
                    files[path] = {"error": str(exc)}
                    continue
                files[path] = mark.to_json() if mark is not None else None
        finally:
            _close(executor)
        return {"files": files}

    def check(self, baseline: dict[str, Any] | None = None) -> CheckResult:
        recorded = (baseline or {}).get("files")
        executor = open_executor(self.target.env.executor)
        try:
            scans = [self._scan(executor, path, recorded) for path in self.paths]
        finally:
            _close(executor)
        return self._verdict(scans)

    def _scan(self, executor: Executor, path: str, recorded: Any) -> FileScan:
        entry = recorded.get(path, "unknown") if isinstance(recorded, dict) else "unknown"
        before = FileMark.from_json(entry)
        compared = entry is None or before is not None  # None: the file did not exist yet
        limit = MAX_READ if compared else UNCOMPARED_READ
        try:
            mark, start, text = read_since(executor, path, before, limit)
        except ExecutorError as exc:
            return FileScan(path, "uncompared", error=str(exc))
        if mark is None:
            return FileScan(path, "gone" if before is not None else "missing")
        change = change_since(before, mark, compared)
        expected, skipped = read_window(change, before.size if before else 0, mark.size, limit)
        if expected != start:  # the script and read_window disagree: never judge wrong bytes
            return FileScan(path, change, error=f"read from byte {start}, expected {expected}")
        count = count_lines(text, self.patterns, starts_mid_line=skipped > 0)
        unseen = 0 if change == "uncompared" else skipped  # without a baseline, nothing is "new"
        return FileScan(path, change, len(text.encode()), unseen, count)

    def _verdict(self, scans: list[FileScan]) -> CheckResult:
        total = LineCount()
        for scan in scans:
            if scan.count is not None:
                total.add(scan.count)
        for severity in ("first_fatal", "first_warning"):
            if (line := getattr(total, severity)) is not None:
                setattr(total, severity, shorten(self.redactor.text(line)))
        unread = [f"cannot read {scan.path}: {scan.error}" for scan in scans if scan.error]
        fatal = _lines_found(total.fatal, "fatal", total.first_fatal, scans)
        warnings = _lines_found(total.warning, "warning", total.first_warning, scans)
        ok = not unread and not fatal and not (self.spec.fail_on_warning and warnings)
        passed = [f"no fatal line in {_files(len(scans))}"] if ok else []
        reasons = [*passed, *unread, *fatal, *warnings]
        notes = _notes(scans)
        read = sum(scan.read for scan in scans)
        data = {
            "fatal": total.fatal,
            "warning": total.warning,
            "files": {scan.path: scan.to_json() for scan in scans},
        }
        detail = "; ".join([*reasons, *notes, f"{amount(read)} read"])
        return CheckResult(name=self.name, ok=ok, detail=detail, data=data, kind="logscan")


def _lines_found(
    number: int, severity: Severity, first: str | None, scans: list[FileScan]
) -> list[str]:
    """ "N fatal lines, first in PATH: 'LINE'" as a one-item list; [] when there are none."""
    where = [
        scan.path for scan in scans if scan.count is not None and getattr(scan.count, severity) > 0
    ]
    if not number or not where:
        return []
    plural = "" if number == 1 else "s"
    return [f"{number} {severity} line{plural}, first in {where[0]}: {first!r}"]


def _notes(scans: list[FileScan]) -> list[str]:
    """What the reader of a result must know about how the files were read."""
    uncompared = [s.path for s in scans if s.change == "uncompared" and s.error is None]
    notes = [note for scan in scans if (note := _note(scan))]
    if uncompared:
        last = amount(UNCOMPARED_READ)
        notes.insert(0, f"no baseline for {', '.join(uncompared)}: scanned the last {last}")
    return notes


def _note(scan: FileScan) -> str | None:
    if scan.change in ("rotated", "truncated"):
        return f"{scan.path} was {scan.change} since the baseline: read from its start"
    if scan.change == "gone":
        return f"{scan.path} is gone since the baseline (rotated away?): not scanned"
    if scan.change == "missing":
        return f"{scan.path} does not exist (nothing logged)"
    if scan.skipped:
        skipped, read = amount(scan.skipped), amount(scan.read)
        return f"{scan.path}: skipped {skipped} written since the baseline, read the newest {read}"
    return None


def _secrets_of(env: Environment) -> list[str]:
    secrets = env.executor.secrets()
    if isinstance(env.database, ServerDatabase) and env.database.password:
        secrets.append(env.database.password)
    return secrets


def _files(number: int) -> str:
    return "1 file" if number == 1 else f"{number} files"


def _close(executor: Executor) -> None:
    close = getattr(executor, "close", None)  # connection-holding executors (ssh://)
    if close is not None:
        close()
