"""Builds the embedded demo workspace: two sites, production and staging each, and a channel.

Layout (next to a copy of the demo inventory, whose relative paths point here):

    sites/<site>/<env>/site.sqlite      options and posts, read by tma_ops.demo.app
    sites/<site>/<env>/www/             index.php, plugins/<name>/{VERSION,plugin.py,readme.txt},
                                        uploads/ (persistent data)
    sites/<site>/sandbox/               empty: restore tests restore into it, then empty it
    channel/<name>-<version>.zip|.tar.gz  plugin archives, each with a top-level <name>/ dir
    store/, state/                      empty, for the file:// store and the run state

Staging starts as a copy of production taken a month ago: same plugin versions, fewer posts
and uploads, so refreshing staging visibly brings today's data.
"""

from __future__ import annotations

import base64
import gzip
import io
import shutil
import sqlite3
import tarfile
import zipfile
from contextlib import closing
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from tma_ops.errors import TmaError

MARKER = ".tma-demo"
INVENTORY_NAME = "tma.yaml"
PLUGIN_TEMPLATES = Path(__file__).parent / "plugins"
STAGING_AGE_DAYS = 30
ArchiveFormat = Literal["zip", "tar.gz"]
# Fixed archive timestamps keep the channel byte-identical from one build to the next.
ARCHIVE_EPOCH = (2024, 1, 1, 0, 0, 0)
ARCHIVE_MTIME = 1704067200
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@dataclass(frozen=True)
class DemoSite:
    title: str
    tagline: str
    components: dict[str, str]
    posts: tuple[tuple[str, str, int], ...]  # title, body, age in days
    uploads: tuple[tuple[str, bytes, int], ...]  # relative path, content, age in days


SITES: dict[str, DemoSite] = {
    "blog": DemoSite(
        title="Atelier Lumière — blog",
        tagline="Vitraux et verre d'art à Lyon",
        components={"seo": "1.0.0", "gallery": "2.0.0"},
        posts=(
            ("Bienvenue à l'atelier", "Nous ouvrons les portes de notre atelier de vitrail.", 120),
            ("Restauration d'un vitrail du XIXᵉ siècle", "Trois mois de travail minutieux.", 75),
            ("Les couleurs de l'automne", "Ambres, pourpres et ors pour la saison.", 40),
            ("Journées du patrimoine", "L'atelier sera ouvert samedi et dimanche.", 12),
            ("Nouveau stage d'initiation", "Inscriptions ouvertes pour le stage de juin.", 0),
        ),
        uploads=(
            ("2024/05/vitrail-rosace.png", PIXEL_PNG, 90),
            ("documents/programme-été.txt", "Programme des stages d'été\n".encode(), 60),
            (".htaccess", b"Options -Indexes\n", 120),
            ("2024/06/affiche-patrimoine.png", PIXEL_PNG, 10),
        ),
    ),
    "shop": DemoSite(
        title="Maison Dupont — boutique",
        tagline="Savons et bougies artisanales depuis 1952",
        components={"seo": "1.0.0", "payments": "3.1.0"},
        posts=(
            ("Savon au lait d'ânesse — 4,90 €", "Doux pour les peaux sensibles.", 200),
            ("Bougie parfumée figue — 18 €", "Cire de soja, 40 heures de combustion.", 90),
            ("Coffret découverte — 39 €", "Trois savons et une bougie.", 45),
            ("Huile de massage lavande — 22 €", "Lavande fine de Haute-Provence.", 5),
            ("Édition limitée : miel de Provence — 12,50 €", "Récolte de l'été.", 0),
        ),
        uploads=(
            ("produits/savon-ânesse.png", PIXEL_PNG, 200),
            ("produits/bougie-figue.png", PIXEL_PNG, 90),
            ("cgv/conditions-générales.txt", "Conditions générales de vente\n".encode(), 150),
            ("produits/miel-provence.png", PIXEL_PNG, 0),
        ),
    ),
}

