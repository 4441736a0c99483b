from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from tma_ops.ansible import PlaybookContext
from tma_ops.errors import IntegrityError, StackError
from tma_ops.executors.local import LocalExecutor
from tma_ops.model import Environment
from tma_ops.stacks import Component, Update
from tma_ops.stacks.archive import ArchiveStack

pytestmark = pytest.mark.integration

PLUGINS = "wp-content/plugins"
CONTEXT = PlaybookContext(journal=None, run_id="run-1", site="site", step="apply_staging")


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def write_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return path


def plugin(name: str, version: str, body: str = "") -> dict[str, bytes]:
    return {
        f"{name}/VERSION": f"{version}\nbuilt by the vendor\n".encode(),
        f"{name}/{name}.php": (body or f"<?php // {name} {version}").encode(),
        f"{name}/assets/app-{version}.js": b"console.log(1)",
    }


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    for name, version in [("forms", "1.0.0"), ("seo", "3.1"), ("shop", "2.4.1")]:
        for rel, data in plugin(name, version).items():
            (root / PLUGINS / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / PLUGINS / rel).write_bytes(data)
    (root / PLUGINS / "index.php").write_text("<?php // silence")
    (root / "wp-config.php").write_text("<?php // config")
    return root


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    path = tmp_path / "channel"
    path.mkdir()
    write_zip(path / "forms-1.0.0.zip", plugin("forms", "1.0.0"))
    write_zip(path / "forms-1.0.1.zip", plugin("forms", "1.0.1"))
    write_zip(path / "forms-1.2.0.zip", plugin("forms", "1.2.0", "<?php // forms new"))
    write_tar(path / "shop-3.0.0.tar.gz", plugin("shop", "3.0.0", "<?php // shop new"))
    write_zip(path / "shop-2.4.0.zip", plugin("shop", "2.4.0"))
    (path / "seo-latest.zip").write_bytes(b"not a version")
    (path / "README.txt").write_text("channel")
    return path


@pytest.fixture
def stack(channel: Path) -> ArchiveStack:
    return ArchiveStack(channel, PLUGINS)


@pytest.fixture
def executor() -> LocalExecutor:
    return LocalExecutor()


def update_to(stack: ArchiveStack, executor: LocalExecutor, site: Path, name: str) -> Update:
    available = stack.available(environment(site), stack.inventory_at(executor, str(site)))
    return next(u for u in available if u.component == name)


def environment(site: Path) -> Environment:
    return Environment.model_validate(
        {
            "executor": "local://",
            "root": str(site),
            "database": {"engine": "sqlite", "path": str(site / "site.sqlite")},
            "smoke": [{"url": "http://127.0.0.1/"}],
        }
    )


def plugins_dir(site: Path) -> Path:
    return site / PLUGINS


def leftovers(site: Path) -> list[str]:
    return sorted(p.name for p in plugins_dir(site).iterdir() if p.name.startswith(".tma-"))


def test_inventory_lists_components_sorted(
    stack: ArchiveStack, executor: LocalExecutor, site: Path
) -> None:
    (plugins_dir(site) / ".tma-new-forms").mkdir()  # leftovers are not components
    assert stack.inventory_at(executor, str(site)) == [
        Component("forms", "1.0.0"),
        Component("seo", "3.1"),
        Component("shop", "2.4.1"),
    ]


def test_inventory_names_missing_version_file(
    stack: ArchiveStack, executor: LocalExecutor, site: Path
) -> None:
    (plugins_dir(site) / "seo" / "VERSION").unlink()
    with pytest.raises(StackError, match=r"wp-content/plugins/seo/VERSION: version file missing"):
        stack.inventory_at(executor, str(site))


def test_inventory_without_components_dir(
    stack: ArchiveStack, executor: LocalExecutor, tmp_path: Path
) -> None:
    with pytest.raises(StackError, match="components directory not found"):
        stack.inventory_at(executor, str(tmp_path / "nowhere"))


def test_available_picks_newest_per_component(
    stack: ArchiveStack, executor: LocalExecutor, site: Path, channel: Path
) -> None:
    updates = stack.available(environment(site), stack.inventory_at(executor, str(site)))
    assert updates == [
        Update(
            "forms",
            "1.0.0",
            "1.2.0",
            "minor",
            "forms-1.2.0.zip",
            sha256(channel / "forms-1.2.0.zip"),
        ),
        Update(
            "shop",
            "2.4.1",
            "3.0.0",
            "major",
            "shop-3.0.0.tar.gz",
            sha256(channel / "shop-3.0.0.tar.gz"),
        ),
    ]


