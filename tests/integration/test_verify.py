"""`tma-ops verify` on real snapshots of a demo site in a file:// store, damaged on purpose.

Each test snapshots the demo blog with the real snapshot code, damages the stored objects the way
disks, networks and interrupted runs do (flipped byte, cut short, deleted, manifest lost), and
drives the CLI through `tma_ops.cli.main`, checking what it prints and its exit code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tma_ops import commands_verify
from tma_ops.cli import main
from tma_ops.config import Site, load_inventory
from tma_ops.demo.workspace import build_workspace
from tma_ops.errors import EXIT_ERROR, EXIT_INTEGRITY, EXIT_OK, EXIT_WARNINGS, StoreError
from tma_ops.snapshot import Manifest, create_snapshot, manifest_key
from tma_ops.stores import Store, open_store
from tma_ops.stores.file import FileStore
from tma_ops.verify import VerifyReport

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).parents[2] / "inventories" / "demo" / "tma.yaml"


@dataclass
class Verified:
    code: int
    out: list[str]
    err: str

    def problems(self) -> list[str]:
        return [line for line in self.out if ": error: " in line or ": warning: " in line]

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out]


@dataclass
class Demo:
    inventory: Path
    capsys: pytest.CaptureFixture[str]

    def site(self, name: str = "blog") -> Site:
        return load_inventory(self.inventory).site(name)

    def store(self) -> FileStore:
        store = open_store(self.site().store)
        assert isinstance(store, FileStore)
        return store

    def snapshot(self, site: str = "blog") -> Manifest:
        return create_snapshot(self.site(site), "production", self.store())

    def path(self, key: str) -> Path:
        return self.store().root / key

    def verify(self, *args: str) -> Verified:
        self.capsys.readouterr()
        code = main(["-i", str(self.inventory), "verify", *args])
        captured = self.capsys.readouterr()
        return Verified(code, captured.out.splitlines(), captured.err)


@pytest.fixture
def demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Demo:
    monkeypatch.setenv("TMA_DEMO_PORT", "1")  # smoke URLs only; no server is needed
    for name in ("TMA_OPS_INVENTORY", "TMA_OPS_PAUSE_AT"):
        monkeypatch.delenv(name, raising=False)
    return Demo(build_workspace(tmp_path / "ws", TEMPLATE), capsys)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def summary(verified: Verified) -> str:
    return verified.out[-1]


# --- a clean store ----------------------------------------------------------------------------


@pytest.mark.parametrize("level", [[], ["--read-data"], ["--read-data-subset", "100"]])
def test_a_clean_store_exits_0(demo: Demo, level: list[str]) -> None:
    first, second = demo.snapshot(), demo.snapshot()
    verified = demo.verify("blog", *level)
    assert verified.code == EXIT_OK, verified
    assert verified.problems() == []
    # The unchanged dump of the second is the first one's chunk, named: three objects in all.
    objects = {stored.key for manifest in (first, second) for stored in manifest.objects()}
    assert len(objects) == 3
    parts_read = 0 if not level else len(objects)
    stored = first.total_size + second.total_size if level else 0
    assert summary(verified).startswith(
        f"blog: 2 snapshot(s) checked, {len(objects)} part(s), {parts_read} read ("
    )
    assert summary(verified).endswith(": ok")
    records = demo.verify("blog", "--json", *level).records()
    assert records[-1]["parts_read"] == parts_read
    assert records[-1]["bytes_read"] == stored


def test_a_site_without_snapshots_is_clean(demo: Demo) -> None:
    verified = demo.verify("blog", "--read-data")
    assert verified.code == EXIT_OK
    assert verified.out == ["blog: 0 snapshot(s) checked, 0 part(s), 0 read (0 B): ok"]


# --- damaged objects --------------------------------------------------------------------------


def test_a_flipped_byte_is_named_by_read_data_only(demo: Demo) -> None:
    manifest = demo.snapshot()
    part = manifest.parts["files"]
    flip_byte(demo.path(part.key))

    structure = demo.verify("blog")
    assert structure.code == EXIT_OK, "the structure check only compares sizes"
    assert structure.problems() == []

    read = demo.verify("blog", "--read-data")
    assert read.code == EXIT_INTEGRITY
    (line,) = read.problems()
    assert line.startswith(f"blog: error: corrupted: {part.key} ")
    assert f"snapshot {manifest.snapshot_id}, part files" in line
    assert part.sha256[:12] in line


def test_a_truncated_object_is_named_by_both_levels(demo: Demo) -> None:
    manifest = demo.snapshot()
    (part,) = manifest.parts["db"].chunks
    truncate(demo.path(part.key))
    expected = (
        f"blog: error: truncated: {part.key} (snapshot {manifest.snapshot_id}, part db): "
        f"{part.size - 100} bytes stored, manifest records {part.size}"
    )
    for level in ([], ["--read-data"]):
        verified = demo.verify("blog", *level)
        assert verified.code == EXIT_INTEGRITY
        assert verified.problems() == [expected]


def test_a_missing_part_is_named_by_both_levels(demo: Demo) -> None:
    manifest = demo.snapshot()
    part = manifest.parts["files"]
    demo.path(part.key).unlink()
    for level in ([], ["--read-data"]):
        verified = demo.verify("blog", *level)
        assert verified.code == EXIT_INTEGRITY
        assert verified.problems() == [
            f"blog: error: missing: {part.key} (snapshot {manifest.snapshot_id}, part files; "
            f"{part.size} bytes recorded)"
        ]


def test_an_unreadable_manifest_is_named(demo: Demo) -> None:
    manifest = demo.snapshot()
    key = manifest_key("blog", manifest.snapshot_id)
    demo.path(key).write_text('{"format": 1, "parts": ')
    verified = demo.verify("blog")
    assert verified.code == EXIT_INTEGRITY
    (line,) = verified.problems()
    assert line.startswith(
        f"blog: error: unreadable manifest: {key} (snapshot {manifest.snapshot_id}): "
        "not a valid snapshot manifest ("
    )


def test_any_number_of_parts_is_checked_encrypted_or_not(demo: Demo) -> None:
    """Parts are checked as stored bytes: an `.age` part needs no key, only its digest."""
    manifest = demo.snapshot()
    extra_key = f"blog/snapshots/{manifest.snapshot_id}/files.1.tar.zst.age"
    sealed = b"age-encryption.org/v1\n" + bytes(range(256)) * 40
    demo.store().put(extra_key, io.BytesIO(sealed))
    extra = dataclasses.replace(
        manifest.parts["files"],
        key=extra_key,
        size=len(sealed),
        sha256=hashlib.sha256(sealed).hexdigest(),
    )
    grown = dataclasses.replace(manifest, parts={**manifest.parts, "files.1": extra})
    demo.store().put(manifest_key("blog", manifest.snapshot_id), io.BytesIO(grown.to_json()))
    assert demo.verify("blog", "--read-data").code == EXIT_OK

    flip_byte(demo.path(extra_key))
    verified = demo.verify("blog", "--read-data")
    assert verified.code == EXIT_INTEGRITY
    (line,) = verified.problems()
    assert line.startswith(f"blog: error: corrupted: {extra_key} ")


# --- interrupted snapshots and increments -----------------------------------------------------


def test_an_orphan_is_a_warning(demo: Demo) -> None:
    demo.snapshot()
    interrupted = demo.snapshot()
    demo.path(manifest_key("blog", interrupted.snapshot_id)).unlink()
    verified = demo.verify("blog", "--read-data")
    assert verified.code == EXIT_WARNINGS
    assert verified.problems() == [
        f"blog: warning: orphan: {part.key} (snapshot {interrupted.snapshot_id} has no "
        "manifest; left by an interrupted snapshot, `tma-ops prune` removes it)"
        for part in sorted(interrupted.own_objects(), key=lambda p: p.key)
    ]
    assert len(interrupted.own_objects()) == 1  # its files increment; its dump is the first's
    assert summary(verified).endswith(": 0 error(s), 1 warning(s)")


def test_an_object_outside_any_snapshot_is_a_warning(demo: Demo) -> None:
    demo.snapshot()
    demo.store().put("blog/snapshots/notes.txt", io.BytesIO(b"copied here by hand\n"))
    verified = demo.verify("blog")
    assert verified.code == EXIT_WARNINGS
    assert verified.problems() == [
        "blog: warning: orphan: blog/snapshots/notes.txt (outside any snapshot; "
        "tma-ops never writes there; remove it by hand once checked)"
    ]


def test_a_missing_parent_names_both_snapshots(demo: Demo) -> None:
    parent = demo.snapshot()
    child = demo.snapshot()
    increment = dataclasses.replace(child, parent=parent.snapshot_id)
    demo.store().put(manifest_key("blog", child.snapshot_id), io.BytesIO(increment.to_json()))
    assert demo.verify("blog").code == EXIT_OK

    demo.path(manifest_key("blog", parent.snapshot_id)).unlink()
    verified = demo.verify("blog")
    assert verified.code == EXIT_INTEGRITY
    errors = [line for line in verified.problems() if ": error: " in line]
    assert errors == [
        f"blog: error: missing parent: snapshot {child.snapshot_id} cannot be restored: "
        f"its parent {parent.snapshot_id}, which is missing "
        f"({manifest_key('blog', parent.snapshot_id)})"
    ]
    warnings = [line for line in verified.problems() if ": warning: " in line]
    assert warnings == [
        f"blog: warning: orphan: {part.key} (snapshot {parent.snapshot_id} has no manifest; "
        f"data of the parent of increment {child.snapshot_id}: do not delete it)"
        for part in sorted(parent.own_objects(), key=lambda p: p.key)
    ]


# --- the subset -------------------------------------------------------------------------------


def test_a_subset_prints_its_seed_and_the_seed_repeats_the_choice(demo: Demo) -> None:
    for _ in range(3):
        demo.snapshot()
    verified = demo.verify("blog", "--read-data-subset", "10%")
    assert verified.code == EXIT_OK
    seed = verified.out[0].split("--seed ")[1].split()[0]
    assert verified.out[0] == (
        f"reading a random 10% of the stored bytes "
        f"(seed {seed}; --seed {seed} reads the same parts)"
    )
    runs = [demo.verify("blog", "--json", "--read-data-subset", "10", "--seed", seed)]
    runs.append(demo.verify("blog", "--json", "--read-data-subset", "10", "--seed", seed))
    (first,), (second,) = (run.records() for run in runs)
    assert first == second
    assert first["seed"] == int(seed)
    assert first["level"] == "read-data-subset"
    assert 1 <= first["parts_read"] < 6


@pytest.mark.parametrize("value", ["0", "abc", "150"])
def test_bad_subset_values_are_refused_in_one_line(demo: Demo, value: str) -> None:
    demo.snapshot()
    verified = demo.verify("blog", "--read-data-subset", value)
    assert verified.code == EXIT_ERROR
    assert verified.out == []
    assert verified.err == (
        "tma-ops: error: --read-data-subset: expected a percentage above 0 and at most 100 "
        f"(like 10 or 10%), got {value!r}\n"
    )


# --- output and sites -------------------------------------------------------------------------


def test_json_prints_one_object_per_problem_then_a_summary(demo: Demo) -> None:
    manifest = demo.snapshot()
    part = manifest.parts["files"]
    flip_byte(demo.path(part.key))
    verified = demo.verify("blog", "--json", "--read-data")
    assert verified.code == EXIT_INTEGRITY
    problem, final = verified.records()
    assert {k: problem[k] for k in ("type", "site", "kind", "severity", "snapshot_id")} == {
        "type": "problem",
        "site": "blog",
        "kind": "corrupted",
        "severity": "error",
        "snapshot_id": manifest.snapshot_id,
    }
    assert (problem["part"], problem["key"], problem["expected_sha256"]) == (
        "files",
        part.key,
        part.sha256,
    )
    assert problem["found_sha256"] != part.sha256
    assert {k: final[k] for k in ("type", "snapshots", "parts", "parts_read", "errors")} == {
        "type": "summary",
        "snapshots": 1,
        "parts": 2,
        "parts_read": 2,
        "errors": 1,
    }


def test_all_verifies_every_site_and_exits_with_the_worst(demo: Demo) -> None:
    demo.snapshot("blog")
    shop = demo.snapshot("shop")
    truncate(demo.path(shop.parts["files"].key))
    verified = demo.verify("--all")
    assert verified.code == EXIT_INTEGRITY
    assert [line.split(":")[0] for line in verified.out] == ["blog", "shop", "shop"]
    assert verified.problems()[0].startswith(f"shop: error: truncated: {shop.parts['files'].key}")
    refused = demo.verify("--all", "blog")
    assert (refused.code, refused.err) == (
        EXIT_ERROR,
        "tma-ops: error: name the sites to verify, or pass --all (not both)\n",
    )


def test_all_goes_on_past_a_store_that_fails(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    demo.snapshot("blog")
    real = commands_verify.verify_site

    def failing_for_shop(store: Store, site: str, *args: Any) -> VerifyReport:
        if site == "shop":
            raise StoreError("s3://bucket: connection refused")
        return real(store, site, *args)

    monkeypatch.setattr(commands_verify, "verify_site", failing_for_shop)
    verified = demo.verify("--all")
    assert verified.code == EXIT_ERROR
    assert verified.out == ["blog: 1 snapshot(s) checked, 2 part(s), 0 read (0 B): ok"]
    assert verified.err == "tma-ops: error: shop: s3://bucket: connection refused\n"
