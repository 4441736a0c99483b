"""A real S3 API server for the store tests: moto_server over HTTP on 127.0.0.1.

Register once for the whole suite (tests/conftest.py `pytest_plugins`). Fixtures:
- `s3_server` (session): moto_server without authentication, started on first use;
- `s3_bucket`: a fresh bucket on it for one test, with versioning and Object Lock enabled
  (moto only accepts an object-lock configuration on an empty bucket, so it is set at creation);
- `s3_auth_server` (session): a second moto_server that enforces IAM authentication, holding
  one bucket and one IAM user allowed only to list it (`AuthServer`);
- `fault_proxy`: a proxy in front of `s3_server` that can answer 503 SlowDown or corrupt a
  response (harness.s3proxy); `tls_proxy`: the same over HTTPS with a self-signed certificate.
Without moto_server in the venv the tests are skipped, which conftest turns into failures under
CI=true.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from harness.s3proxy import FaultProxy
from tma_ops.model import StoreSpec

REGION = "us-east-1"
TEST_KEY_ID = "testing"
TEST_SECRET = "testing-secret-never-shown"


@dataclass
class MotoServer:
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class AuthServer:
    server: MotoServer
    bucket: str
    limited_key_id: str  # an IAM user allowed s3:ListBucket on `bucket`, nothing else
    limited_secret: str


def moto_argv(port: int) -> list[str]:
    script = Path(sys.executable).parent / "moto_server"
    if script.exists():
        return [str(script), "-H", "127.0.0.1", "-p", str(port)]
    if shutil.which("moto_server") is None:
        pytest.skip("moto_server not installed in the venv (pip install -e '.[dev]')")
    return ["moto_server", "-H", "127.0.0.1", "-p", str(port)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_moto(base: Path, env: dict[str, str] | None = None, attempts: int = 3) -> MotoServer:
    """moto_server on a free port, its log and spooled objects under base; waits until ready."""
    base.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "TMPDIR": str(base), **(env or {})}
    for attempt in range(attempts):
        port = free_port()
        log = base / f"moto-{port}.log"
        with open(log, "ab") as sink:
            process = subprocess.Popen(
                moto_argv(port), stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, env=environment
            )
        server = MotoServer(f"http://127.0.0.1:{port}", process, log)
        if _wait_ready(server):
            return server
        stop_moto(server)
        if attempt == attempts - 1:
            raise RuntimeError(f"moto_server did not start: {log.read_text(errors='replace')}")
    raise AssertionError("unreachable")


def _wait_ready(server: MotoServer, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False  # the port was taken meanwhile, most likely: try another one
        try:
            with urllib.request.urlopen(server.endpoint + "/moto-api/", timeout=5) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def stop_moto(server: MotoServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=30)


@functools.cache
def client(
    endpoint: str, key_id: str = TEST_KEY_ID, secret: str = TEST_SECRET, svc: str = "s3"
) -> Any:
    return boto3.client(
        svc,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def s3_spec(endpoint: str, bucket: str, prefix: str = "backups", **settings: Any) -> StoreSpec:
    url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    values: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region": REGION,
        "access_key_id": TEST_KEY_ID,
        "secret_access_key": TEST_SECRET,
    }
    values.update(settings)
    return StoreSpec(url=url, **values)


def create_locked_bucket(endpoint: str) -> str:
    name = f"t-{uuid4().hex[:20]}"
    s3 = client(endpoint)
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def empty_bucket(endpoint: str, bucket: str) -> None:
    """Best effort, to give moto its memory and disk back (test harness only: bypasses locks)."""
    s3 = client(endpoint)
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            items = page.get("Versions", []) + page.get("DeleteMarkers", [])
            if items:
                s3.delete_objects(
                    Bucket=bucket,
                    Delete={
                        "Objects": [{"Key": i["Key"], "VersionId": i["VersionId"]} for i in items]
                    },
                    BypassGovernanceRetention=True,
                )
    except ClientError:
        pass


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        stop_moto(server)


@pytest.fixture
def s3_bucket(s3_server: MotoServer) -> Iterator[str]:
    bucket = create_locked_bucket(s3_server.endpoint)
    try:
        yield bucket
    finally:
        empty_bucket(s3_server.endpoint, bucket)


@pytest.fixture(scope="session")
def s3_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    # moto lets the first N requests through unauthenticated: enough to set up IAM, then it
    # checks every request's signature, access key and the user's policies, as AWS does.
    free_calls = 20
    server = start_moto(
        tmp_path_factory.mktemp("moto-auth"),
        env={"INITIAL_NO_AUTH_ACTION_COUNT": str(free_calls)},
    )
    try:
        yield _set_up_auth(server, free_calls)
    finally:
        stop_moto(server)


def _set_up_auth(server: MotoServer, free_calls: int) -> AuthServer:
    bucket = f"auth-{uuid4().hex[:12]}"
    client(server.endpoint).create_bucket(Bucket=bucket)
    iam = client(server.endpoint, svc="iam")
    iam.create_user(UserName="limited")
    key = iam.create_access_key(UserName="limited")["AccessKey"]
    # AWS lets s3:ListBucket answer HeadBucket; moto 5.2.5 checks an s3:HeadBucket action.
    allowed = ["s3:ListBucket", "s3:HeadBucket"]
    statement = {"Effect": "Allow", "Action": allowed, "Resource": [f"arn:aws:s3:::{bucket}"]}
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    iam.put_user_policy(
        UserName="limited", PolicyName="list-only", PolicyDocument=json.dumps(policy)
    )
    _use_up_free_calls(server, free_calls)
    return AuthServer(server, bucket, key["AccessKeyId"], key["SecretAccessKey"])


def _use_up_free_calls(server: MotoServer, free_calls: int) -> None:
    s3 = client(server.endpoint, key_id="AKIAUNKNOWNKEY000000")
    for _ in range(free_calls + 1):
        try:
            s3.list_buckets()
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "InvalidAccessKeyId":
                return
            raise
    raise RuntimeError("moto never started checking credentials (INITIAL_NO_AUTH_ACTION_COUNT)")


@pytest.fixture
def fault_proxy(s3_server: MotoServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(s3_server.endpoint.removeprefix("http://")).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def tls_proxy(s3_server: MotoServer, tmp_path: Path) -> Iterator[FaultProxy]:
    proxy = FaultProxy(s3_server.endpoint.removeprefix("http://"), tls_dir=tmp_path / "tls")
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
