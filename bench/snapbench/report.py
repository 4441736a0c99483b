"""The results table: each pair side by side, the ratio, and the issue's target next to it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from snapbench.context import Side
from snapbench.legs import Comparison
from snapbench.measure import median

MB = 1_000_000
RSS_TARGET = 200 * MB
PIPELINE_TARGET = 1.10
BYTES_TARGET = 1.2
TIME_TARGET = 1.0


@dataclass
class Row:
    label: str
    ours: str
    theirs: str
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def megabytes(value: float) -> str:
    return f"{value / MB:,.1f} MB"


def ratio_of(ours: float, theirs: float) -> float | None:
    return ours / theirs if theirs else None


def med(sides: list[Side], pick: str) -> float:
    return median([float(_value(side, pick)) for side in sides])


def _value(side: Side, pick: str) -> float:
    if pick == "seconds":
        return side.seconds
    if pick in ("max_rss", "tree_rss"):
        return float(getattr(side, pick))
    kind, _, part = pick.partition(":")
    if kind == "time":
        return side.parts.get(part, 0.0)
    if kind == "size":
        return float(sum(side.sizes.values()) if part == "total" else side.sizes.get(part, 0))
    if kind == "stored":
        stored = side.extra.get("stored", 0)
        if isinstance(stored, dict):
            return float(stored.get(part, 0) if part else sum(stored.values()))
        return float(stored)
    raise ValueError(pick)


def timing_rows(result: Comparison, target: float | None) -> list[Row]:
    ours, theirs = result.ours, result.theirs
    total = ratio_of(med(ours, "seconds"), med(theirs, "seconds"))
    rows = [
        Row(
            f"wall time, median of {len(ours)}",
            seconds(med(ours, "seconds")),
            seconds(med(theirs, "seconds")),
            total,
            f"<= {target:.2f}x" if target else "(overhead)",
            None if target is None or total is None else total <= target,
        )
    ]
    for part, label in (("db", "  database part"), ("files", "  files part")):
        a, b = med(ours, f"time:{part}"), med(theirs, f"time:{part}")
        rows.append(Row(label, seconds(a), seconds(b), ratio_of(a, b)))
    in_process = median([float(side.extra["in_process"]) for side in ours])
    steps = in_process - med(ours, "time:db") - med(ours, "time:files")
    rows.append(Row("  tma-ops: other steps of the snapshot", seconds(steps), ""))
    start = median([side.seconds - float(side.extra["in_process"]) for side in ours])
    rows.append(Row("  tma-ops: interpreter start, imports", seconds(start), ""))
    rows.append(Row("  fastest - slowest rep", _spread(ours), _spread(theirs)))
    return rows


def _spread(sides: list[Side]) -> str:
    values = [side.seconds for side in sides]
    return f"{min(values):.2f} - {max(values):.2f} s"


def cpu_rows(result: Comparison) -> list[Row]:
    """CPU seconds of the local processes: more than the wall time means stages ran in parallel."""
    a = median([float(side.extra["cpu"]) for side in result.ours])
    b = median([float(side.extra["cpu"]) for side in result.theirs])
    a_wall, b_wall = med(result.ours, "seconds"), med(result.theirs, "seconds")
    return [
        Row("CPU time, local processes", seconds(a), seconds(b), ratio_of(a, b)),
        Row("  CPU / wall (cores kept busy)", f"{a / a_wall:.2f}", f"{b / b_wall:.2f}"),
    ]


def memory_rows(result: Comparison) -> list[Row]:
    peak = max(side.max_rss for side in result.ours)
    within = peak <= RSS_TARGET
    rows = [
        Row("peak RSS, tma-ops process (VmHWM)", megabytes(peak), "", None, "<= 200 MB", within)
    ]
    a = max(side.tree_rss for side in result.ours)
    b = max(side.tree_rss for side in result.theirs)
    rows.append(Row("peak RSS, process tree (sampled)", megabytes(a), megabytes(b), ratio_of(a, b)))
    return rows


def size_rows(result: Comparison) -> list[Row]:
    a, b = med(result.ours, "size:total"), med(result.theirs, "size:total")
    return [Row("stored bytes (zstd-3 vs raw level)", megabytes(a), megabytes(b), ratio_of(a, b))]


def incremental_rows(result: Comparison) -> list[Row]:
    ours, theirs = result.ours, result.theirs
    rows = []
    for part, label in (("files", "bytes sent, files part"), ("db", "bytes sent, database part")):
        a, b = med(ours, f"size:{part}"), med(theirs, f"size:{part}")
        rows.append(Row(label, megabytes(a), megabytes(b), ratio_of(a, b)))
    a, b = med(ours, "size:total"), med(theirs, "size:total")
    ratio = ratio_of(a, b)
    met = None if ratio is None else ratio <= BYTES_TARGET
    rows.append(
        Row("bytes sent, total", megabytes(a), megabytes(b), ratio, f"<= {BYTES_TARGET}x", met)
    )
    if ratio is None:
        rows[-1].target += " (restic added 0 B)"
        rows[-1].met = a == 0
    for part in ("files", "db"):
        a, b = med(ours, f"size:{part}"), med(theirs, f"stored:{part}")
        rows.append(Row(f"  store growth, {part} part", megabytes(a), megabytes(b), ratio_of(a, b)))
    a, b = med(ours, "stored"), med(theirs, "stored")
    rows.append(Row("  store growth, all objects", megabytes(a), megabytes(b), ratio_of(a, b)))
    rows += timing_rows(result, TIME_TARGET)
    if result.initial:
        first_ours, first_theirs = result.initial
        a, b = first_ours.seconds, first_theirs.seconds
        rows.append(Row("initial full: wall time", seconds(a), seconds(b), ratio_of(a, b)))
        a, b = sum(first_ours.sizes.values()), sum(first_theirs.sizes.values())
        rows.append(Row("initial full: bytes sent", megabytes(a), megabytes(b), ratio_of(a, b)))
    return rows


def render(title: str, theirs_name: str, rows: list[Row]) -> str:
    header = Row(title, "tma-ops", theirs_name, None, "target")
    lines = [_line(header, heading=True)]
    lines += [_line(row) for row in rows]
    return "\n".join(lines)


def _line(row: Row, heading: bool = False) -> str:
    if heading:
        ratio = "ratio"
    elif row.ratio is None or (isinstance(row.ratio, float) and math.isnan(row.ratio)):
        ratio = ""
    else:
        ratio = f"{row.ratio:.2f}x"
    verdict = {True: "ok", False: "MISSED", None: ""}[row.met]
    return f"{row.label:<38} {row.ours:>14} {row.theirs:>22} {ratio:>8}  {row.target:<14} {verdict}"


def leg_table(result: Comparison) -> str:
    titles = {
        "pipeline": "1. pipeline into a local sink",
        "e2e": "2. end to end: ssh -> S3 API (moto)",
        "incremental": "3. incremental, after 1 % of files rewritten",
    }
    title = titles.get(result.leg, result.leg)
    if result.error:
        return f"{title}\n   not measured: {result.error}"
    if not result.ours:
        return f"{title}\n   no repetitions"
    if result.leg == "incremental":
        rows = incremental_rows(result)
    elif result.leg == "pipeline":
        rows = timing_rows(result, PIPELINE_TARGET) + cpu_rows(result)
        rows += memory_rows(result) + size_rows(result)
    else:
        rows = timing_rows(result, None) + cpu_rows(result) + memory_rows(result)
        rows += size_rows(result)
    notes = [f"   note: {note}" for note in result.notes]
    return "\n".join([render(title, result.theirs_name, rows), *notes])
