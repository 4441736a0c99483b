"""Playbooks through ansible-runner against local:// environments: real ansible-playbook runs."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tma_ops import ansible
from tma_ops.ansible import PlaybookFailed, PlaybookResult, inventory_for, run_playbook
from tma_ops.errors import StackError
from tma_ops.journal import Journal
from tma_ops.model import Environment

pytestmark = pytest.mark.integration

COMPONENTS = "wp-content/plugins"
TOKEN = "tok-3f9c1d7e-never-shown"
SUDO_PASSWORD = "Sudo-Pa55-w0rd-never-shown"


def environment(root: Path | str, **executor: Any) -> Environment:
    return Environment.model_validate(
        {
            "executor": {"url": "local://", **executor},
            "root": str(root),
            "database": {"engine": "sqlite", "path": "/srv/site.sqlite"},
            "smoke": [{"url": "http://127.0.0.1/"}],
        }
    )


def plugin(name: str, version: str) -> dict[str, bytes]:
    return {
        f"{name}/VERSION": f"{version}\n".encode(),
        f"{name}/{name}.php": f"<?php // {name} {version}".encode(),
    }


def write_archive(path: Path, members: dict[str, bytes]) -> Path:
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return path
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    for rel, data in {**plugin("forms", "1.0.0"), **plugin("seo", "3.1")}.items():
        (root / COMPONENTS / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / COMPONENTS / rel).write_bytes(data)
    return root


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite") as opened:
        yield opened


def archive_update(
    site: Path, archive: Path, journal: Journal | None = None, sha256: str | None = None
) -> PlaybookResult:
    extravars = {
        "components_dir": str(site / COMPONENTS),
        "component": "forms",
        "archive_path": str(archive),
        "sha256": sha256 or hashlib.sha256(archive.read_bytes()).hexdigest(),
        "to_version": "1.2.0",
        "version_file": "VERSION",
    }
    return run_playbook(
        "archive-update.yml",
        environment(site),
        extravars,
        journal=journal,
        run_id="run-1",
        site="blog",
        step="apply_staging",
        secrets=[],
    )


def leftovers(site: Path) -> list[str]:
    return sorted(p.name for p in (site / COMPONENTS).iterdir() if p.name.startswith(".tma-"))


@pytest.mark.parametrize("ext", ["zip", "tar.gz"])
def test_archive_update_applied_and_journaled(
    site: Path, tmp_path: Path, journal: Journal, ext: str
) -> None:
    archive = write_archive(tmp_path / f"forms-1.2.0.{ext}", plugin("forms", "1.2.0"))
    result = archive_update(site, archive, journal)

    assert (site / COMPONENTS / "forms/VERSION").read_text() == "1.2.0\n"
    assert not (site / COMPONENTS / "forms/forms.php").read_text().endswith("1.0.0")
    assert leftovers(site) == []
    assert result.status == "successful" and result.changed > 0
    events = journal.events(run_id="run-1")
    assert len(events) == len(result.tasks) > 10
    assert {e.status for e in events} == {"ansible-ok", "ansible-skipped"}
    for event in events:
        assert event.step == "apply_staging" and event.site == "blog"
        assert set(event.data) == {"host", "task", "duration_s", "changed", "msg"}
        assert event.data["host"] == "blog" and event.data["duration_s"] >= 0
    by_task = {e.data["task"]: e for e in events}
    assert by_task["Put the new copy live"].data["changed"] is True
    assert by_task["Refuse an archive of another version"].status == "ansible-skipped"


def test_archive_update_rerun_is_a_no_op(site: Path, tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "forms-1.2.0.zip", plugin("forms", "1.2.0"))
    archive_update(site, archive)
    once = tree(site)
    archive.unlink()  # not even read when already at the version
    again = archive_update(site, archive, sha256="0" * 64)
    assert tree(site) == once
    assert again.changed == 0
    statuses = {t.task: t.status for t in again.tasks}
    assert statuses["Copy the archive beside the live component"] == "ansible-skipped"
    assert statuses["Put the new copy live"] == "ansible-skipped"


def test_tampered_archive_changes_nothing(site: Path, tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "forms-1.2.0.zip", plugin("forms", "1.2.0"))
    planned = hashlib.sha256(archive.read_bytes()).hexdigest()
    write_archive(archive, {**plugin("forms", "1.2.0"), "forms/evil.php": b"<?php evil()"})
    before = tree(site)
    with pytest.raises(StackError) as caught:
        archive_update(site, archive, sha256=planned)
    assert str(caught.value) == (
        "playbook archive-update.yml: task 'Refuse an archive that changed since it was "
        f"planned' failed on blog: channel archive {archive} changed since it was planned"
    )
    assert isinstance(caught.value, PlaybookFailed)
    assert tree(site) == before
    assert leftovers(site) == []


@pytest.mark.parametrize(
    ("ext", "evil"), [("zip", "../../../evil.php"), ("tar.gz", "forms/../../evil.php")]
)
def test_zip_slip_refused(site: Path, tmp_path: Path, ext: str, evil: str) -> None:
    archive = write_archive(
        tmp_path / f"forms-1.2.0.{ext}", {**plugin("forms", "1.2.0"), evil: b"pwned"}
    )
    before = tree(site)
    with pytest.raises(StackError, match=f"unsafe member path in archive: {evil}") as caught:
        archive_update(site, archive)
    assert f"task 'Extract forms-1.2.0.{ext}'" in str(caught.value)
    assert tree(site) == before
    assert leftovers(site) == []
    assert not list(tmp_path.rglob("evil.php"))


def test_crash_leftovers_recovered(site: Path, tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "forms-1.2.0.tar.gz", plugin("forms", "1.2.0"))
    components = site / COMPONENTS
    # A crash after `live -> .tma-old-forms`, with a half-extracted copy and a partial upload.
    (components / "forms").rename(components / ".tma-old-forms")
    (components / ".tma-new-forms/forms").mkdir(parents=True)
    (components / ".tma-new-forms/forms/half.php").write_text("partial")
    (components / ".tma-incoming-forms.tar.gz.partial").write_bytes(b"trunc")

    result = archive_update(site, archive)

    assert (components / "forms/VERSION").read_text() == "1.2.0\n"
    assert not (components / "forms/half.php").exists()
    assert leftovers(site) == []
    recovered = next(t for t in result.tasks if t.task.startswith("Put back the copy"))
    assert recovered.status == "ansible-ok" and recovered.changed


SECRET_PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Who runs the tasks
      ansible.builtin.command: id -u
      become: true
      register: who
    - name: Use the token
      ansible.builtin.command: echo {{ api_token }}
      no_log: true
    - name: A careless debug
      ansible.builtin.debug:
        msg: "uid {{ who.stdout }}, token {{ api_token }}"
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("sudo") is None,
    reason="sudo as root needs no password prompt of its own",
)
def test_secrets_stay_out_of_artifacts_journal_and_logs(
    tmp_path: Path,
    journal: Journal,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    playbook = tmp_path / "secret.yml"
    playbook.write_text(SECRET_PLAYBOOK)
    env = environment(tmp_path, sudo=True, sudo_password=SUDO_PASSWORD)
    kept = tmp_path / "artifacts"

    result = run_playbook(
        str(playbook),
        env,
        {"api_token": TOKEN},
        journal=journal,
        run_id="run-s",
        site="blog",
        step="apply_staging",
        secrets=[],
        keep_artifacts=kept,
    )
    journal.close()

    tasks = {t.task: t for t in result.tasks}
    assert tasks["Use the token"].msg == "output hidden (no_log)"
    assert tasks["Use the token"].changed
    assert tasks["A careless debug"].msg == "uid 0, token ***"  # become worked, token masked
    assert "--ask-become-pass" in (kept / "command").read_text()
    assert (kept / "stdout").is_file() and list((kept / "job_events").iterdir())
    out, err = capfd.readouterr()
    places = {str(p): p.read_bytes() for p in kept.rglob("*") if p.is_file()}
    places |= {str(p): p.read_bytes() for p in tmp_path.glob("journal.sqlite*")}
    places |= {"logs": caplog.text.encode(), "stdout": out.encode(), "stderr": err.encode()}
    for secret in (TOKEN, SUDO_PASSWORD):
        assert [where for where, data in places.items() if secret.encode() in data] == []


def test_failing_playbook_raises_one_line(tmp_path: Path, journal: Journal) -> None:
    playbook = tmp_path / "broken.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Break on purpose\n"
        '      ansible.builtin.fail:\n        msg: "first line\\nsecond line {{ db_password }}"\n'
    )
    with pytest.raises(StackError) as caught:
        run_playbook(
            str(playbook),
            environment(tmp_path),
            {"db_password": "hunter2-hunter2"},
            journal=journal,
            run_id="run-f",
            site="blog",
            step="apply_staging",
            secrets=[],
        )
    assert str(caught.value) == (
        "playbook broken.yml: task 'Break on purpose' failed on blog: first line second line ***"
    )
    assert [e.status for e in journal.events(run_id="run-f")] == ["ansible-failed"]


def test_playbook_syntax_error_is_one_line(tmp_path: Path) -> None:
    playbook = tmp_path / "bad.yml"
    playbook.write_text("- hosts: all\n  tasks:\n    - name: x\n      no.such.module: {}\n")
    with pytest.raises(StackError, match=r"^playbook bad\.yml: failed: .*\(rc \d+\)$") as caught:
        run_playbook(
            str(playbook),
            environment(tmp_path),
            {},
            journal=None,
            run_id="r",
            site="blog",
            step="apply_staging",
            secrets=[],
        )
    assert "\n" not in str(caught.value)


def test_runs_without_the_venv_on_path(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # ansible-playbook is only in the venv's bin/
    archive = write_archive(tmp_path / "forms-1.2.0.zip", plugin("forms", "1.2.0"))
    assert archive_update(site, archive).status == "successful"


def test_unknown_playbook_is_named(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"playbook no-such\.yml: not found"):
        run_playbook(
            "no-such.yml",
            environment(tmp_path),
            {},
            journal=None,
            run_id="r",
            site="blog",
            step="apply_staging",
            secrets=[],
        )


def test_inventory_local_uses_this_interpreter(tmp_path: Path) -> None:
    host = inventory_for(environment(tmp_path), "blog-staging")["all"]["hosts"]["blog-staging"]
    assert host == {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


@pytest.mark.parametrize(
    ("policy", "known_hosts", "args", "checking"),
    [
        (
            "strict",
            "/etc/tma/known_hosts",
            ["StrictHostKeyChecking=yes", "UserKnownHostsFile="],
            True,
        ),
        ("accept-new", None, ["StrictHostKeyChecking=accept-new"], True),
        ("off", None, ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"], False),
    ],
)
def test_inventory_ssh(
    policy: str, known_hosts: str | None, args: list[str], checking: bool
) -> None:
    env = environment(
        "/srv/www",
        url="ssh://deploy@web1.example.net:2222",
        identity_file="/etc/tma/id_ed25519",
        known_hosts=known_hosts,
        host_key_policy=policy,
        sudo=True,
        sudo_password=SUDO_PASSWORD,
    )
    inventory = inventory_for(env, "blog-production")
    host = inventory["all"]["hosts"]["blog-production"]
    assert host["ansible_connection"] == "ssh"
    assert (host["ansible_host"], host["ansible_port"], host["ansible_user"]) == (
        "web1.example.net",
        2222,
        "deploy",
    )
    assert host["ansible_ssh_private_key_file"] == "/etc/tma/id_ed25519"
    assert host["ansible_host_key_checking"] is checking
    assert all(arg in host["ansible_ssh_common_args"] for arg in args)
    assert host["ansible_become"] is True
    assert SUDO_PASSWORD not in repr(inventory)


def test_inventory_docker_and_missing_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment("/srv/www", url="docker://www-data@Site_Web", docker_host="tcp://d:2375")
    host = inventory_for(env, "blog")["all"]["hosts"]["blog"]
    assert host == {
        "ansible_connection": "community.docker.docker",
        "ansible_host": "Site_Web",
        "ansible_user": "www-data",
        "ansible_docker_extra_args": "-H tcp://d:2375",
    }
    monkeypatch.setattr(ansible, "_collection_installed", lambda namespace, name: False)
    with pytest.raises(StackError, match=r"need the community\.docker Ansible collection"):
        run_playbook(
            "archive-update.yml",
            env,
            {},
            journal=None,
            run_id="r",
            site="blog",
            step="apply_staging",
            secrets=[],
        )
