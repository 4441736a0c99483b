"""The wordpress stack driver on a real WordPress (Debian's package, PHP 8.2, MariaDB, php -S)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.wordpress import (
    DB_PASSWORD,
    MARKER_PLUGIN,
    PLAIN_THEME,
    WordPressLab,
    core_versions,
    core_zip,
    marker_plugin_files,
    plain_theme_files,
    session_lab,
    write_zip,
)
from wordpress_stack_support import WordPressCase, served_case

from tma_ops.ansible import PlaybookContext
from tma_ops.errors import IntegrityError, StackError
from tma_ops.journal import Journal
from tma_ops.model import Environment
from tma_ops.stacks import Component, Update
from tma_ops.stacks.wordpress import WordPressDriver, site_state

pytestmark = pytest.mark.integration

CONTEXT = PlaybookContext(journal=None, run_id="run-1", site="site", step="apply_staging")
CRITICAL = "There has been a critical error on this website."


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> WordPressLab:
    return session_lab(request)


@pytest.fixture
def wp(lab: WordPressLab, tmp_path: Path) -> Iterator[WordPressCase]:
    with served_case(lab, tmp_path) as case:
        yield case


def plugins_dir(case: WordPressCase) -> Path:
    return case.site.root / "wp-content/plugins"


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def leftovers(case: WordPressCase) -> list[str]:
    return sorted(str(p) for p in case.site.root.rglob(".tma-*"))


def offered(case: WordPressCase, component: str, to_version: str) -> Update:
    updates = case.driver.available(case.env, case.driver.inventory(case.env))
    return next(u for u in updates if (u.component, u.to_version) == (component, to_version))


def marker_update(case: WordPressCase, version: str, fatal: bool = False) -> Update:
    write_zip(case.channel / f"{MARKER_PLUGIN}-{version}.zip", marker_plugin_files(version, fatal))
    return offered(case, MARKER_PLUGIN, version)


def active_plugins(case: WordPressCase) -> str:
    return case.site.option("active_plugins")


def test_inventory_reads_core_plugins_and_themes_from_wordpress(wp: WordPressCase) -> None:
    version, _ = core_versions(wp.site.root)
    inventory = wp.driver.inventory(wp.env)
    assert inventory[0] == Component("wordpress", version, "core", "WordPress")
    by_name = {c.name: c for c in inventory}
    assert by_name[MARKER_PLUGIN] == Component(MARKER_PLUGIN, "1.0.0", "plugin", "WordPress")
    assert by_name[PLAIN_THEME] == Component(PLAIN_THEME, "1.0.0", "theme", "WordPress")
    assert by_name["akismet"].kind == "plugin"  # Debian's bundled plugin, inactive
    assert wp.driver.pending_migrations(wp.env) == []


def test_available_offers_the_newest_version_of_each_class(wp: WordPressCase) -> None:
    for version in ("1.0.1", "1.2.0", "1.3.0", "3.0.0b1"):
        write_zip(wp.channel / f"{MARKER_PLUGIN}-{version}.zip", marker_plugin_files(version))
    write_zip(wp.channel / f"{PLAIN_THEME}-1.1.0.zip", plain_theme_files("1.1.0"))
    (wp.channel / f"{MARKER_PLUGIN}-9.0.0.tar.gz").write_bytes(b"not a zip channel file")
    (wp.channel / "wordpress-6.1.99.zip").write_bytes(b"core archive stand-in")
    (wp.channel / "wordpress-6.2.0.zip").write_bytes(b"core archive stand-in")
    updates = wp.driver.available(wp.env, wp.driver.inventory(wp.env))
    plan = {(u.component, u.to_version): u for u in updates}
    assert sorted(plan) == [
        (MARKER_PLUGIN, "1.0.1"),
        (MARKER_PLUGIN, "1.3.0"),
        (MARKER_PLUGIN, "2.0.0"),
        (PLAIN_THEME, "1.1.0"),
        ("wordpress", "6.1.99"),
        ("wordpress", "6.2.0"),
    ]
    marker = plan[(MARKER_PLUGIN, "1.3.0")]
    digest = hashlib.sha256((wp.channel / f"{MARKER_PLUGIN}-1.3.0.zip").read_bytes()).hexdigest()
    assert (marker.semver_class, marker.kind, marker.scheme, marker.ecosystem) == (
        "minor",
        "plugin",
        "pep440",
        "WordPress",
    )
    assert (marker.artifact, marker.sha256) == (f"{MARKER_PLUGIN}-1.3.0.zip", digest)
    assert plan[("wordpress", "6.1.99")].semver_class == "patch"  # WordPress's own scheme
    assert plan[("wordpress", "6.2.0")].semver_class == "major"
    assert plan[(PLAIN_THEME, "1.1.0")].kind == "theme"


def test_a_plugin_update_keeps_it_active_and_leaves_nothing_behind(
    wp: WordPressCase, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    context = dataclasses.replace(CONTEXT, journal=journal, keep_artifacts=tmp_path / "artifacts")
    active = active_plugins(wp)
    applied = wp.driver.apply(wp.env, [offered(wp, MARKER_PLUGIN, "2.0.0")], context)
    assert [(c.component, c.before, c.after) for c in applied.changes] == [
        (MARKER_PLUGIN, "1.0.0", "2.0.0")
    ]
    assert applied.migrations == []
    assert active_plugins(wp) == active
    assert wp.site.marker() == "2.0.0"
    assert leftovers(wp) == []
    assert not list(wp.site.root.rglob("*.zip"))  # the archive never sat in the docroot
    events = journal.events(site="site")
    installs = [e for e in events if e.data.get("task") == "Install with WordPress's upgrader"]
    assert [(e.status, e.data["changed"]) for e in installs] == [("ansible-ok", True)]
    tasks = [json.dumps(e.data) for e in events]
    artifacts = [p for p in context.keep_artifacts.rglob("*") if p.is_file()]
    kept = "".join(p.read_text(errors="replace") for p in artifacts)
    assert DB_PASSWORD not in kept and DB_PASSWORD not in "".join(tasks)


def test_a_theme_update_is_served(wp: WordPressCase) -> None:
    write_zip(wp.channel / f"{PLAIN_THEME}-1.1.0.zip", plain_theme_files("1.1.0"))
    wp.driver.apply(wp.env, [offered(wp, PLAIN_THEME, "1.1.0")], CONTEXT)
    assert "tma-plain 1.1.0" in wp.site.page()[1]
    assert wp.site.option("stylesheet").strip() == PLAIN_THEME


def test_a_core_update_runs_the_database_upgrade(wp: WordPressCase) -> None:
    version, db_version = core_versions(wp.site.root)
    new_version = version + ".1"
    core_zip(wp.channel / f"wordpress-{new_version}.zip", new_version, db_version + 1)
    update = offered(wp, "wordpress", new_version)
    applied = wp.driver.apply(wp.env, [update], CONTEXT)
    assert core_versions(wp.site.root) == (new_version, db_version + 1)
    assert wp.site.option("db_version").strip() == str(db_version + 1)
    assert applied.migrations == [
        f"WordPress database upgrade: db_version {db_version} -> {db_version + 1}"
    ]
    assert wp.driver.pending_migrations(wp.env) == []
    assert wp.site.marker() == "1.0.0"
    assert leftovers(wp) == [] and not (wp.site.root / ".maintenance").exists()


def test_a_core_release_that_is_not_the_planned_one_is_put_back(wp: WordPressCase) -> None:
    version, db_version = core_versions(wp.site.root)
    planned, inside = version + ".2", version + ".3"
    core_zip(wp.channel / f"wordpress-{planned}.zip", inside, db_version + 1)
    before = tree(wp.site.root)
    with pytest.raises(StackError, match=f"holds wordpress {inside}, expected {planned}"):
        wp.driver.apply(wp.env, [offered(wp, "wordpress", planned)], CONTEXT)
    assert tree(wp.site.root) == before
    assert wp.site.option("db_version").strip() == str(db_version)
    assert wp.site.marker() == "1.0.0"


def test_pending_migrations_names_a_database_behind_the_code(wp: WordPressCase) -> None:
    _, db_version = core_versions(wp.site.root)
    wp.site.sql(
        f"UPDATE wp_options SET option_value = '{db_version - 1}' WHERE option_name = 'db_version'"
    )
    assert wp.driver.pending_migrations(wp.env) == [
        f"WordPress database upgrade: db_version {db_version - 1} -> {db_version}"
    ]


def test_a_plugin_that_fatals_at_load_is_installed_and_the_site_answers_500(
    wp: WordPressCase,
) -> None:
    """The upgrader survives (WP_INSTALLING); catching the breakage is the smoke test's job."""
    applied = wp.driver.apply(wp.env, [marker_update(wp, "3.0.0", fatal=True)], CONTEXT)
    assert [c.after for c in applied.changes] == ["3.0.0"]
    status, body = wp.site.page()
    assert status == 500 and CRITICAL in body
    assert {c.name: c.version for c in wp.driver.inventory(wp.env)}[MARKER_PLUGIN] == "3.0.0"


