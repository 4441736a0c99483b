"""The benchmark's site kept as releases: a working copy of the cached site, its inventory, two
releases (the second with a plugin changed), and a web server for the smoke check.

The working copy: the tree as hard links of the cache when on the same file system (instant;
every step below renames, copies or extracts new files, none writes into a file in place), else
a copy, and a real copy of MariaDB's data directory (InnoDB writes in place; a restore drops
every table first).
The cache of bench/snapshot_bench.py is never changed.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from harness import mariadb
from snapbench import sitegen
from snapbench.context import SITE, Bench

from tma_ops.config import Site
from tma_ops.dbs import database_of
from tma_ops.errors import TmaError
from tma_ops.releases import ReleaseTree, new_release_id
from tma_ops.rollback import release_tree

ENV = "production"
# Data that a real WordPress keeps across releases: uploads, and the backup plugin's archives.
SHARED = ("wp-content/uploads", "wp-content/ai1wm-backups")
USER_DATA = {"table": "wp_comments", "since_column": "comment_date"}
UPDATE_REASON = "bench: plugin update"


def working_copy(cache: sitegen.SiteCache, base: Path) -> sitegen.SiteCache:
    """The cached site copied to base (tree: hard links on the same file system, else a real
    copy; database: a real copy)."""
    work = sitegen.SiteCache(base, cache.size)
    work.db_base.mkdir(parents=True)
    for directory in (work.base, work.db_base):
        directory.chmod(0o755)
    same_device = base.stat().st_dev == cache.root.stat().st_dev
    link = ["cp", "-al"] if same_device else ["cp", "-a"]
    subprocess.run([*link, str(cache.root), str(work.root)], check=True)
    data = cache.db_base / "data"
    subprocess.run(["cp", "-a", str(data), str(work.db_base / "data")], check=True)
    shutil.copy(cache.meta_file, work.meta_file)
    return work


def grant_scratch_databases(server: mariadb.MariaDbServer) -> None:
    """Let the site's user create the restore's scratch databases (`<db>__tma_*`, beside its
    own): tma-ops then loads the dump aside while the files are extracted and swaps it in. The
    harness grants each user its own database only, which leaves the restore to load the live
    database after the files (the fallback, measured with --no-scratch-grant)."""
    pattern = sitegen.DB_NAME.replace("_", "\\_") + "\\_\\_tma\\_%"
    sql = f"GRANT ALL PRIVILEGES ON `{pattern}`.* TO '{sitegen.DB_USER}'@'%';"
    mariadb.run_sql(server, sql)


def rollback_inventory(
    bench: Bench, store: dict[str, Any], smoke_url: str, user_data: bool = True
) -> Path:
    """The snapshot bench's inventory of the working copy, with releases, user data and smoke."""
    path = bench.inventory("rollback", "local://", store)
    document = yaml.safe_load(path.read_text())
    site = document["sites"][SITE]
    site["user_data"] = [USER_DATA] if user_data else []
    shared = [path for path in SHARED if (bench.root / path).exists()]  # small sites: no backups
    for environment in site["environments"].values():
        environment["releases"] = {"keep": 5, "shared": shared}
        environment["smoke"] = [{"url": smoke_url}]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def user_data_problem(site: Site) -> str | None:
    """Why the rows of the user-data tables cannot be counted (snapshots and the data-loss
    estimate count them), or None."""
    engine, executor = database_of(site.environment(ENV))
    for table in site.user_data:
        try:
            engine.count_rows(executor, table.table)
            if table.since_column:
                engine.count_rows(executor, table.table, table.since_column, "2000-01-01T00:00:00Z")
        except TmaError as exc:
            return f"{type(exc).__name__}: {exc}"
    return None


@dataclass
class ReleasePair:
    tree: ReleaseTree
    first: str  # adopted from the plain tree: the rollback target
    second: str  # prepared from the first with a plugin changed: the one rolled back
    plugin: str
    versions: tuple[str, str]  # the plugin's version in the first and the second release

    def reset(self) -> None:
        """Back to "the second release is live and pending" after a rollback marked it bad."""
        self.tree.switch(self.second)
        self.tree.mark(self.second, "pending", migrations=[], reason=UPDATE_REASON)

    def live_version(self) -> str:
        path = Path(self.tree.root, "current", sitegen.COMPONENTS_DIR, self.plugin, "VERSION")
        return path.read_text().strip()


def keep_as_releases(site: Site) -> ReleasePair:
    """Adopt the plain tree, prepare a second release with a plugin changed, switch to it."""
    tree = release_tree(site.environment(ENV))
    assert tree is not None, "the inventory declares releases"
    now = datetime.now(UTC)
    # Ids sort by time at one-second resolution: made a second apart, they cannot tie.
    first, second = new_release_id(now - timedelta(seconds=1)), new_release_id(now)
    tree.adopt(first)
    path = Path(tree.prepare(second, migrations=[], reason=UPDATE_REASON))
    plugin, versions = change_a_plugin(path)
    tree.switch(second)
    tree.mark(second, "pending", migrations=[], reason=UPDATE_REASON)
    return ReleasePair(tree, first, second, plugin, versions)


def change_a_plugin(release: Path) -> tuple[str, tuple[str, str]]:
    """Bump the first plugin's VERSION and change one of its PHP files, as an update would."""
    plugins = release / sitegen.COMPONENTS_DIR
    plugin = sorted(path.name for path in plugins.iterdir())[0]
    version_file = plugins / plugin / "VERSION"
    old = version_file.read_text().strip()
    major, minor, patch = old.split(".")
    new = f"{major}.{minor}.{int(patch) + 1}"
    version_file.write_text(new + "\n")
    code = sorted((plugins / plugin).rglob("*.php"))
    if code:
        code[0].write_text(code[0].read_text() + f"\n// {plugin} {new}\n")
    return plugin, (old, new)


def posts_in_database(bench: Bench) -> int:
    """Rows of wp_posts: what each restore must bring back whole."""
    db = bench.services.db
    assert db is not None
    out = mariadb.run_sql(db, "SELECT COUNT(*) FROM wp_posts;", sitegen.DB_NAME)
    return int(out.strip())


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class SmokeServer:
    """Serves root/current over HTTP on 127.0.0.1, resolving the link at every request."""

    def __init__(self, docroot: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(docroot))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