def test_available_rejects_unparsable_installed_version(stack: ArchiveStack, site: Path) -> None:
    with pytest.raises(StackError, match="forms: installed version 'trunk'"):
        stack.available(environment(site), [Component("forms", "trunk")])


@pytest.mark.parametrize("name", ["forms", "shop"])  # zip and tar.gz
def test_apply_replaces_component(
    stack: ArchiveStack, executor: LocalExecutor, site: Path, name: str
) -> None:
    before = tree(site)
    update = update_to(stack, executor, site, name)
    stack.apply_one(environment(site), update, CONTEXT)

    after = tree(site)
    live = f"{PLUGINS}/{name}"
    assert after[f"{live}/VERSION"].decode().splitlines()[0] == update.to_version
    assert after[f"{live}/{name}.php"] == f"<?php // {name} new".encode()
    assert f"{live}/assets/app-{update.to_version}.js" in after
    assert f"{live}/assets/app-{update.from_version}.js" not in after  # old files are gone
    untouched = {k: v for k, v in before.items() if not k.startswith(live + "/")}
    assert {k: v for k, v in after.items() if not k.startswith(live + "/")} == untouched
    assert leftovers(site) == []
    assert stack.inventory_at(executor, str(site))[
        ["forms", "seo", "shop"].index(name)
    ] == Component(name, update.to_version)


def test_apply_twice_is_a_no_op(stack: ArchiveStack, executor: LocalExecutor, site: Path) -> None:
    update = update_to(stack, executor, site, "forms")
    stack.apply_one(environment(site), update, CONTEXT)
    once = tree(site)
    (stack.channel / update.artifact).unlink()  # not even read when already applied
    stack.apply_one(environment(site), update, CONTEXT)
    assert tree(site) == once


def test_apply_refuses_tampered_archive(
    stack: ArchiveStack, executor: LocalExecutor, site: Path
) -> None:
    update = update_to(stack, executor, site, "forms")
    before = tree(site)
    write_zip(stack.channel / update.artifact, plugin("forms", "1.2.0", "<?php evil()"))
    with pytest.raises(IntegrityError, match=r"forms-1.2.0.zip changed since it was planned"):
        stack.apply_one(environment(site), update, CONTEXT)
    assert tree(site) == before
    assert leftovers(site) == []


def test_apply_refuses_missing_archive(
    stack: ArchiveStack, executor: LocalExecutor, site: Path
) -> None:
    update = update_to(stack, executor, site, "forms")
    (stack.channel / update.artifact).unlink()
    with pytest.raises(IntegrityError, match="changed since it was planned: it is gone"):
        stack.apply_one(environment(site), update, CONTEXT)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (plugin("forms", "1.1.0"), "contains forms 1.1.0, expected 1.2.0"),
        (plugin("other", "1.2.0"), "no top-level directory 'forms/'"),
        ({"forms/forms.php": b"<?php"}, "forms/VERSION: version file missing"),
    ],
)
def test_apply_refuses_wrong_content(
    stack: ArchiveStack,
    executor: LocalExecutor,
    site: Path,
    members: dict[str, bytes],
    message: str,
) -> None:
    artifact = write_zip(stack.channel / "forms-1.2.0.zip", members)
    update = Update("forms", "1.0.0", "1.2.0", "minor", artifact.name, sha256(artifact))
    before = tree(site)
    with pytest.raises(StackError, match=message):
        stack.apply_one(environment(site), update, CONTEXT)
    assert tree(site) == before
    assert leftovers(site) == []


def test_apply_refuses_corrupt_archive(
    stack: ArchiveStack, executor: LocalExecutor, site: Path
) -> None:
    artifact = stack.channel / "forms-1.2.0.zip"
    artifact.write_bytes(b"this is not a zip file")
    update = Update("forms", "1.0.0", "1.2.0", "minor", artifact.name, sha256(artifact))
    before = tree(site)
    with pytest.raises(StackError, match=r"forms-1\.2\.0\.zip"):
        stack.apply_one(environment(site), update, CONTEXT)
    assert tree(site) == before


def _zip_slip(path: Path, evil: str) -> Path:
    return write_zip(path, {**plugin("forms", "1.2.0"), evil: b"pwned"})


def _tar_slip(path: Path, evil: str) -> Path:
    return write_tar(path, {**plugin("forms", "1.2.0"), evil: b"pwned"})


def _tar_link(path: Path, target: str) -> Path:
    return write_tar(path, plugin("forms", "1.2.0"), links={"forms/link": target})