def test_a_refused_install_puts_the_plugin_back_with_the_upgraders_reason(
    wp: WordPressCase,
) -> None:
    files = marker_plugin_files("2.1.0")
    name = f"{MARKER_PLUGIN}/{MARKER_PLUGIN}.php"
    files[name] = files[name].replace("Version: 2.1.0", "Version: 2.1.0\nRequires PHP: 99.0")
    write_zip(wp.channel / f"{MARKER_PLUGIN}-2.1.0.zip", files)
    before = tree(wp.site.root)
    with pytest.raises(StackError) as failure:
        wp.driver.apply(wp.env, [offered(wp, MARKER_PLUGIN, "2.1.0")], CONTEXT)
    message = str(failure.value)
    assert "requires 99.0" in message and "1.0.0 was put back" in message
    assert "\n" not in message
    assert tree(wp.site.root) == before
    assert wp.site.marker() == "1.0.0"


def test_an_archive_of_another_folder_is_refused_before_anything_changes(
    wp: WordPressCase,
) -> None:
    write_zip(wp.channel / f"{MARKER_PLUGIN}-2.2.0.zip", {"other-plugin/other.php": "<?php"})
    before = tree(wp.site.root)
    with pytest.raises(StackError, match="expected one top-level folder 'tma-marker/'"):
        wp.driver.apply(wp.env, [offered(wp, MARKER_PLUGIN, "2.2.0")], CONTEXT)
    assert tree(wp.site.root) == before


