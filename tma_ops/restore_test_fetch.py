"""The fetch of a restore test: every stored part of a snapshot read from the off-site store,
checked against the manifest, and kept in a private working store for the restore.

The parts are read once, from the site's own store (no cached copy is ever reused): what is
restored next is exactly what was fetched and checked. A missing, truncated or altered object is
named before anything reaches the sandbox.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from tma_ops.errors import IntegrityError, ObjectNotFound
from tma_ops.parts import Part
from tma_ops.progress import TransferProgress
from tma_ops.snapshot import Manifest, manifest_key
from tma_ops.stores import Store
from tma_ops.streams import HashingReader


class PartFault(IntegrityError):
    """A stored part is missing or does not match its manifest: the backup itself is damaged."""


@dataclass(frozen=True)
class PartRecord:
    """One stored object a restore of the snapshot reads (a files chain has one per link)."""

    name: str  # db | files
    snapshot_id: str
    part: Part

    def as_event(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "name": self.name,
            "snapshot_id": self.snapshot_id,
            "key": self.part.key,
            "sha256": self.part.sha256 or self.part.plain_sha256,
            "size": self.part.plain_size,
            "stored_size": self.part.size,
        }
        if self.part.chunks:
            event["sha256_of"] = "plain bytes, joined"
            event["chunks"] = [
                {"key": chunk.key, "sha256": chunk.sha256, "stored_size": chunk.size}
                for chunk in self.part.chunks
            ]
        return event


def parts_to_read(manifest: Manifest, chain: list[Manifest]) -> list[PartRecord]:
    """The snapshot's database dump, then the files archive of every link, oldest first."""
    records = [PartRecord("db", manifest.snapshot_id, manifest.parts["db"])]
    records += [PartRecord("files", link.snapshot_id, link.parts["files"]) for link in chain]
    return records


def fetch_and_verify(
    store: Store,
    records: list[PartRecord],
    chain: list[Manifest],
    work: Store,
    progress: TransferProgress,
) -> int:
    """Copy every part into `work` checking its SHA-256 and size, then the chain's manifests;
    return the bytes read from `store`. Raises PartFault naming the first damaged part."""
    total = 0
    for record in records:
        total += _fetch_one(store, record, work, progress)
    for link in chain:
        work.put(manifest_key(link.site, link.snapshot_id), io.BytesIO(link.to_json()))
    return total


def _fetch_one(store: Store, record: PartRecord, work: Store, progress: TransferProgress) -> int:
    label = f"fetch {record.name} of {record.snapshot_id}"
    total = 0
    with progress.transfer(label, record.part.size) as advance:
        for part in record.part.objects():
            try:
                with store.get(part.key) as stream:
                    stored = HashingReader(stream, advance)
                    work.put(part.key, stored, size_hint=part.size)
            except ObjectNotFound as exc:
                raise PartFault(
                    f"part {record.name} of snapshot {record.snapshot_id} is missing: "
                    f"{part.key} is not in {store.url}"
                ) from exc
            fault = stored_fault(part, stored.size, stored.sha256)
            if fault:
                raise PartFault(f"part {record.name} of snapshot {record.snapshot_id}: {fault}")
            total += stored.size
    return total


def stored_fault(part: Part, size: int, sha256: str) -> str | None:
    """What is wrong with the stored bytes read for `part`, or None when they match."""
    if size < part.size:
        return f"{part.key} is truncated: {size} bytes stored, the manifest records {part.size}"
    if size > part.size:
        return f"{part.key} is too long: {size} bytes stored, the manifest records {part.size}"
    if sha256 != part.sha256:
        return (
            f"{part.key}: SHA-256 mismatch (stored bytes hash to {sha256[:12]}…, "
            f"the manifest records {part.sha256[:12]}…)"
        )
    return None
