"""Real WordPress sites for tests: Debian's WordPress, PHP and a private MariaDB.

A site is a directory holding `www/` (the docroot: a copy of /usr/share/wordpress with a plain
wp-config.php) and `site-config.php` beside it (database settings, WP_HOME and WP_SITEURL), which
wp-config.php reads. The settings live outside the docroot, so a copy of one site's files
restored into another keeps the other's database and address. `php -S` serves a site.

One MariaDB server and one installed template site (the marker plugin 1.0.0 active, the plain
theme 1.0.0 active) are built once per test session (`session_lab`); each test copies the
template (`WordPressLab.new_site`): files with `cp -a`, the database with a dump.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import mariadb

WORDPRESS_SOURCE = Path("/usr/share/wordpress")
PHP = "/usr/bin/php"
DB_USER = "wordpress"
DB_PASSWORD = "wp-secret-4c1d"  # a test password: it must never show in logs or errors
ADMIN_PASSWORD = "admin-secret-88f2"
MARKER_PLUGIN = "tma-marker"
PLAIN_THEME = "tma-plain"
TITLE = "Atelier Lumière"

WP_CONFIG = """<?php
// Database settings and the site's address live outside the docroot.
require dirname( __DIR__ ) . '/site-config.php';
$table_prefix = 'wp_';
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';
"""

SITE_CONFIG = """<?php
define( 'DB_NAME', {name} );
define( 'DB_USER', {user} );
define( 'DB_PASSWORD', {password} );
define( 'DB_HOST', {host} );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
define( 'WP_HOME', {url} );
define( 'WP_SITEURL', {url} );
define( 'WP_DEBUG', false );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'DISABLE_WP_CRON', true );
"""

INSTALL_SCRIPT = """<?php
define( 'WP_INSTALLING', true );
$_SERVER += array( 'HTTP_HOST' => 'localhost', 'REQUEST_URI' => '/', 'REQUEST_METHOD' => 'GET' );
require $argv[1] . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
wp_install( $argv[2], 'admin', 'admin@example.invalid', false, '', $argv[3] );
$activated = activate_plugin( $argv[4] );
if ( is_wp_error( $activated ) ) {
	fwrite( fopen( 'php://stderr', 'w' ), $activated->get_error_message() . "\\n" );
	exit( 1 );
}
switch_theme( $argv[5] );
echo "installed\\n";
"""

MARKER_CODE = """
add_action( 'wp_head', function () {
	echo '<meta name="tma-marker" content="' . TMA_MARKER_VERSION . '">';
} );
"""
# Version 2 of the marker plugin calls a function that does not exist: a fatal error at load.
FATAL_CODE = "tma_marker_helper_removed_in_this_release();\n"

THEME_INDEX = """<!DOCTYPE html>
<html><head><title><?php bloginfo( 'name' ); ?></title><?php wp_head(); ?></head>
<body><h1><?php bloginfo( 'name' ); ?></h1>
<p class="theme">tma-plain <?php echo wp_get_theme()->get( 'Version' ); ?></p>
<?php wp_footer(); ?></body></html>
"""


def missing_requirements() -> str | None:
    """Why this machine cannot build WordPress sites, or None when it can."""
    reason = mariadb.missing_requirements()
    if reason:
        return reason
    if not (WORDPRESS_SOURCE / "wp-load.php").is_file():
        return f"WordPress not found at {WORDPRESS_SOURCE} (apt-get install wordpress)"
    if not os.access(PHP, os.X_OK):
        return f"{PHP} not found (apt-get install php-cli php-mysql php-zip)"
    modules = subprocess.run([PHP, "-m"], capture_output=True, text=True, check=False).stdout
    missing = [m for m in ("mysqli", "zip") if m not in modules.split()]
    if missing:
        return f"PHP modules missing: {', '.join(missing)} (apt-get install php-mysql php-zip)"
    return None


# --- component archives -------------------------------------------------------------------------


def marker_plugin_files(version: str, fatal: bool = False) -> dict[str, str]:
    header = f"<?php\n/*\nPlugin Name: TMA Marker\nVersion: {version}\n*/\n"
    code = f"define( 'TMA_MARKER_VERSION', '{version}' );\n{MARKER_CODE}"
    return {f"{MARKER_PLUGIN}/{MARKER_PLUGIN}.php": header + (FATAL_CODE if fatal else "") + code}


def plain_theme_files(version: str) -> dict[str, str]:
    style = f"/*\nTheme Name: TMA Plain\nVersion: {version}\n*/\n"
    return {f"{PLAIN_THEME}/style.css": style, f"{PLAIN_THEME}/index.php": THEME_INDEX}


def write_zip(path: Path, files: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def core_zip(path: Path, version: str, db_version: int) -> Path:
    """`wordpress-<version>.zip` made from Debian's WordPress, its version.php saying `version`
    and `db_version` (this machine reaches no WordPress release)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    version_php = (WORDPRESS_SOURCE / "wp-includes/version.php").read_text()
    version_php = re.sub(r"\$wp_version = '[^']*'", f"$wp_version = '{version}'", version_php)
    version_php = re.sub(r"\$wp_db_version = \d+", f"$wp_db_version = {db_version}", version_php)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for source in sorted(WORDPRESS_SOURCE.rglob("*")):
            rel = source.relative_to(WORDPRESS_SOURCE)
            if rel.parts[0] in ("wp-content", "wp-config.php", ".htaccess") or source.is_dir():
                continue
            name = f"wordpress/{rel}"
            if rel.as_posix() == "wp-includes/version.php":
                archive.writestr(name, version_php)
            else:
                archive.write(source.resolve(), name)
    return path


