"""`tma-ops store init` through the CLI, against moto_server: what it sets, what it reports."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import yaml
from harness.s3server import REGION, TEST_KEY_ID, TEST_SECRET, AuthServer, MotoServer, client

from tma_ops.cli import main
from tma_ops.errors import EXIT_ERROR, EXIT_OK, EXIT_WARNINGS
from tma_ops.model import StoreSpec
from tma_ops.stores.s3 import S3Store

pytestmark = pytest.mark.integration

DEMO = Path(__file__).parents[2] / "inventories" / "demo" / "tma.yaml"


def write_inventory(path: Path, stores: dict[str, Any]) -> Path:
    """The demo inventory with the given store per site (nothing needs to exist on disk)."""
    document = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    for site, store in stores.items():
        document["sites"][site]["store"] = store
    inventory = path / "tma.yaml"
    inventory.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return inventory


def s3_store(endpoint: str, bucket: str, **settings: Any) -> dict[str, Any]:
    return {
        "url": f"s3://{bucket}/agency",
        "endpoint_url": endpoint,
        "region": REGION,
        "access_key_id": TEST_KEY_ID,
        "secret_access_key": "${TMA_TEST_S3_SECRET}",
        **settings,
    }


def run(capsys: pytest.CaptureFixture[str], inventory: Path, *args: str) -> tuple[int, list[str]]:
    code = main(["-i", str(inventory), "store", "init", *args])
    out, err = capsys.readouterr()
    assert TEST_SECRET not in out + err
    return code, out.splitlines() + err.splitlines()


@pytest.fixture(autouse=True)
def secret_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMA_TEST_S3_SECRET", TEST_SECRET)


def statuses(lines: list[str]) -> dict[str, str]:
    """{'setting': 'status'} from 'site: url: setting: status (detail)' lines."""
    found = {}
    for line in lines:
        parts = line.split(": ")
        if len(parts) >= 4 and parts[1].startswith(("s3://", "file://")):
            found[parts[2]] = parts[3].split(" ")[0]
    return found


def test_init_creates_a_locked_versioned_bucket_then_finds_it_ready(
    s3_server: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = f"new-{uuid4().hex[:12]}"
    lock = {"mode": "compliance", "days": 30}
    store = s3_store(s3_server.endpoint, bucket, object_lock=lock)
    inventory = write_inventory(tmp_path, {"blog": store})

    code, lines = run(capsys, inventory, "blog")
    assert code == EXIT_OK, lines
    assert statuses(lines)["bucket"] == "done"
    assert statuses(lines)["lifecycle"] == "done"
    assert set(statuses(lines).values()) <= {"done", "already"}

    s3 = client(s3_server.endpoint)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    lock_config = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock_config == {"ObjectLockEnabled": "Enabled"}  # no default retention
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert len(rules) == 1
    assert rules[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert rules[0]["Filter"] == {"Prefix": "agency/"}
    assert "NoncurrentVersionExpiration" not in rules[0] and "Expiration" not in rules[0]

    code, lines = run(capsys, inventory, "blog")
    assert code == EXIT_OK
    assert set(statuses(lines).values()) == {"already"}, lines
    assert len(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]) == 1

    ready = S3Store.open(StoreSpec(**{**store, "secret_access_key": TEST_SECRET}))
    ready.put("k", io.BytesIO(b"x"))
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    ready.lock("k", until)
    assert ready.stat("k").locked_until == until
    head = s3.head_object(Bucket=bucket, Key="agency/k")
    assert head["ObjectLockMode"] == "COMPLIANCE"


def test_init_keeps_existing_rules_and_enables_versioning(
    s3_server: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = f"old-{uuid4().hex[:12]}"
    s3 = client(s3_server.endpoint)
    s3.create_bucket(Bucket=bucket)
    keep = {
        "ID": "logs",
        "Status": "Enabled",
        "Filter": {"Prefix": "logs/"},
        "Expiration": {"Days": 90},
    }
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [keep]})
    inventory = write_inventory(tmp_path, {"blog": s3_store(s3_server.endpoint, bucket)})

    code, lines = run(capsys, inventory, "blog", "--json")
    assert code == EXIT_OK
    results = {r["setting"]: r for r in map(json.loads, lines)}
    assert {name: r["status"] for name, r in results.items()} == {
        "bucket": "already",
        "versioning": "done",
        "object lock": "skipped",
        "lifecycle": "done",
    }
    assert (
        results["bucket"]["site"] == "blog"
        and results["bucket"]["store"] == f"s3://{bucket}/agency"
    )
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [rule["ID"] for rule in rules] == ["logs", "tma-ops-abort-incomplete-uploads:agency/"]


def test_init_says_what_it_could_not_set(
    s3_server: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = f"busy-{uuid4().hex[:12]}"
    s3 = client(s3_server.endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="agency/existing", Body=b"x")  # moto: lock needs it empty
    store = s3_store(s3_server.endpoint, bucket, object_lock={"days": 7})
    inventory = write_inventory(tmp_path, {"blog": store})

    code, lines = run(capsys, inventory, "blog")
    assert code == EXIT_WARNINGS, lines
    found = statuses(lines)
    assert found["object lock"] == "failed"
    assert (found["versioning"], found["lifecycle"]) == ("done", "done")
    assert lines[-1] == f"could not set blog: s3://{bucket}/agency: object lock"


def test_init_without_permissions_reports_each_refusal(
    s3_auth_server: AuthServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = s3_auth_server
    store = s3_store(auth.server.endpoint, auth.bucket, access_key_id=auth.limited_key_id)
    store["secret_access_key"] = auth.limited_secret
    inventory = write_inventory(tmp_path, {"blog": store})

    code, lines = run(capsys, inventory, "blog")
    assert code == EXIT_WARNINGS
    found = statuses(lines)
    assert found["bucket"] == "already"  # the user may list the bucket, nothing more
    assert (found["versioning"], found["lifecycle"]) == ("failed", "failed")
    assert any("versioning: failed (access denied" in line for line in lines), lines
    assert not any(auth.limited_secret in line for line in lines)


def test_init_file_stores_and_shared_stores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = write_inventory(tmp_path, {"blog": "file://./store", "shop": "file://./store"})
    code, lines = run(capsys, inventory, "--all")
    assert code == EXIT_OK
    assert (tmp_path / "store").is_dir()
    assert f"blog: file://{tmp_path / 'store'}: directory: done ({tmp_path / 'store'})" in lines
    assert any("object lock: skipped (Object Lock is not available" in line for line in lines)
    assert lines[-1] == f"shop: file://{tmp_path / 'store'}: same store as blog, prepared above"

    locked = {"url": "file://./store", "object_lock": {"days": 30}}
    inventory = write_inventory(tmp_path, {"blog": locked})
    code, lines = run(capsys, inventory, "blog")
    assert code == EXIT_WARNINGS
    assert statuses(lines) == {"directory": "already", "object lock": "failed"}


def test_init_needs_sites_or_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write_inventory(tmp_path, {})
    code, lines = run(capsys, inventory)
    assert code == EXIT_ERROR
    assert lines == [
        "tma-ops: error: name the sites whose stores to prepare, or pass --all (not both)"
    ]


def test_init_help_explains(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["store", "init", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for words in ["Object Lock", "versioning", "lifecycle", "incomplete", "file://", "Exit 0"]:
        assert words in text
