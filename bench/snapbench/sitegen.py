"""The benchmark's site, generated once and cached: a WordPress-like tree and a MariaDB database.

Files (for --size 1, about 1 GiB): ~10 % many small PHP/JS/CSS text files, ~68 % medium media
files (random bytes, like JPEG/PNG/PDF uploads: incompressible), ~22 % a few large ones (videos,
backup archives: incompressible). The database, ~200 MB of mysqldump output per GiB of files,
holds WordPress-like posts, post meta and comments.

The cache lives under <workdir>/site-<size>/: `www/` (the site root), `mariadb/` (the harness's
server directory with its data) and `meta.json`, written last: a cache without it is rebuilt.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import mariadb

GENERATOR_VERSION = 1
GIB = 1 << 30
MIB = 1 << 20
DB_BYTES_PER_GIB = 200_000_000
SHARES = {"text": 0.10, "media": 0.68, "large": 0.22}
LARGE_MAX = 96 * MIB
COMPONENTS_DIR = "wp-content/plugins"
DB_NAME = "site"
DB_USER = "bench"
DB_PASSWORD = "bench-db-password"
CORPUS_BYTES = 4 * MIB
SEED = 20240611


@dataclass
class SiteCache:
    base: Path
    size: float

    @property
    def root(self) -> Path:
        return self.base / "www"

    @property
    def db_base(self) -> Path:
        return self.base / "mariadb"

    @property
    def meta_file(self) -> Path:
        return self.base / "meta.json"

    def meta(self) -> dict[str, int]:
        data: dict[str, int] = json.loads(self.meta_file.read_text())
        return data

    def ready(self) -> bool:
        if not self.meta_file.exists():
            return False
        return self.meta().get("generator") == GENERATOR_VERSION


def site_cache(workdir: Path, size: float) -> SiteCache:
    return SiteCache(workdir / f"site-{size:g}", size)


# -- files ---------------------------------------------------------------------------------------


def corpus(rng: random.Random, size: int = CORPUS_BYTES) -> bytes:
    """PHP-looking source text: identifiers, calls, conditions, doc comments."""
    idents = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz_", k=rng.randint(3, 14)))
        for _ in range(3000)
    ]
    words = [
        "".join(rng.choices("etaoinshrdlucmfwypvbgk", k=rng.randint(2, 9))) for _ in range(2000)
    ]
    lines, total = [], 0
    while total < size:
        a, b, f = rng.choice(idents), rng.choice(idents), rng.choice(idents)
        tab = "\t" * rng.randint(0, 3)
        pick = rng.random()
        if pick < 0.30:
            line = f"{tab}${a} = {f}( ${b}, '{rng.choice(words)}' );"
        elif pick < 0.45:
            line = f"{tab}if ( ! empty( ${a} ) && {f}( ${b} ) ) {{"
        elif pick < 0.55:
            line = f"{tab}}}"
        elif pick < 0.75:
            line = f"{tab} * " + " ".join(rng.choices(words, k=rng.randint(3, 12)))
        elif pick < 0.88:
            line = f"{tab}return ${a}['{rng.choice(words)}'];"
        else:
            line = f"{tab}function {f}( ${a}, ${b} = null ) {{"
        lines.append(line)
        total += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


def text_content(text: bytes, rng: random.Random, name: str, size: int) -> bytes:
    header = f"<?php\n/**\n * {name} (rev {rng.randint(1, 10**9)})\n */\n".encode()
    start = rng.randrange(0, len(text) - size) if size < len(text) else 0
    return (header + text[start : start + size])[:size]


def lognormal_sizes(
    rng: random.Random, budget: int, median: int, sigma: float, low: int, high: int
) -> list[int]:
    sizes, total = [], 0
    while total < budget:
        size = int(min(high, max(low, rng.lognormvariate(math.log(median), sigma))))
        size = min(size, budget - total) if budget - total >= low else size
        sizes.append(size)
        total += size
    return sizes


def text_dirs(rng: random.Random, count: int, plugins: list[str]) -> list[str]:
    tops = [
        "wp-admin",
        "wp-admin/includes",
        "wp-includes",
        "wp-includes/blocks",
        "wp-content/themes/studio",
    ]
    tops += [f"{COMPONENTS_DIR}/{name}" for name in plugins]
    subs = ["includes", "admin", "assets/js", "assets/css", "src", "lib", "templates", "vendor"]
    dirs = []
    for index in range(count):
        top = rng.choice(tops)
        depth = rng.randint(0, 2)
        parts = [rng.choice(subs) for _ in range(depth)]
        dirs.append("/".join([top, *parts, f"m{index % 97:02d}"]) if depth else top)
    return sorted(set(dirs))


def build_tree(root: Path, size: float, rng: random.Random) -> dict[str, int]:
    total = int(size * GIB)
    text = corpus(rng)
    n_plugins = max(3, int(12 * min(1.0, size * 4)))
    plugins = [f"plugin-{index:02d}" for index in range(n_plugins)]
    for name in plugins:
        plugin = root / COMPONENTS_DIR / name
        plugin.mkdir(parents=True, exist_ok=True)
        (plugin / "VERSION").write_text(f"1.{rng.randint(0, 9)}.{rng.randint(0, 20)}\n")
    counts = {"text": 0, "media": 0, "large": 0}
    text_sizes = lognormal_sizes(rng, int(total * SHARES["text"]), 3 << 10, 1.2, 120, 200 << 10)
    dirs = text_dirs(rng, max(10, len(text_sizes) // 30), plugins)
    for index, length in enumerate(text_sizes):
        ext = rng.choice([".php", ".php", ".php", ".js", ".css", ".json", ".txt"])
        path = root / rng.choice(dirs) / f"file-{index:05d}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text_content(text, rng, path.name, length))
        counts["text"] += 1
    media_sizes = lognormal_sizes(
        rng, int(total * SHARES["media"]), 180 << 10, 0.9, 8 << 10, 6 * MIB
    )
    for index, length in enumerate(media_sizes):
        year, month = rng.randint(2015, 2024), rng.randint(1, 12)
        ext = rng.choice([".jpg", ".jpg", ".jpg", ".png", ".webp", ".pdf", ".zip"])
        path = root / f"wp-content/uploads/{year}/{month:02d}/upload-{index:05d}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(length))
        counts["media"] += 1
    large = int(total * SHARES["large"])
    pieces = max(1, math.ceil(large / LARGE_MAX))
    for index in range(pieces):
        where = "uploads/video" if index % 2 == 0 else "ai1wm-backups"
        ext = ".mp4" if index % 2 == 0 else ".wpress"
        path = root / f"wp-content/{where}/large-{index}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_random(path, large // pieces)
        counts["large"] += 1
    return counts


def write_random(path: Path, length: int) -> None:
    with open(path, "wb") as out:
        while length > 0:
            chunk = min(length, 8 * MIB)
            out.write(os.urandom(chunk))
            length -= chunk


def site_files(root: Path) -> list[Path]:
    """Every regular file of the tree, sorted (component VERSION files left out)."""
    found = []
    for directory, _, names in os.walk(root):
        found += [Path(directory) / name for name in names if name != "VERSION"]
    return sorted(found)


def rewrite_share(root: Path, share: float, round_number: int) -> tuple[int, int]:
    """Rewrite the content of `share` of the files (same sizes): (files, bytes) changed."""
    rng = random.Random(SEED + 1000 + round_number)
    files = site_files(root)
    chosen = rng.sample(files, max(1, round(len(files) * share)))
    text = corpus(random.Random(SEED))
    changed = 0
    for path in chosen:
        length = path.stat().st_size
        if path.suffix in (".php", ".js", ".css", ".json", ".txt"):
            path.write_bytes(text_content(text, rng, path.name, length))
        else:
            write_random(path, length)
        changed += length
    return len(chosen), changed


def tree_stats(root: Path) -> tuple[int, int]:
    files = site_files(root)
    return len(files), sum(path.stat().st_size for path in files)


# -- database ------------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE wp_posts (
  ID BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  post_author BIGINT UNSIGNED NOT NULL, post_date DATETIME NOT NULL,
  post_title TEXT NOT NULL, post_name VARCHAR(200) NOT NULL, post_status VARCHAR(20) NOT NULL,
  post_type VARCHAR(20) NOT NULL, post_content LONGTEXT NOT NULL, guid VARCHAR(255) NOT NULL,
  KEY post_name (post_name(191))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE wp_postmeta (
  meta_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, post_id BIGINT UNSIGNED NOT NULL,
  meta_key VARCHAR(255), meta_value LONGTEXT, KEY post_id (post_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE wp_comments (
  comment_ID BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  comment_post_ID BIGINT UNSIGNED NOT NULL, comment_author TINYTEXT NOT NULL,
  comment_author_email VARCHAR(100) NOT NULL, comment_date DATETIME NOT NULL,
  comment_content TEXT NOT NULL, KEY comment_post_ID (comment_post_ID)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
"""
BYTES_PER_POST = 3000  # of dump output, measured on this generator
BATCH = 400


