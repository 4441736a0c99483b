"""What each CLI command does: resolve the inventory, call the library, print the result."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tma_ops.config import Inventory, Site, load_inventory
from tma_ops.cycle import RunSummary, run_cycle
from tma_ops.errors import (
    EXIT_INTEGRITY,
    EXIT_OK,
    EXIT_WARNINGS,
    IntegrityError,
    InventoryError,
    TmaError,
)
from tma_ops.journal import Journal
from tma_ops.journal_heads import head_published_after
from tma_ops.lock import SiteLock
from tma_ops.model_journal import JOURNAL_FILE as JOURNAL_FILE  # where callers look for it
from tma_ops.model_journal import JournalSettings
from tma_ops.operations import manual_restore, manual_snapshot
from tma_ops.progress import TransferProgress
from tma_ops.snapshot import list_snapshots, resolve_snapshot
from tma_ops.steps.plan import compute_plan
from tma_ops.stores import open_store
from tma_ops.units import human_size
from tma_ops.update_policy import approvals


def say(line: str) -> None:
    """Print a line; a reader that went away (`| head`) must not break a running cycle."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def quiet(_line: str) -> None:
    return None


def emit(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    say(json.dumps(obj, ensure_ascii=False, sort_keys=True) if args.json else text)


def inventory_path(args: argparse.Namespace, explicit: str | None = None) -> Path:
    raw = explicit or args.inventory or os.environ.get("TMA_OPS_INVENTORY")
    if raw:
        return Path(raw)
    if Path("tma.yaml").exists():
        return Path("tma.yaml")
    raise InventoryError(
        "no inventory: pass --inventory PATH, set TMA_OPS_INVENTORY, "
        "or run from a directory holding tma.yaml"
    )


def open_inventory(args: argparse.Namespace) -> Inventory:
    return load_inventory(inventory_path(args))


def state_dir(args: argparse.Namespace, inventory: Inventory | None) -> Path:
    if args.state:
        return Path(args.state)
    if inventory is not None:
        return inventory.state_dir
    if args.inventory or os.environ.get("TMA_OPS_INVENTORY") or Path("tma.yaml").exists():
        return open_inventory(args).state_dir
    return Path(os.environ.get("TMA_OPS_STATE", "~/.local/state/tma-ops")).expanduser()


def open_journal(directory: Path, inventory: Inventory | None = None) -> Journal:
    """The journal the inventory configures (by default the SQLite file in `directory`), told
    the inventory's credentials so that it never records them."""
    settings = inventory.journal if inventory else JournalSettings()
    secrets = inventory.secrets() if inventory else []
    if settings.backend == "postgresql" and settings.url:
        from tma_ops.journal_postgres import PostgresJournal  # loads psycopg: only when used

        return PostgresJournal(settings.url, password=settings.password, secrets=secrets)
    return Journal(settings.sqlite_path(directory), secrets=secrets)


def require_journal(directory: Path, inventory: Inventory | None) -> None:
    """Refuse to read a SQLite journal that was never written (opening would create it)."""
    settings = inventory.journal if inventory else JournalSettings()
    path = settings.sqlite_path(directory)
    if settings.backend == "sqlite" and not path.exists():
        raise TmaError(f"no journal at {path}")


def journal_inventory(args: argparse.Namespace) -> Inventory | None:
    """The inventory naming the journal: the one given, else tma.yaml here unless --state is
    passed; None when the state directory alone says where the journal is."""
    given = args.inventory or os.environ.get("TMA_OPS_INVENTORY")
    if given or (not args.state and Path("tma.yaml").exists()):
        return open_inventory(args)
    return None


def progress_for(args: argparse.Namespace) -> TransferProgress:
    return TransferProgress(enabled=False) if args.json else TransferProgress()


def inventory_check(args: argparse.Namespace) -> int:
    path = inventory_path(args, args.path)
    inventory = load_inventory(path)
    names = sorted(inventory.sites)
    emit(
        args,
        {"ok": True, "sites": names, "files": [str(f) for f in inventory.files]},
        f"ok: {len(names)} site(s) in {path}: {', '.join(names)}",
    )
    return EXIT_OK


def snapshot(args: argparse.Namespace) -> int:
    inventory = open_inventory(args)
    site = inventory.site(args.site)
    store = open_store(site.store)
    directory = state_dir(args, inventory)
    with (
        open_journal(directory, inventory) as journal,
        head_published_after(journal, inventory, directory, site),
    ):
        manifest = manual_snapshot(
            site, args.env, store, journal, state_dir(args, inventory), progress_for(args)
        )
    emit(
        args,
        {
            "site": site.name,
            "snapshot_id": manifest.snapshot_id,
            "stored_bytes": manifest.total_size,
            "store": store.url,
        },
        f"{site.name}: snapshot {manifest.snapshot_id} of {args.env} stored and verified "
        f"({human_size(manifest.total_size)} in {store.url})",
    )
    return EXIT_OK


def snapshots_list(args: argparse.Namespace) -> int:
    site = open_inventory(args).site(args.site)
    manifests = list_snapshots(open_store(site.store), site.name)
    for m in manifests:
        versions = ", ".join(f"{name} {version}" for name, version in sorted(m.components.items()))
        emit(
            args,
            {
                "snapshot_id": m.snapshot_id,
                "environment": m.environment,
                "created_at": m.created_at,
                "stored_bytes": m.total_size,
                "components": m.components,
                "reason": m.reason,
                "parent": m.parent,
                "level": m.level,
                "encrypted": m.encryption is not None,
            },
            f"{m.snapshot_id}  {m.environment:<10} {human_size(m.total_size):>10}  "
            f"{_kind(m.level):<7} {m.reason:<32} {versions}",
        )
    if not manifests and not args.json:
        say(f"{site.name}: no snapshot yet")
    return EXIT_OK


def _kind(level: int) -> str:
    return "full" if level == 0 else f"incr {level}"


def restore(args: argparse.Namespace) -> int:
    inventory = open_inventory(args)
    site = inventory.site(args.site)
    site.environment(args.to_env)
    store = open_store(site.store)
    manifest = resolve_snapshot(store, site.name, args.snapshot)
    if args.to_env == "production" and not args.yes:
        _confirm_production_restore(site, manifest.snapshot_id)
    directory = state_dir(args, inventory)
    with (
        open_journal(directory, inventory) as journal,
        head_published_after(journal, inventory, directory, site),
    ):
        manual_restore(
            site,
            manifest,
            args.to_env,
            store,
            journal,
            state_dir(args, inventory),
            progress_for(args),
        )
    emit(
        args,
        {
            "site": site.name,
            "environment": args.to_env,
            "snapshot_id": manifest.snapshot_id,
            "restored": True,
        },
        f"{site.name}: {args.to_env} restored from {manifest.snapshot_id} (database and files)",
    )
    return EXIT_OK


def _confirm_production_restore(site: Site, snapshot_id: str) -> None:
    if not sys.stdin.isatty():
        raise TmaError(
            "restoring production overwrites its database and files: "
            "pass --yes to confirm when not running on a terminal"
        )
    answer = input(
        f"Overwrite {site.name} production with {snapshot_id}? Type the site name to confirm: "
    )
    if answer.strip() != site.name:
        raise TmaError("restore cancelled: production was not touched")


def cycle(args: argparse.Namespace) -> int:
    inventory = open_inventory(args)
    if args.all == bool(args.sites):
        raise TmaError("name the sites to run, or pass --all (not both)")
    names = sorted(inventory.sites) if args.all else args.sites
    sites = [inventory.site(name) for name in names]
    if args.dry_run:
        return _print_plans(args, sites)
    directory = state_dir(args, inventory)
    codes = []
    with open_journal(directory, inventory) as journal:
        for site in sites:
            with head_published_after(journal, inventory, directory, site):
                codes.append(_cycle_one(args, site, journal, directory, len(sites) > 1))
    return max(codes)


def _cycle_one(
    args: argparse.Namespace, site: Site, journal: Journal, directory: Path, keep_going: bool
) -> int:
    try:
        summary = run_cycle(
            site,
            open_store(site.store),
            journal,
            directory,
            progress=progress_for(args),
            say=quiet if args.json else say,
            break_stale_lock=args.break_stale_lock,
            approved=approvals(args.approve),
        )
    except TmaError as exc:
        if not keep_going:
            raise
        print(f"tma-ops: error: {exc}", file=sys.stderr)
        return exc.exit_code
    _print_summary(args, summary)
    return summary.exit_code


def _print_summary(args: argparse.Namespace, summary: RunSummary) -> None:
    updates = (
        ", ".join(
            f"{u['component']} {u['from_version']} -> {u['to_version']}" for u in summary.updates
        )
        or "none"
    )
    emit(
        args,
        asdict(summary),
        f"== {summary.site}: {summary.outcome} (run {summary.run_id}); "
        f"updates: {updates}; production {summary.production}"
        + (f"; culprits held back: {', '.join(summary.culprits)}" if summary.culprits else ""),
    )


def _print_plans(args: argparse.Namespace, sites: list[Site]) -> int:
    for site in sites:
        plan = compute_plan(site, "production", approved=approvals(args.approve))
        selected, held = plan.planned, plan.held
        emit(
            args,
            {
                "site": site.name,
                "dry_run": True,
                "updates": [asdict(u) for u in selected],
                "held": [{**asdict(u), "reason": r} for u, r in held],
            },
            "\n".join(
                [f"{site.name}: {len(selected)} update(s) planned (dry run, nothing changed)"]
                + [f"  {u.describe()}  [{u.artifact}]" for u in selected]
                + [f"  held: {u.describe()}: {r}" for u, r in held]
            ),
        )
    return EXIT_OK


def lock_status(args: argparse.Namespace) -> int:
    inventory = open_inventory(args)
    names = args.sites or sorted(inventory.sites)
    directory = state_dir(args, inventory)
    worst = EXIT_OK
    for name in names:
        state, owner = SiteLock(directory, inventory.site(name).name).status()
        worst = max(worst, EXIT_WARNINGS if state == "stale" else EXIT_OK)
        emit(
            args,
            {"site": name, "state": state, "owner": asdict(owner) if owner else None},
            f"{name}: {state}" + (f" ({owner.describe()})" if owner else ""),
        )
    return worst


def lock_break(args: argparse.Namespace) -> int:
    inventory = open_inventory(args)
    site = inventory.site(args.site)
    directory = state_dir(args, inventory)
    owner = SiteLock(directory, site.name).break_stale()
    if owner is not None:
        with open_journal(directory, inventory) as journal:
            journal.append(
                run_id=owner.run_id,
                site=site.name,
                step="lock",
                status="broken",
                data={"stale_owner": owner.describe()},
            )
    emit(
        args,
        {"site": site.name, "broken": owner is not None},
        f"{site.name}: stale lock of {owner.describe()} broken"
        if owner
        else f"{site.name}: no stale lock",
    )
    return EXIT_OK


def journal_show(args: argparse.Namespace) -> int:
    inventory = journal_inventory(args)
    with open_journal(state_dir(args, inventory), inventory) as journal:
        for event in journal.events(site=args.site, run_id=args.run):
            detail = json.dumps(event.data, ensure_ascii=False, sort_keys=True)
            emit(
                args,
                asdict(event),
                f"{event.id:>5} {event.time} {event.site:<10} {event.run_id:<30} "
                f"{event.step:<22} {event.status:<8} {detail[:160]}",
            )
    return EXIT_OK


def journal_verify(args: argparse.Namespace) -> int:
    inventory = journal_inventory(args)
    directory = state_dir(args, inventory)
    require_journal(directory, inventory)
    with open_journal(directory, inventory) as journal:
        where, report = journal.description, journal.verify()
    if not report.ok and not args.json:
        raise IntegrityError(f"journal {where}: {report.reason}")
    emit(args, asdict(report), f"journal {where}: ok, {report.count} events, hash chain intact")
    return EXIT_OK if report.ok else EXIT_INTEGRITY


def demo(args: argparse.Namespace) -> int:
    from tma_ops.demo.run import run_demo

    return run_demo(Path(args.workspace), as_json=args.json)


def demo_serve(args: argparse.Namespace) -> int:
    from tma_ops.demo.app import serve_forever

    serve_forever(
        Path(args.workspace),
        host=args.host,
        port=args.port,
        on_ready=lambda url: print(f"serving the demo sites at {url}", flush=True),
    )
    return EXIT_OK
