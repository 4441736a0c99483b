"""The errors a misconfigured or unreachable S3 service produces: one line each, naming the
store and what was expected, never the secret key. Against moto_server (harness), with real
authentication (IAM users, signatures) on `s3_auth_server`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness.s3proxy import FaultProxy
from harness.s3server import TEST_SECRET, AuthServer, MotoServer, free_port, s3_spec

from tma_ops.errors import InventoryError, StoreError
from tma_ops.stores.s3 import S3Store

pytestmark = pytest.mark.integration

KEY = "site/snapshots/20300101-abc123/files.tar.zst"


def put_bytes(store: S3Store, key: str, data: bytes) -> int:
    return store.put(key, io.BytesIO(data))


def read_all(store: S3Store, key: str) -> bytes:
    with store.get(key) as stream:
        return stream.read()


OPERATIONS: dict[str, Callable[[S3Store], object]] = {
    "put": lambda store: put_bytes(store, KEY, b"x"),
    "get": lambda store: read_all(store, KEY),
    "stat": lambda store: store.stat(KEY),
    "list": lambda store: store.list(),
    "delete": lambda store: store.delete(KEY),
}


def one_line_error(store: S3Store, op: Callable[[S3Store], object]) -> str:
    with pytest.raises(StoreError) as raised:
        op(store)
    message = str(raised.value)
    assert "\n" not in message and store.url in message
    assert not any(TEST_SECRET in str(exc) for exc in iter_chain(raised.value))
    return message


@pytest.mark.parametrize("op", OPERATIONS.values(), ids=OPERATIONS.keys())
def test_missing_bucket(s3_server: MotoServer, op: Callable[[S3Store], object]) -> None:
    store = S3Store.open(s3_spec(s3_server.endpoint, "no-such-bucket"))
    message = one_line_error(store, op)
    assert "bucket 'no-such-bucket' does not exist" in message and "store init" in message


@pytest.mark.parametrize("op", [OPERATIONS["put"], OPERATIONS["list"]], ids=["put", "list"])
def test_unreachable_endpoint(op: Callable[[S3Store], object]) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = S3Store(s3_spec(endpoint, "bucket"), max_attempts=2)
    message = one_line_error(store, op)
    assert f"cannot reach the S3 endpoint {endpoint}" in message and "endpoint_url" in message


def test_tls_certificate_not_trusted_then_trusted_through_ca_bundle(
    s3_bucket: str, tls_proxy: FaultProxy
) -> None:
    untrusted = S3Store(s3_spec(tls_proxy.endpoint, s3_bucket), max_attempts=1)
    message = one_line_error(untrusted, OPERATIONS["list"])
    assert "TLS verification" in message and "ca_bundle" in message
    trusted = S3Store.open(s3_spec(tls_proxy.endpoint, s3_bucket, ca_bundle=str(tls_proxy.ca_file)))
    put_bytes(trusted, KEY, b"over TLS")
    assert read_all(trusted, KEY) == b"over TLS"


def auth_store(auth: AuthServer, key_id: str, secret: str) -> S3Store:
    spec = s3_spec(
        auth.server.endpoint, auth.bucket, access_key_id=key_id, secret_access_key=secret
    )
    return S3Store.open(spec)


@pytest.mark.parametrize("op", OPERATIONS.values(), ids=OPERATIONS.keys())
def test_unknown_access_key(s3_auth_server: AuthServer, op: Callable[[S3Store], object]) -> None:
    store = auth_store(s3_auth_server, "AKIAUNKNOWNKEY000000", TEST_SECRET)
    message = one_line_error(store, op)
    assert "does not know this access key" in message
    assert "check access_key_id / secret_access_key" in message


@pytest.mark.parametrize("op", OPERATIONS.values(), ids=OPERATIONS.keys())
def test_wrong_secret_key(s3_auth_server: AuthServer, op: Callable[[S3Store], object]) -> None:
    store = auth_store(s3_auth_server, s3_auth_server.limited_key_id, TEST_SECRET)
    message = one_line_error(store, op)
    assert "signature refused" in message and "check access_key_id / secret_access_key" in message


def test_access_denied_by_policy(s3_auth_server: AuthServer) -> None:
    auth = s3_auth_server
    store = auth_store(auth, auth.limited_key_id, auth.limited_secret)
    assert store.list() == []  # the user may list, so the credentials themselves are good
    for op in (OPERATIONS["put"], OPERATIONS["get"], OPERATIONS["stat"]):
        message = one_line_error(store, op)
        assert "access denied" in message and "policy" in message
        assert auth.limited_secret not in message


def iter_chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


# Where the credentials come from


@pytest.fixture
def aws_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty AWS configuration: no AWS_* variables, no files, no instance metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def keyless_store(auth: AuthServer, **settings: str) -> S3Store:
    spec = s3_spec(auth.server.endpoint, auth.bucket, access_key_id=None, secret_access_key=None)
    return S3Store.open(spec.model_copy(update=settings))


def test_credentials_from_a_profile(s3_auth_server: AuthServer, aws_home: Path) -> None:
    auth = s3_auth_server
    (aws_home / "credentials").write_text(
        f"[agency]\naws_access_key_id = {auth.limited_key_id}\n"
        f"aws_secret_access_key = {auth.limited_secret}\n"
    )
    assert keyless_store(auth, profile="agency").list() == []  # the server checked them
    with pytest.raises(StoreError) as raised:
        keyless_store(auth, profile="nobody")
    assert "nobody" in str(raised.value) and "~/.aws/config" in str(raised.value)


def test_credentials_from_the_environment(
    s3_auth_server: AuthServer, aws_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = s3_auth_server
    store = keyless_store(auth)
    message = one_line_error(store, OPERATIONS["list"])
    assert "no S3 credentials found" in message and "secret_access_key" in message
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", auth.limited_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", auth.limited_secret)
    assert keyless_store(auth).list() == []


def test_an_access_key_without_its_secret_is_an_inventory_error(s3_server: MotoServer) -> None:
    spec = s3_spec(s3_server.endpoint, "bucket", secret_access_key=None)
    with pytest.raises(InventoryError, match="both access_key_id and secret_access_key"):
        S3Store.open(spec)
