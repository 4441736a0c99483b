"""The Python stack driver on a real Wagtail site from PyPI, served by gunicorn.

What the conformance suite does not already show: pins read as PyPI packages, a virtualenv that
differs from its pins, what the index says (release times, the wheel's digest, HTML indexes,
Requires-Python, yanked files), pending migrations, what apply does to the requirements file,
the static files and the server, and a refused install that leaves the site as it was.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from harness.wagtail import (
    NEW_MIGRATIONS,
    PINS,
    UPDATE,
    WagtailSite,
    copy_site,
)
from python_stack_support import site_driver, site_environment

from tma_ops.ansible import PlaybookContext
from tma_ops.errors import StackError
from tma_ops.stacks import Change, Component, Update

pytestmark = pytest.mark.integration

CONTEXT = PlaybookContext(journal=None, run_id="run-1", site="wagtail", step="apply_staging")
COMPONENT, TO_VERSION = UPDATE
FROM_VERSION = PINS["wagtail"]


@pytest.fixture
def idle_site(wagtail_template: WagtailSite, tmp_path: Path) -> WagtailSite:
    """A copy of the template site that nothing serves (for reads and refused plans)."""
    return copy_site(wagtail_template, tmp_path / "site")


def planned(component: str, version: str) -> Update:
    return Update(
        component=component,
        from_version=FROM_VERSION,
        to_version=version,
        artifact=f"{component}=={version}",
        kind="package",
        ecosystem="PyPI",
    )


def static_name(site: WagtailSite, path: str) -> str:
    """The hashed name collectstatic gave `path` (ManifestStaticFilesStorage)."""
    manifest = json.loads((site.root / "static" / "staticfiles.json").read_text())
    return str(manifest["paths"][path])


def test_inventory_reads_exact_pins_as_pypi_packages_in_normal_form(idle_site: WagtailSite) -> None:
    text = idle_site.requirements.read_text()
    idle_site.requirements.write_text(f"# the site\n{text}beautifulsoup4>=4.8  # not a pin\n")
    installed = site_driver().inventory(site_environment(idle_site))
    assert installed == [
        Component(name.lower(), version, kind="package", ecosystem="PyPI")
        for name, version in PINS.items()
    ]


def test_a_virtualenv_that_differs_from_its_pins_is_reported_with_both_versions(
    idle_site: WagtailSite,
) -> None:
    idle_site.pip("install", f"{COMPONENT}=={TO_VERSION}")
    env = site_environment(idle_site)
    with pytest.raises(StackError) as caught:
        site_driver().inventory(env)
    message = str(caught.value)
    assert f"requirements.txt:2: pins {COMPONENT}=={FROM_VERSION}" in message
    assert f"has {TO_VERSION}" in message and "\n" not in message
    # The code installed by hand brings migrations the database has not run.
    assert site_driver().pending_migrations(env) == list(NEW_MIGRATIONS)


def test_available_gives_release_time_and_the_digest_of_the_wheel_pip_installs(
    idle_site: WagtailSite, tmp_path: Path
) -> None:
    env = site_environment(idle_site)
    driver = site_driver()
    offered = driver.available(env, driver.inventory(env))
    wagtail = {u.semver_class: u for u in offered if u.component == COMPONENT}
    assert wagtail["patch"].to_version == "6.2.4"  # the last of 6.2
    minor = wagtail["minor"]
    assert (minor.to_version, minor.artifact) == (TO_VERSION, f"wagtail=={TO_VERSION}")
    assert (minor.kind, minor.ecosystem, minor.scheme) == ("package", "PyPI", "pep440")
    assert minor.released == "2025-06-12T14:58:22Z"
    downloads = tmp_path / "downloads"
    idle_site.pip("download", "--no-deps", "-d", str(downloads), minor.artifact)
    (wheel,) = downloads.glob("*.whl")
    assert minor.sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()
    # Django 6 needs Python 3.12 and the site runs on 3.11: its newest major stays 5.x.
    django = [u for u in offered if u.component == "django"]
    assert django and all(u.to_version.startswith("5.") for u in django)
    assert all("rc" not in u.to_version for u in offered)


def test_an_index_that_answers_html_is_read_with_its_digests_and_constraints(
    idle_site: WagtailSite, tmp_path: Path
) -> None:
    files = {
        "wagtail-6.2.9-py3-none-any.whl": 'data-requires-python="&gt;=3.9"',
        "wagtail-6.3.0-py3-none-any.whl": 'data-yanked="broken"',
        "wagtail-6.5.0.tar.gz": "",
        "wagtail-7.0.0-py3-none-any.whl": 'data-requires-python="&gt;=3.99"',
    }
    page = tmp_path / "simple" / "wagtail" / "index.html"
    page.parent.mkdir(parents=True)
    anchors = [
        f'<a href="../../files/{name}#sha256={hashlib.sha256(name.encode()).hexdigest()}" '
        f"{attrs}>{name}</a>"
        for name, attrs in files.items()
    ]
    page.write_text("<html><body>\n" + "\n".join(anchors) + "\n</body></html>\n")
    driver = site_driver(index_url=f"file://{tmp_path / 'simple'}")
    installed = [Component("wagtail", FROM_VERSION, kind="package", ecosystem="PyPI")]
    offered = driver.available(site_environment(idle_site), installed)
    by_version = {u.to_version: u for u in offered}
    assert sorted(by_version) == ["6.2.9", "6.5.0"]  # yanked and Python 3.99 only are left out
    digest = hashlib.sha256(b"wagtail-6.2.9-py3-none-any.whl").hexdigest()
    assert by_version["6.2.9"].sha256 == digest
    assert by_version["6.5.0"].sha256 == ""  # an sdist only: no wheel to name
    assert all(u.released == "" for u in offered)  # HTML says nothing of upload times


def test_an_index_password_stays_out_of_the_error(idle_site: WagtailSite) -> None:
    driver = site_driver(index_url="http://reader:idx-secret-77@127.0.0.1:9/simple")
    installed = [Component("wagtail", FROM_VERSION, kind="package", ecosystem="PyPI")]
    with pytest.raises(StackError) as caught:
        driver.available(site_environment(idle_site), installed)
    assert "idx-secret-77" not in str(caught.value)
    assert "127.0.0.1:9" in str(caught.value)


def test_a_plan_that_cannot_apply_is_refused_before_anything_changes(
    idle_site: WagtailSite,
) -> None:
    env = site_environment(idle_site)
    before = idle_site.requirements.read_bytes()
    refused = {
        "not pinned in the requirements file": planned("pillow", "11.0.0"),
        "is not wagtail==6.4.2": Update(COMPONENT, FROM_VERSION, TO_VERSION, artifact="x==1"),
        "is not a PEP 440 version": planned(COMPONENT, "latest"),
    }
    for reason, update in refused.items():
        with pytest.raises(StackError, match=reason):
            site_driver().apply(env, [update], CONTEXT)
    assert idle_site.requirements.read_bytes() == before


def test_an_interrupted_update_resumes_migrates_collects_static_and_restarts_gracefully(
    wagtail_site: WagtailSite,
) -> None:
    """The state a crash right after writing the pins leaves: the copy of the requirements from
    before, the new pins written, the old packages still installed."""
    env = site_environment(wagtail_site)
    text = wagtail_site.requirements.read_text()
    kept = wagtail_site.root / ".tma-python-before"
    kept.mkdir()
    (kept / "requirements.txt").write_text(text)
    new_text = text.replace(f"wagtail=={FROM_VERSION}", f"wagtail=={TO_VERSION}")
    wagtail_site.requirements.write_text(new_text)
    core_css = static_name(wagtail_site, "wagtailadmin/css/core.css")
    master = (wagtail_site.root / "run" / "gunicorn.pid").read_text().strip()

    applied = site_driver().apply(env, [planned(COMPONENT, TO_VERSION)], CONTEXT)

    assert applied.changes == [Change(COMPONENT, FROM_VERSION, TO_VERSION)]
    assert applied.migrations == list(NEW_MIGRATIONS)
    assert wagtail_site.requirements.read_text() == new_text
    assert static_name(wagtail_site, "wagtailadmin/css/core.css") != core_css
    assert wagtail_site.served_release() == TO_VERSION
    # A HUP restarts the workers, not the server: the master is the same process.
    assert (wagtail_site.root / "run" / "gunicorn.pid").read_text().strip() == master
    assert not kept.exists()


def test_a_failing_migration_names_the_migrations_it_left_and_puts_the_code_back(
    wagtail_site: WagtailSite,
) -> None:
    env = site_environment(wagtail_site)
    before = wagtail_site.requirements.read_bytes()
    installed = site_driver().inventory(env)
    database = sqlite3.connect(wagtail_site.root / "db.sqlite3")
    with database:  # Django remakes a table on SQLite through new__<table>: make that fail
        database.execute("CREATE TABLE new__wagtailimages_image (id integer)")
    with pytest.raises(StackError) as caught:
        site_driver().apply(env, [planned(COMPONENT, TO_VERSION)], CONTEXT)
    message = str(caught.value)
    assert "manage.py migrate exited 1: " in message and "already exists" in message
    assert f"migrations {NEW_MIGRATIONS[0]} ran and stay applied" in message
    assert message.endswith("its code is as it was") and "\n" not in message
    with database:
        ran = database.execute("SELECT app, name FROM django_migrations").fetchall()
    assert tuple(NEW_MIGRATIONS[0].split(".")) in ran
    assert wagtail_site.requirements.read_bytes() == before
    assert site_driver().inventory(env) == installed
    assert wagtail_site.served_release() == FROM_VERSION


def test_a_refused_install_puts_the_requirements_back_and_says_why_in_one_line(
    wagtail_site: WagtailSite,
) -> None:
    env = site_environment(wagtail_site)
    before = wagtail_site.requirements.read_bytes()
    installed = site_driver().inventory(env)
    # Wagtail 6.2 needs Django 4.2 or later: pip's resolver refuses the plan.
    old_django = Update("django", PINS["Django"], "3.2.25", artifact="django==3.2.25")
    with pytest.raises(StackError) as caught:
        site_driver().apply(env, [old_django], CONTEXT)
    message = str(caught.value)
    assert "pip install: Cannot install" in message and "conflicting dependencies" in message
    assert "(wagtail 6.2.3 depends on Django<6.0 and >=4.2)" in message
    assert message.endswith("the site is as it was") and "\n" not in message
    assert wagtail_site.requirements.read_bytes() == before
    assert site_driver().inventory(env) == installed
    assert wagtail_site.served_release() == FROM_VERSION
    assert not (wagtail_site.root / ".tma-python-before").exists()
    assert wagtail_site.server is not None and wagtail_site.server.poll() is None


def test_a_site_that_does_not_come_back_says_what_could_not_be_put_back(
    wagtail_site: WagtailSite,
) -> None:
    env = site_environment(wagtail_site)
    before = wagtail_site.requirements.read_bytes()
    installed = site_driver().inventory(env)
    # This "restart" stops the server for good (gunicorn removes its pidfile as it exits).
    stopping = site_driver(restart='kill -TERM "$(cat run/gunicorn.pid)"', ready_timeout=3)
    with pytest.raises(StackError) as caught:
        stopping.apply(env, [planned(COMPONENT, TO_VERSION)], CONTEXT)
    message = str(caught.value)
    kept = wagtail_site.root / ".tma-python-before"
    assert f"{wagtail_site.url} does not answer 200 within 3 s" in message
    assert f"migrations {', '.join(NEW_MIGRATIONS)} ran and stay applied" in message
    assert "putting the site back failed: restart command exited" in message
    assert message.endswith(f"the requirements from before are in {kept}")
    assert (kept / "requirements.txt").read_bytes() == before
    # What could be put back is: the requirements and the packages they pin.
    assert wagtail_site.requirements.read_bytes() == before
    assert site_driver().inventory(env) == installed
