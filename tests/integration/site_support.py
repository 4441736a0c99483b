"""A realistic demo site for snapshot tests, and an independent way to compare trees.

The trees are compared by a walker written here (type, permission bits, content digest or link
target of every entry), independent of tma_ops.fingerprint, and the databases by iterdump().
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from tma_ops.config import Site, load_inventory
from tma_ops.demo.workspace import build_workspace

REPO = Path(__file__).parents[2]
MiB = 1 << 20
Tree = dict[str, tuple[str, int, str]]
# Names tma-ops leaves beside or inside a root while it restores or writes (never after).
LEFTOVER_MARKS = (".tma-restore", ".tma-replaced", ".partial")


# --- what is compared ----------------------------------------------------------------------


def walk_tree(root: Path) -> Tree:
    """Every entry under root, root itself as '.': (type, permission bits, digest or target)."""
    tree: Tree = {".": ("dir", stat.S_IMODE(root.lstat().st_mode), "")}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(base, name)
            info = path.lstat()
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                entry = ("link", mode, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                entry = ("dir", mode, "")
            elif stat.S_ISREG(info.st_mode):
                entry = ("file", mode, f"{info.st_size}:{file_sha256(path)}")
            else:
                entry = ("other", mode, "")
            tree[path.relative_to(root).as_posix()] = entry
    return tree


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def db_dump(path: Path) -> list[str]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return list(connection.iterdump())


def root_of(site: Site, env: str) -> Path:
    return Path(site.environment(env).root)


def db_of(site: Site, env: str) -> Path:
    return Path(site.environment(env).database.path)


def state_of(site: Site, env: str) -> tuple[Tree, list[str]]:
    return walk_tree(root_of(site, env)), db_dump(db_of(site, env))


def leftovers(site: Site) -> list[Path]:
    """Anything a restore stages or replaces, in or beside the roots and databases."""
    sites_dir = root_of(site, "production").parents[1]
    return [p for p in sites_dir.rglob("*") if any(m in p.name for m in LEFTOVER_MARKS)]


# --- a realistic site -------------------------------------------------------------------------


def enrich_tree(root: Path, rng: random.Random) -> None:
    """Random data in several files, odd modes, links, empty directories, unusual names."""
    for index, size in enumerate((2 * MiB + 3, MiB, 700 * 1024 + 1, 1)):
        data = root / "uploads" / "big" / f"blob-{index}.bin"
        data.parent.mkdir(parents=True, exist_ok=True)
        data.write_bytes(rng.randbytes(size))
    script = root / "bin" / "cron.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho maintenance\n")
    script.chmod(0o755)
    secret = root / "config.secret.php"
    secret.write_text("<?php $db_password = 'hunter2';\n")
    secret.chmod(0o600)
    (root / "empty.txt").touch()
    (root / "cache" / "empty" / "nested").mkdir(parents=True)
    (root / "private").mkdir(mode=0o700)
    (root / "private").chmod(0o700)
    (root / "uploads" / "Résumé — été ✓ 日本.txt").write_text("unicode name\n")
    (root / os.fsdecode(b"latin1-caf\xe9.txt")).write_bytes(b"a name that is not UTF-8\n")
    (root / "latest.png").symlink_to("uploads/2024/05/vitrail-rosace.png")
    (root / "dangling").symlink_to("nowhere/missing.txt")
    (root / "plugins-link").symlink_to("plugins", target_is_directory=True)
    root.chmod(0o750)


def enrich_database(path: Path, rng: random.Random) -> None:
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "CREATE TABLE comments (id INTEGER PRIMARY KEY, post INTEGER, body TEXT, "
            "attachment BLOB, score REAL)"
        )
        connection.executemany(
            "INSERT INTO comments (post, body, attachment, score) VALUES (?, ?, ?, ?)",
            [
                (i % 3 + 1, f"commentaire n°{i} — ✓", rng.randbytes(i % 50) or None, i / 7)
                for i in range(300)
            ],
        )
        connection.execute("CREATE INDEX comments_by_post ON comments (post)")
        connection.execute(
            "UPDATE options SET value = 'Vitraux, verre et lumière' WHERE name = 'tagline'"
        )


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    """The demo blog, its production grown into a realistic tree with more data."""
    monkeypatch.setenv("TMA_DEMO_PORT", "1")  # smoke URLs only; no server is needed
    inventory = build_workspace(tmp_path / "ws", REPO / "inventories" / "demo" / "tma.yaml")
    blog = load_inventory(inventory).site("blog")
    rng = random.Random(20240601)
    enrich_tree(root_of(blog, "production"), rng)
    enrich_database(db_of(blog, "production"), rng)
    return blog


def modify_production(site: Site) -> None:
    """Files changed, added, deleted, re-moded and re-linked; rows updated, added, deleted."""
    root = root_of(site, "production")
    blob = root / "uploads" / "big" / "blob-0.bin"
    blob.write_bytes(b"\0" + blob.read_bytes()[1:])
    with (root / "index.php").open("a") as index:
        index.write("// hacked\n")
    (root / "uploads" / "big" / "blob-1.bin").unlink()
    (root / "uploads" / "Résumé — été ✓ 日本.txt").unlink()
    (root / "cache" / "empty" / "nested").rmdir()
    (root / "new" / "dir").mkdir(parents=True, exist_ok=True)
    (root / "new" / "dir" / "added.txt").write_text("added after the snapshot\n")
    (root / "bin" / "cron.sh").chmod(0o644)
    (root / "latest.png").unlink()
    (root / "latest.png").symlink_to("uploads/2024/06/affiche-patrimoine.png")
    shutil.rmtree(root / "plugins" / "gallery")
    root.chmod(0o755)
    with closing(sqlite3.connect(db_of(site, "production"))) as connection, connection:
        connection.execute("UPDATE posts SET title = 'changed' WHERE id = 1")
        connection.execute("INSERT INTO posts (title, body, published) VALUES ('x', 'y', 'z')")
        connection.execute("DELETE FROM comments WHERE id % 2 = 0")
        connection.execute("CREATE TABLE added (id INTEGER PRIMARY KEY)")
