"""The results tables, in the snapshot benchmark's layout: medians, ratios, the issue's targets."""

from __future__ import annotations

from snapbench.context import Side
from snapbench.measure import median
from snapbench.report import Row, megabytes, ratio_of, render, seconds

from rollbench.legs import CodeOnly, FullRollback

CODE_TARGET = 1.0  # seconds: code-only rollback on the benchmark site
FULL_TARGET = 1.2  # full rollback against the raw restore


def duration(value: float, unit: str) -> str:
    return f"{value * 1000:,.0f} ms" if unit == "ms" else f"{value:.2f} s"


def timed_row(label: str, values: list[float], unit: str = "ms", judged: bool = False) -> Row:
    """Median and range of a figure; `judged`: held against the code-only target."""
    value = median(values)
    low, high = duration(min(values), unit), duration(max(values), unit)
    target, met = (f"< {CODE_TARGET:.0f} s", value < CODE_TARGET) if judged else ("", None)
    return Row(label, duration(value, unit), f"{low} - {high}", None, target, met)


def code_rows(result: CodeOnly) -> list[Row]:
    reps, cli = result.in_process, result.cli
    return [
        timed_row("planning (read releases, snapshots)", [r["planning"] for r in reps]),
        timed_row("carry_out (switch, mark bad)", [r["carry_out"] for r in reps]),
        timed_row("planning + carry_out", [r["total"] for r in reps], judged=True),
        timed_row("tma-ops rollback --yes --json", [r["wall"] for r in cli], "s", judged=True),
        timed_row("  start, imports, inventory, plan", [r["wall"] - r["ttr"] for r in cli]),
        timed_row("    python -c 'import tma_ops.cli'", [r["imports"] for r in cli]),
        timed_row("  the rollback (its 'seconds')", [r["seconds"] for r in cli]),
        timed_row("  smoke check, journal", [r["ttr"] - r["seconds"] for r in cli]),
        timed_row("  time to recovery (its figure)", [r["ttr"] for r in cli]),
        timed_row("  CPU time of the process", [r["cpu"] for r in cli], "s"),
    ]


def code_table(result: CodeOnly) -> str:
    title = "1. code-only rollback (keep DB)"
    if result.error:
        return f"{title}\n   not measured: {result.error}"
    lines = [render(title, "fastest - slowest", code_rows(result))]
    notes = [f"medians of {len(result.in_process)} repetitions", *result.notes]
    return "\n".join([*lines, *[f"   note: {note}" for note in notes]])


def part(sides: list[Side], name: str) -> float:
    return median([side.parts.get(name, 0.0) for side in sides])


def wall(sides: list[Side]) -> float:
    return median([side.seconds for side in sides])


def full_rows(ours: list[Side], theirs: list[Side], judged: bool) -> list[Row]:
    a, b = wall(ours), wall(theirs)
    ratio = ratio_of(a, b)
    met = None if ratio is None or not judged else ratio <= FULL_TARGET
    target = f"<= {FULL_TARGET:.2f}x" if judged else ""
    rows = [Row(f"wall time, median of {len(ours)}", seconds(a), seconds(b), ratio, target, met)]
    # tma-ops loads the dump beside the live database while the files are extracted, then swaps
    # it in; the raw restore loads it after tar -x: its load is set against both rows.
    pairs = (
        ("staging", "files", "  staging (raw: tar -x only)"),
        ("files", "files", "    files part: extracting (tar -x)"),
        ("db_stage", None, "    database part: staging the dump"),
        ("db_aside", "db", "    database: loading it aside (mysql)"),
        ("db_commit", "db", "  database commit (raw: mysql < dump)"),
        ("swap", "swap", "  swap (renames, old tree removed)"),
    )
    for mine, other, label in pairs:
        x, y = part(ours, mine), part(theirs, other) if other else None
        rows.append(Row(label, seconds(x), seconds(y) if y is not None else "", _ratio(x, y)))
    if not judged:
        return rows
    for key, label in (
        ("data_loss", "  tma-ops: data-loss estimate"),
        ("planning", "  tma-ops: planning (read the state)"),
        ("other", "  tma-ops: other steps of carry_out"),
    ):
        rows.append(Row(label, seconds(part(ours, key)), ""))
    in_process = median([float(s.extra["in_process"]) for s in ours])
    start = median([s.seconds - float(s.extra["in_process"]) for s in ours])
    rows.append(Row("  tma-ops: interpreter start, imports", seconds(start), ""))
    rows.append(Row("  fastest - slowest rep", _range(ours), _range(theirs)))
    rows.append(
        Row("without interpreter start", seconds(in_process), seconds(b), ratio_of(in_process, b))
    )
    return rows + resource_rows(ours, theirs)