def test_an_archive_changed_since_the_plan_is_refused(wp: WordPressCase) -> None:
    update = offered(wp, MARKER_PLUGIN, "2.0.0")
    write_zip(wp.channel / update.artifact, marker_plugin_files("2.0.0", fatal=True))
    before = tree(wp.site.root)
    with pytest.raises(IntegrityError, match="changed since it was planned"):
        wp.driver.apply(wp.env, [update], CONTEXT)
    assert tree(wp.site.root) == before


def test_a_failure_names_the_updates_left_applied(wp: WordPressCase) -> None:
    write_zip(wp.channel / f"{PLAIN_THEME}-1.1.0.zip", plain_theme_files("1.1.0"))
    theme = offered(wp, PLAIN_THEME, "1.1.0")
    missing = dataclasses.replace(offered(wp, MARKER_PLUGIN, "2.0.0"), to_version="2.9.0")
    with pytest.raises(StackError, match=r"left in place: tma-plain 1\.0\.0 -> 1\.1\.0"):
        wp.driver.apply(wp.env, [theme, missing], CONTEXT)
    assert wp.site.marker() == "1.0.0"


def test_an_interrupted_install_is_put_back_then_done(wp: WordPressCase) -> None:
    """A run killed mid-copy leaves the kept copy and a half-written plugin reading 2.0.0."""
    update = offered(wp, MARKER_PLUGIN, "2.0.0")
    live = plugins_dir(wp) / MARKER_PLUGIN
    (plugins_dir(wp) / f".tma-old-{MARKER_PLUGIN}").mkdir()
    for path in live.iterdir():
        (plugins_dir(wp) / f".tma-old-{MARKER_PLUGIN}" / path.name).write_bytes(path.read_bytes())
    (live / f"{MARKER_PLUGIN}.php").write_text(
        "<?php\n/*\nPlugin Name: TMA Marker\nVersion: 2.0.0\n"
    )
    applied = wp.driver.apply(wp.env, [update], CONTEXT)
    assert [(c.before, c.after) for c in applied.changes] == []  # it read 2.0.0 before, too
    assert wp.site.marker() == "2.0.0"
    assert leftovers(wp) == []


def test_applying_runs_the_reload_command_in_the_root(wp: WordPressCase, tmp_path: Path) -> None:
    proof = tmp_path / "reloaded"
    driver = WordPressDriver(wp.channel, reload=f"pwd > {proof}")
    driver.apply(wp.env, [offered(wp, MARKER_PLUGIN, "2.0.0")], CONTEXT)
    assert proof.read_text().strip() == str(wp.site.root)


def test_a_site_the_helper_cannot_read_gives_one_line(wp: WordPressCase, tmp_path: Path) -> None:
    elsewhere = Environment.model_validate(
        wp.env.model_dump() | {"root": str(tmp_path / "not-wordpress")}
    )
    with pytest.raises(StackError, match="not a WordPress root"):
        wp.driver.inventory(elsewhere)
    config = wp.site.base / "site-config.php"
    config.write_text(config.read_text().replace(str(wp.site.server.port), "1"))
    with pytest.raises(StackError) as failure:
        wp.driver.inventory(wp.env)
    assert "database connection" in str(failure.value)
    assert "\n" not in str(failure.value) and DB_PASSWORD not in str(failure.value)


def test_a_plugin_and_a_theme_of_one_name_are_refused() -> None:
    answer = {
        "core": {"version": "6.1.9", "db_version": 53496, "stored_db_version": 53496},
        "plugins": [{"slug": "astra", "version": "1.0", "active": True}],
        "themes": [{"slug": "astra", "version": "2.0"}],
        "interrupted": [],
        "opcache": {"enable": True, "validate_timestamps": True, "revalidate_freq": 2},
    }
    with pytest.raises(StackError, match="the theme 'astra' has the name of a plugin"):
        site_state(answer, "/srv/www")