CHANNEL: tuple[tuple[str, str, ArchiveFormat], ...] = (
    ("seo", "1.0.0", "zip"),
    ("seo", "1.1.0", "zip"),
    ("gallery", "2.0.0", "tar.gz"),
    ("gallery", "2.0.1", "tar.gz"),
    ("payments", "3.1.0", "zip"),
    ("payments", "4.0.0", "zip"),
)


def build_workspace(workspace: Path, inventory_template: Path) -> Path:
    """Build a fresh demo workspace and return the path of its inventory file.

    Refuses a non-empty directory without the `.tma-demo` marker; wipes and rebuilds one with it.
    """
    if not inventory_template.is_file():
        raise TmaError(f"{inventory_template}: demo inventory template not found")
    _prepare_directory(workspace)
    today = date.today()
    for name, site in SITES.items():
        for env in ("production", "staging"):
            cutoff = 0 if env == "production" else STAGING_AGE_DAYS
            _build_environment(workspace / "sites" / name / env, site, today, cutoff)
        # Empty until a restore test lands there (and emptied again after it).
        (workspace / "sites" / name / "sandbox").mkdir()
    for name, version, fmt in CHANNEL:
        build_component_archive(
            workspace / "channel", name, version, bundled_plugin_source(name, version), fmt
        )
    for directory in ("store", "state"):
        (workspace / directory).mkdir(exist_ok=True)
    inventory = workspace / INVENTORY_NAME
    shutil.copyfile(inventory_template, inventory)
    for tickets in inventory_template.parent.glob("tickets-*"):  # files the inventory names
        shutil.copyfile(tickets, workspace / tickets.name)
    return inventory


def bundled_plugin_source(name: str, version: str) -> str:
    """The source of a bundled demo plugin version (from tma_ops/demo/plugins/)."""
    return (PLUGIN_TEMPLATES / f"{name}-{version}.py").read_text(encoding="utf-8")


def component_files(name: str, version: str, source: str) -> dict[str, bytes]:
    """The files of one component directory, as installed and as archived in the channel."""
    return {
        "VERSION": f"{version}\n".encode(),
        "plugin.py": source.encode("utf-8"),
        "readme.txt": f"{name} {version}: plugin of the tma-ops embedded demo.\n".encode(),
    }


def install_component(plugins_dir: Path, name: str, version: str, source: str) -> Path:
    """Write `<plugins_dir>/<name>/` for this version, replacing whatever was there."""
    target = plugins_dir / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for filename, content in component_files(name, version, source).items():
        (target / filename).write_bytes(content)
    return target


def build_component_archive(
    channel: Path, name: str, version: str, plugin_source: str, fmt: ArchiveFormat
) -> Path:
    """Write `<channel>/<name>-<version>.<fmt>` holding a top-level `<name>/` directory."""
    if fmt not in ("zip", "tar.gz"):
        raise ValueError(f"unknown archive format {fmt!r}; expected 'zip' or 'tar.gz'")
    channel.mkdir(parents=True, exist_ok=True)
    archive = channel / f"{name}-{version}.{fmt}"
    files = component_files(name, version, plugin_source)
    if fmt == "zip":
        _write_zip(archive, name, files)
    else:
        _write_tar_gz(archive, name, files)
    return archive


def _write_zip(archive: Path, top: str, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        directory = zipfile.ZipInfo(f"{top}/", date_time=ARCHIVE_EPOCH)
        directory.external_attr = (0o40755 << 16) | 0x10
        bundle.writestr(directory, b"")
        for filename, content in files.items():
            entry = zipfile.ZipInfo(f"{top}/{filename}", date_time=ARCHIVE_EPOCH)
            entry.external_attr = 0o100644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(entry, content)


def _write_tar_gz(archive: Path, top: str, files: dict[str, bytes]) -> None:
    with (
        archive.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=ARCHIVE_MTIME) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as bundle,
    ):
        directory = tarfile.TarInfo(top)
        directory.type, directory.mode, directory.mtime = tarfile.DIRTYPE, 0o755, ARCHIVE_MTIME
        bundle.addfile(directory)
        for filename, content in files.items():
            entry = tarfile.TarInfo(f"{top}/{filename}")
            entry.size, entry.mode, entry.mtime = len(content), 0o644, ARCHIVE_MTIME
            bundle.addfile(entry, io.BytesIO(content))


