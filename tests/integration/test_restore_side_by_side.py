"""A restore stages the dump and the files side by side: one progress display for both, and a
failure on either side stops the other and leaves nothing staged (real tar, zstd, SQLite, files).
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from site_support import MiB, leftovers, site, state_of

from tma_ops.config import Site
from tma_ops.errors import IntegrityError
from tma_ops.parts import Sealing, reading_part, upload_part
from tma_ops.progress import TransferProgress
from tma_ops.restore import restore_snapshot
from tma_ops.snapshot import create_snapshot
from tma_ops.stores.file import FileStore
from tma_ops.streams import ReadingStopped, Stoppable

pytestmark = pytest.mark.integration
_FIXTURES = (site,)


class RecordingProgress(TransferProgress):
    """Every transfer opened (label, total) and the bytes advanced, from whatever thread."""

    def __init__(self) -> None:
        super().__init__(enabled=False)
        self.opened: list[tuple[str, int | None]] = []
        self.advanced = 0
        self._lock = threading.Lock()

    @contextmanager
    def transfer(
        self, description: str, total: int | None = None
    ) -> Iterator[Callable[[int], None]]:
        self.opened.append((description, total))
        yield self._advance

    def _advance(self, count: int) -> None:
        with self._lock:
            self.advanced += count


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


def test_both_parts_are_one_transfer_of_their_stored_bytes(site: Site, store: FileStore) -> None:
    manifest = create_snapshot(site, "production", store)
    progress = RecordingProgress()

    restore_snapshot(site, manifest, "staging", store, progress=progress)

    stored = manifest.parts["db"].size + manifest.parts["files"].size
    assert progress.opened == [("restore database and files", stored)]
    assert progress.advanced == stored
    assert state_of(site, "staging") == state_of(site, "production")
    assert leftovers(site) == []


@pytest.mark.parametrize("part", ["db", "files"])
def test_a_part_that_cannot_be_read_stops_the_restore_and_leaves_nothing(
    site: Site, store: FileStore, part: str
) -> None:
    manifest = create_snapshot(site, "production", store)
    key = manifest.parts[part].objects()[0].key
    (store.root / key).write_bytes(b"not zstd at all\n" * 4096)
    before = state_of(site, "staging")

    with pytest.raises(IntegrityError, match=key):
        restore_snapshot(site, manifest, "staging", store)

    assert state_of(site, "staging") == before
    assert leftovers(site) == []


def test_a_stopped_part_stops_reading_and_is_not_blamed_on_the_bytes(
    tmp_path: Path, store: FileStore
) -> None:
    size = 48 * MiB  # well beyond what the stages read ahead (a few MiB each)
    upload = upload_part(
        store,
        "big.bin.zst",
        lambda: open_random(tmp_path, size),
        sealing=Sealing(),
        progress=RecordingProgress(),
        total=size,
    )
    stop, progress = threading.Event(), RecordingProgress()

    with (
        pytest.raises(ReadingStopped),
        reading_part(store, upload, Sealing(), progress, "big") as plain,
    ):
        reader = Stoppable(plain, stop)
        assert len(reader.read(MiB)) == MiB
        stop.set()
        reader.read(MiB)

    # Read ahead a few chunks at most, not the rest of the part for a digest nobody needs.
    assert progress.advanced < size // 2


@contextmanager
def open_random(tmp_path: Path, size: int) -> Iterator[io.BufferedReader]:
    path = tmp_path / "random.bin"
    path.write_bytes(os.urandom(size))
    with path.open("rb") as source:
        yield source