def core_versions(root: Path) -> tuple[str, int]:
    text = (root / "wp-includes/version.php").read_text()
    version = re.search(r"\$wp_version = '([^']*)'", text)
    db_version = re.search(r"\$wp_db_version = (\d+)", text)
    assert version and db_version
    return version.group(1), int(db_version.group(1))


# --- sites ---------------------------------------------------------------------------------------


@dataclass
class WordPressSite:
    base: Path
    database: str
    server: mariadb.MariaDbServer
    port: int  # where `serve` listens
    process: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        return self.base / "www"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        (self.root / "wp-config.php").write_text(WP_CONFIG)
        values = {
            "name": self.database,
            "user": DB_USER,
            "password": DB_PASSWORD,
            "host": f"127.0.0.1:{self.server.port}",
            "url": self.url,
        }
        quoted = {
            k: "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for k, v in values.items()
        }
        (self.base / "site-config.php").write_text(SITE_CONFIG.format(**quoted))

    def sql(self, statement: str) -> str:
        return mariadb.run_sql(self.server, statement, database=self.database)

    def option(self, name: str) -> str:
        escaped = name.replace("'", "''")
        return self.sql(f"SELECT option_value FROM wp_options WHERE option_name = '{escaped}'")

    def serve(self, ini: dict[str, str] | None = None) -> None:
        """Serve the site with `php -S` until `stop`; `ini`: PHP settings (`-d name=value`),
        e.g. {"error_log": path, "log_errors": "1"}."""
        log = open(self.base / "php-server.log", "ab")  # noqa: SIM115 - kept by the process
        settings = [f"-d{name}={value}" for name, value in (ini or {}).items()]
        self.process = subprocess.Popen(
            [PHP, *settings, "-S", f"127.0.0.1:{self.port}", "-t", str(self.root)],
            cwd=self.base,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"php -S exited {self.process.returncode}")
            with contextlib.suppress(OSError):
                fetch(self.url + "/wp-includes/images/blank.gif", timeout=1)
                return
            time.sleep(0.1)
        raise RuntimeError(f"php -S on port {self.port} not ready after 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def page(self) -> tuple[int, str]:
        return fetch(self.url + "/")

    def marker(self) -> str:
        """What the front page says of the marker plugin: its version, or the HTTP status."""
        status, body = self.page()
        found = re.search(r'<meta name="tma-marker" content="([^"]*)">', body)
        return found.group(1) if status == 200 and found else f"HTTP {status} without marker"


def fetch(url: str, timeout: float = 30) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode("utf-8", errors="replace")


def install_wordpress(site: WordPressSite) -> None:
    """Copy Debian's WordPress into the site, install it, activate the marker plugin and theme."""
    shutil.copytree(WORDPRESS_SOURCE, site.root, symlinks=False)
    (site.root / ".htaccess").unlink(missing_ok=True)
    site.write_config()
    write_files(site.root / "wp-content/plugins", marker_plugin_files("1.0.0"))
    write_files(site.root / "wp-content/themes", plain_theme_files("1.0.0"))
    mariadb.create_database(site.server, site.database, DB_USER, DB_PASSWORD)
    script = site.base / "install.php"
    script.write_text(INSTALL_SCRIPT)
    argv = [PHP, str(script), str(site.root), TITLE, ADMIN_PASSWORD]
    argv += [f"{MARKER_PLUGIN}/{MARKER_PLUGIN}.php", PLAIN_THEME]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    script.unlink()
    if proc.returncode != 0 or "installed" not in proc.stdout:
        raise RuntimeError(f"wp_install failed: {(proc.stdout + proc.stderr)[-2000:]}")


@dataclass
class WordPressLab:
    """One MariaDB server and an installed template site, shared by a test session."""

    base: Path
    server: mariadb.MariaDbServer
    template: WordPressSite
    sites: list[WordPressSite] = field(default_factory=list)
    _count: int = 0

    def new_site(self, base: Path) -> WordPressSite:
        """A copy of the template in `base` (created) with a database of its own."""
        self._count += 1
        name = f"wp_site_{self._count}"
        site = WordPressSite(base, name, self.server, mariadb.free_port("127.0.0.1"))
        base.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", str(self.template.root), str(site.root)], check=True)
        site.write_config()
        mariadb.create_database(self.server, name, DB_USER, DB_PASSWORD)
        dump = subprocess.run(
            [*_root_client(self.server, "mariadb-dump"), self.template.database],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(
            [*_root_client(self.server, "mariadb"), name],
            input=dump,
            capture_output=True,
            check=True,
        )
        self.sites.append(site)
        return site

    def close(self) -> None:
        for site in [*self.sites, self.template]:
            site.stop()
        mariadb.stop_mariadb(self.server)
        shutil.rmtree(self.server.datadir.parent, ignore_errors=True)
        shutil.rmtree(self.base, ignore_errors=True)


def _root_client(server: mariadb.MariaDbServer, program: str) -> list[str]:
    return [program, "--no-defaults", f"--socket={server.socket}", "-uroot"]


def start_lab() -> WordPressLab:
    base = Path(tempfile.mkdtemp(prefix="tma-wordpress-"))
    # under /tmp, given to the mysql user by start_mariadb
    server = mariadb.start_mariadb(Path(tempfile.mkdtemp(prefix="tma-wordpress-db-")))
    try:
        template = WordPressSite(
            base / "template", "wp_template", server, mariadb.free_port("127.0.0.1")
        )
        template.base.mkdir()
        install_wordpress(template)
        return WordPressLab(base, server, template)
    except BaseException:
        mariadb.stop_mariadb(server)
        shutil.rmtree(server.datadir.parent, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
        raise


_LAB: list[WordPressLab] = []  # one per session, however many test modules ask


def session_lab(request: pytest.FixtureRequest) -> WordPressLab:
    """The session's lab, started on first use (skips with the reason when it cannot run)."""
    if not _LAB:
        reason = missing_requirements()
        if reason:
            pytest.skip(reason)
        _LAB.append(start_lab())

        def close() -> None:
            _LAB.pop().close()

        request.session.addfinalizer(close)
    return _LAB[0]