class Prose:
    """Pseudo-prose: words drawn Zipf-like from a fixed vocabulary, as in real text."""

    def __init__(self, rng: random.Random) -> None:
        letters = "etaoinshrdlucmfwypvbgkjqxz"
        self.rng = rng
        self.words = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(5000)]
        self.weights = [1 / (rank + 1) for rank in range(len(self.words))]

    def __call__(self, low: int, high: int) -> str:
        count = self.rng.randint(low, high)
        return " ".join(self.rng.choices(self.words, self.weights, k=count))

    def date(self) -> str:
        rng = self.rng
        return f"20{rng.randint(15, 24)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} 10:00"


def post_rows(prose: Prose, post: int, posts: int) -> tuple[str, list[str], list[str]]:
    """One post: its wp_posts row, its wp_postmeta rows and its wp_comments rows."""
    rng = prose.rng
    paragraphs = [prose(40, 80) for _ in range(rng.randint(2, 5))]
    content = "".join(f"<!-- wp:paragraph --><p>{p}.</p><!-- /wp:paragraph -->" for p in paragraphs)
    title = prose(3, 9)
    slug = title.replace(" ", "-")[:40]
    date = prose.date()
    post_row = (
        f"({post},{rng.randint(1, 9)},'{date}','{title}','{slug}','publish','post',"
        f"'{content}','https://site.example/?p={post}')"
    )
    size = f'i:{rng.randint(300, 4000)};s:6:"height";i:{rng.randint(300, 3000)}'
    meta = [
        ("_edit_lock", f"{rng.randint(10**9, 2 * 10**9)}:1"),
        ("_thumbnail_id", str(rng.randint(1, posts))),
        ("_wp_attached_file", f"{date[:7].replace('-', '/')}/{slug}.jpg"),
        ("_yoast_wpseo_metadesc", prose(14, 22)),
        ("_wp_attachment_metadata", f'a:3:{{s:5:"width";{size};s:4:"file";"{slug}.jpg";}}'),
    ]
    meta_rows = [f"({post},'{key}','{value}')" for key, value in meta]
    comments = []
    for _ in range(2):
        author = prose(1, 1)
        comments.append(f"({post},'{author}','{author}@mail.example','{date}','{prose(20, 70)}')")
    return post_row, meta_rows, comments