@pytest.mark.parametrize(
    ("build", "ext", "evil", "message"),
    [
        (_zip_slip, "zip", "../../../evil.php", "unsafe member path in archive: ../../../evil.php"),
        (_zip_slip, "zip", "forms/../../evil.php", "unsafe member path"),
        (_tar_slip, "tar.gz", "../../../evil.php", "unsafe member path"),
        (_tar_slip, "tar.gz", "/tmp/tma-evil.php", "unsafe member path in archive: /tmp/"),
        (_tar_link, "tar.gz", "../../../../wp-config.php", "unsafe link target path"),
        (_tar_link, "tar.gz", "/etc/passwd", "unsafe link target path"),
    ],
)
def test_apply_refuses_zip_slip(
    stack: ArchiveStack,
    executor: LocalExecutor,
    site: Path,
    tmp_path: Path,
    build: object,
    ext: str,
    evil: str,
    message: str,
) -> None:
    assert callable(build)
    artifact = build(stack.channel / f"forms-1.2.0.{ext}", evil)
    update = Update("forms", "1.0.0", "1.2.0", "minor", artifact.name, sha256(artifact))
    before_site, before_tmp = tree(site), sorted(tmp_path.rglob("*"))
    with pytest.raises(StackError, match=message):
        stack.apply_one(environment(site), update, CONTEXT)
    assert tree(site) == before_site
    assert sorted(tmp_path.rglob("*")) == before_tmp
    assert not Path("/tmp/tma-evil.php").exists()


def test_apply_recovers_from_crash_mid_swap(
    stack: ArchiveStack, executor: LocalExecutor, site: Path
) -> None:
    update = update_to(stack, executor, site, "forms")
    plugins = plugins_dir(site)
    # A crash after `live -> .tma-old-forms` with a half-extracted new copy and upload.
    (plugins / "forms").rename(plugins / ".tma-old-forms")
    (plugins / ".tma-new-forms" / "forms").mkdir(parents=True)
    (plugins / ".tma-new-forms" / "forms" / "half.php").write_text("partial")
    (plugins / ".tma-incoming-forms.zip.partial").write_bytes(b"trunc")

    stack.apply_one(environment(site), update, CONTEXT)

    after = tree(site)
    assert after[f"{PLUGINS}/forms/VERSION"].startswith(b"1.2.0\n")
    assert f"{PLUGINS}/forms/half.php" not in after
    assert leftovers(site) == []


def test_apply_finishes_crash_after_swap(
    stack: ArchiveStack, executor: LocalExecutor, site: Path
) -> None:
    update = update_to(stack, executor, site, "forms")
    plugins = plugins_dir(site)
    # A crash after the new copy went live, before the cleanup.
    (plugins / "forms").rename(plugins / ".tma-old-forms")
    (plugins / ".tma-new-forms").mkdir()
    (plugins / "forms").mkdir()
    for rel, data in plugin("forms", "1.2.0").items():
        (plugins / rel).parent.mkdir(parents=True, exist_ok=True)
        (plugins / rel).write_bytes(data)

    stack.apply_one(environment(site), update, CONTEXT)

    assert (plugins / "forms" / "VERSION").read_text().startswith("1.2.0\n")
    assert leftovers(site) == []


def test_apply_restores_old_copy_when_new_archive_is_bad(
    stack: ArchiveStack, executor: LocalExecutor, site: Path
) -> None:
    plugins = plugins_dir(site)
    artifact = write_zip(stack.channel / "forms-1.2.0.zip", plugin("forms", "1.1.0"))
    update = Update("forms", "1.0.0", "1.2.0", "minor", artifact.name, sha256(artifact))
    (plugins / "forms").rename(plugins / ".tma-old-forms")
    with pytest.raises(StackError, match=r"expected 1\.2\.0"):
        stack.apply_one(environment(site), update, CONTEXT)
    assert (plugins / "forms" / "VERSION").read_text().startswith("1.0.0\n")
    assert leftovers(site) == []


def test_apply_requires_installed_component(
    stack: ArchiveStack, executor: LocalExecutor, site: Path, channel: Path
) -> None:
    artifact = channel / "forms-1.2.0.zip"
    update = Update("ghost", "1.0", "1.2.0", "minor", "ghost-1.2.0.zip", sha256(artifact))
    with pytest.raises(StackError, match="plugins/ghost: component not installed"):
        stack.apply_one(environment(site), update, CONTEXT)


def test_apply_rejects_artifact_of_another_component(
    stack: ArchiveStack, executor: LocalExecutor, site: Path
) -> None:
    update = Update("seo", "3.1", "1.2.0", "major", "forms-1.2.0.zip", "0" * 64)
    with pytest.raises(StackError, match="not an archive of seo"):
        stack.apply_one(environment(site), update, CONTEXT)