def _prepare_directory(workspace: Path) -> None:
    if workspace.exists() and not workspace.is_dir():
        raise TmaError(f"{workspace}: exists and is not a directory; choose another demo path")
    if workspace.is_dir() and any(workspace.iterdir()):
        if not (workspace / MARKER).is_file():
            raise TmaError(
                f"{workspace}: directory is not empty and has no {MARKER} marker, so it is not "
                "a demo workspace; refusing to wipe it (choose an empty or new directory)"
            )
        for child in workspace.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    workspace.mkdir(parents=True, exist_ok=True)
    # Written first, so a build interrupted halfway can still be wiped and rebuilt.
    (workspace / MARKER).write_text("tma-ops demo workspace: rebuilt by `tma-ops demo`\n")


def _build_environment(env_dir: Path, site: DemoSite, today: date, cutoff_days: int) -> None:
    options, posts = build_environment_files(env_dir, site, today, cutoff_days)
    _write_database(env_dir / "site.sqlite", options, posts)


def build_environment_files(
    env_dir: Path, site: DemoSite, today: date, cutoff_days: int
) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """One environment's files as they were `cutoff_days` ago (older posts and uploads only);
    returns its database content (options, posts) for the caller to store where it belongs."""
    www = env_dir / "www"
    www.mkdir(parents=True)
    (www / "index.php").write_text(
        "<?php\n// Front controller placeholder: the demo CMS is tma_ops.demo.app.\n",
        encoding="utf-8",
    )
    for name, version in site.components.items():
        install_component(www / "plugins", name, version, bundled_plugin_source(name, version))
    (www / "uploads").mkdir()
    for relative, content, age in site.uploads:
        if age >= cutoff_days:
            target = www / "uploads" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    posts = [
        (title, body, (today - timedelta(days=age)).isoformat())
        for title, body, age in sorted(site.posts, key=lambda post: -post[2])
        if age >= cutoff_days
    ]
    return {"site_title": site.title, "tagline": site.tagline}, posts


def content_sql(options: dict[str, str], posts: list[tuple[str, str, str]], mysql: bool) -> str:
    """The demo schema and content as SQL for MariaDB/MySQL (mysql=True) or PostgreSQL."""
    quote = (
        (lambda text: "'" + text.replace("\\", "\\\\").replace("'", "''") + "'")
        if mysql
        else (lambda text: "'" + text.replace("'", "''") + "'")
    )
    lines = [
        "CREATE TABLE options (name VARCHAR(191) PRIMARY KEY, value TEXT);",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT, body TEXT, published TEXT);",
    ]
    lines += [f"INSERT INTO options VALUES ({quote(k)}, {quote(v)});" for k, v in options.items()]
    lines += [
        f"INSERT INTO posts VALUES ({n}, {quote(t)}, {quote(b)}, {quote(p)});"
        for n, (t, b, p) in enumerate(posts, 1)
    ]
    return "\n".join(lines) + "\n"


def _write_database(path: Path, options: dict[str, str], posts: list[tuple[str, str, str]]) -> None:
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.executescript(
            "CREATE TABLE options (name TEXT PRIMARY KEY, value TEXT);"
            "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT, body TEXT, published TEXT);"
        )
        connection.executemany("INSERT INTO options VALUES (?, ?)", options.items())
        connection.executemany("INSERT INTO posts (title, body, published) VALUES (?, ?, ?)", posts)
