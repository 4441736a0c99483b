"""`verify` against a real S3 API server: damage done through the S3 API itself is named."""

from __future__ import annotations

import pytest
from harness.s3server import MotoServer, client, s3_spec
from site_support import site

from tma_ops.config import Site
from tma_ops.snapshot import create_snapshot
from tma_ops.stores import open_store
from tma_ops.verify import Kind, VerifyOptions, verify_site

pytestmark = pytest.mark.integration
_FIXTURES = (site,)
PREFIX = "backups"


def test_flipped_truncated_and_missing_objects_in_a_bucket_are_named(
    site: Site, s3_server: MotoServer, s3_bucket: str
) -> None:
    spec = s3_spec(s3_server.endpoint, s3_bucket, PREFIX)
    store = open_store(spec)
    site = site.model_copy(update={"store": spec})
    first = create_snapshot(site, "production", store)
    second = create_snapshot(site, "production", store)
    assert verify_site(store, site.name, VerifyOptions(read_data=True)).problems == []

    s3 = client(s3_server.endpoint)
    flipped, truncated = first.parts["files"].key, first.parts["db"].chunks[0].key
    missing = second.parts["files"].key
    data = s3.get_object(Bucket=s3_bucket, Key=f"{PREFIX}/{flipped}")["Body"].read()
    middle = len(data) // 2
    damaged = data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :]
    s3.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/{flipped}", Body=damaged)
    data = s3.get_object(Bucket=s3_bucket, Key=f"{PREFIX}/{truncated}")["Body"].read()
    s3.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/{truncated}", Body=data[:-10])
    store.delete(missing)

    report = verify_site(store, site.name, VerifyOptions(read_data=True))
    found = {(problem.kind, problem.key) for problem in report.problems}
    assert found == {
        (Kind.CORRUPTED, flipped),
        (Kind.SIZE_MISMATCH, truncated),
        (Kind.MISSING, missing),
    }
    structure = verify_site(store, site.name)
    assert {(p.kind, p.key) for p in structure.problems} == {
        (Kind.SIZE_MISMATCH, truncated),
        (Kind.MISSING, missing),
    }