def database_sql(rng: random.Random, posts: int) -> Iterator[str]:
    prose = Prose(rng)
    yield SCHEMA
    for first in range(1, posts + 1, BATCH):
        rows: tuple[list[str], list[str], list[str]] = ([], [], [])
        for post in range(first, min(posts + 1, first + BATCH)):
            post_row, meta_rows, comments = post_rows(prose, post, posts)
            rows[0].append(post_row)
            rows[1].extend(meta_rows)
            rows[2].extend(comments)
        yield "INSERT INTO wp_posts VALUES " + ",".join(rows[0]) + ";\n"
        yield f"INSERT INTO wp_postmeta (post_id,meta_key,meta_value) VALUES {','.join(rows[1])};\n"
        yield (
            "INSERT INTO wp_comments (comment_post_ID,comment_author,comment_author_email,"
            f"comment_date,comment_content) VALUES {','.join(rows[2])};\n"
        )


def load_database(server: mariadb.MariaDbServer, posts: int, rng: random.Random) -> None:
    mariadb.create_database(server, DB_NAME, DB_USER, DB_PASSWORD)
    argv = mariadb.client_argv(server, DB_NAME)
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        proc.stdin.write(b"SET autocommit=0;\n")
        for statement in database_sql(rng, posts):
            proc.stdin.write(statement.encode())
            if statement.startswith("INSERT INTO wp_comments"):
                proc.stdin.write(b"COMMIT;\n")
        proc.stdin.write(b"COMMIT;\n")
        proc.stdin.close()
        error = proc.stderr.read() if proc.stderr else b""
    if proc.returncode != 0:
        raise RuntimeError(f"loading the benchmark database failed: {error.decode()[-2000:]}")


def dump_size(server: mariadb.MariaDbServer) -> int:
    argv = [
        "mysqldump",
        "--no-defaults",
        f"--socket={server.socket}",
        "-uroot",
        "--single-transaction",
        "--hex-blob",
        DB_NAME,
    ]
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        size = 0
        while chunk := proc.stdout.read(MIB):
            size += len(chunk)
    return size


# -- cache ---------------------------------------------------------------------------------------


def generate(cache: SiteCache, log: Callable[[str], None]) -> None:
    """Build the tree and the database under cache.base (replacing a partial one)."""
    shutil.rmtree(cache.base, ignore_errors=True)
    cache.base.mkdir(parents=True)
    cache.base.chmod(0o755)
    rng = random.Random(SEED)
    log(f"generating ~{cache.size:g} GiB of files in {cache.root} ...")
    counts = build_tree(cache.root, cache.size, rng)
    posts = max(200, int(cache.size * DB_BYTES_PER_GIB / BYTES_PER_POST))
    log(f"generating a database of {posts} posts (~{cache.size * 200:.0f} MB dump) ...")
    server = mariadb.start_mariadb(cache.db_base)
    try:
        load_database(server, posts, rng)
        dumped = dump_size(server)
    finally:
        mariadb.stop_mariadb(server)
    files, size = tree_stats(cache.root)
    meta = {"generator": GENERATOR_VERSION, "files": files, "bytes": size, "posts": posts}
    meta |= {f"{kind}_files": count for kind, count in counts.items()} | {"dump_bytes": dumped}
    cache.meta_file.write_text(json.dumps(meta, indent=2) + "\n")