def before_rows(ours: list[Side], before: list[Side]) -> list[Row]:
    """This tree's restore against another tree's, figure by figure."""
    a, b = wall(ours), wall(before)
    rows = [Row(f"wall time, median of {len(ours)}", seconds(a), seconds(b), ratio_of(a, b))]
    for key, label in (
        ("staging", "  staging"),
        ("files", "    files part: extracting (tar -x)"),
        ("db_stage", "    database part: staging the dump"),
        ("db_aside", "    database: loading it aside (mysql)"),
        ("db_commit", "  database commit (older tree: load)"),
        ("swap", "  swap (renames, old tree removed)"),
    ):
        x, y = part(ours, key), part(before, key)
        rows.append(Row(label, seconds(x), seconds(y), ratio_of(x, y)))
    cpu_a = median([float(side.extra["cpu"]) for side in ours])
    cpu_b = median([float(side.extra["cpu"]) for side in before])
    rows.append(
        Row("CPU time, local processes", seconds(cpu_a), seconds(cpu_b), ratio_of(cpu_a, cpu_b))
    )
    return rows


def _ratio(x: float, y: float | None) -> float | None:
    return None if y is None else ratio_of(x, y)


def _range(sides: list[Side]) -> str:
    values = [side.seconds for side in sides]
    return f"{min(values):.2f} - {max(values):.2f} s"


def resource_rows(ours: list[Side], theirs: list[Side]) -> list[Row]:
    a = median([float(side.extra["cpu"]) for side in ours])
    b = median([float(side.extra["cpu"]) for side in theirs])
    return [
        Row("CPU time, local processes", seconds(a), seconds(b), ratio_of(a, b)),
        Row("  CPU / wall (cores kept busy)", f"{a / wall(ours):.2f}", f"{b / wall(theirs):.2f}"),
        Row("peak RSS, tma-ops process (VmHWM)", megabytes(max(s.max_rss for s in ours)), ""),
        Row(
            "peak RSS, process tree (sampled)",
            megabytes(max(s.tree_rss for s in ours)),
            megabytes(max(s.tree_rss for s in theirs)),
        ),
    ]


def full_table(result: FullRollback) -> str:
    title = "2. full rollback: files + database"
    if result.error:
        return f"{title}\n   not measured: {result.error}"
    if not result.ours:
        return f"{title}\n   no repetitions"
    blocks = [render(title, "raw restore", full_rows(result.ours, result.raw, judged=True))]
    if result.sealed:
        sealed_title = "   the same, raw from the stored parts"
        rows = full_rows(result.ours, result.sealed, judged=False)
        blocks.append(render(sealed_title, result.unseal, rows))
    if result.before:
        title = f"   tma-ops against {result.before_tree}"
        blocks.append(render(title, "that tree", before_rows(result.ours, result.before)))
    notes = [*result.notes, database_paths_note(result)]
    return "\n".join([*blocks, *[f"   note: {note}" for note in notes]])


def database_paths_note(result: FullRollback) -> str:
    """How each side's restore loaded the dump: beside the live database (shadow), into it at
    commit (live: the fallback), or a tree without the load aside (commit only)."""
    told = []
    for name, sides in (("tma-ops", result.ours), (str(result.before_tree), result.before)):
        paths = [str(side.extra.get("database_path", "?")) for side in sides]
        if paths:
            counts = ", ".join(f"{paths.count(path)}x {path}" for path in sorted(set(paths)))
            told.append(f"{name}: {counts}")
    return "database loaded: " + "; ".join(told)
