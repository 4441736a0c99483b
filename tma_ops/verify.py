"""Re-read a site's stored snapshots and name every missing, truncated or corrupted object.

Three levels, like `restic check`:
  structure         every manifest parses, every part it lists exists with its recorded size,
                    every increment's parent chain is complete; stray objects are orphans
  read-data         also download every part and compare the SHA-256 and size of its bytes
  read-data-subset  read a random share of the parts (about PERCENT of their bytes)

Only the stored bytes are checked (never decrypted nor decompressed): no private key is needed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from tma_ops.errors import (
    EXIT_INTEGRITY,
    EXIT_OK,
    EXIT_WARNINGS,
    ObjectNotFound,
    StoreError,
    TmaError,
)
from tma_ops.progress import SILENT, TransferProgress
from tma_ops.snapshot import Manifest, manifest_key, snapshots_prefix
from tma_ops.stores import Store
from tma_ops.stores.common import check_key
from tma_ops.streams import HashingReader


class Kind(StrEnum):
    MISSING = "missing"
    SIZE_MISMATCH = "size_mismatch"
    CORRUPTED = "corrupted"
    UNREADABLE_MANIFEST = "unreadable_manifest"
    MISSING_PARENT = "missing_parent"
    ORPHAN = "orphan"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the store. `snapshot_id` is None for an object outside any snapshot."""

    kind: Kind
    snapshot_id: str | None
    key: str
    part: str | None = None
    expected_size: int | None = None
    found_size: int | None = None
    expected_sha256: str | None = None
    found_sha256: str | None = None
    detail: str = ""

    @property
    def is_warning(self) -> bool:
        return self.kind is Kind.ORPHAN

    def describe(self) -> str:
        where = f"snapshot {self.snapshot_id}" + (f", part {self.part}" if self.part else "")
        if self.kind is Kind.MISSING:
            return f"missing: {self.key} ({where}; {self.expected_size} bytes recorded)"
        if self.kind is Kind.SIZE_MISMATCH:
            what = "truncated" if (self.found_size or 0) < (self.expected_size or 0) else "too big"
            return (
                f"{what}: {self.key} ({where}): {self.found_size} bytes stored, "
                f"manifest records {self.expected_size}"
            )
        if self.kind is Kind.CORRUPTED:
            return (
                f"corrupted: {self.key} ({where}): stored bytes hash to "
                f"{(self.found_sha256 or '')[:12]}…, manifest records "
                f"{(self.expected_sha256 or '')[:12]}…"
            )
        if self.kind is Kind.UNREADABLE_MANIFEST:
            return f"unreadable manifest: {self.key} ({where}): {self.detail}"
        if self.kind is Kind.MISSING_PARENT:
            return f"missing parent: {where} cannot be restored: {self.detail} ({self.key})"
        owner = f"{where} has no manifest" if self.snapshot_id else "outside any snapshot"
        why = self.detail or "left by an interrupted snapshot, `tma-ops prune` removes it"
        return f"orphan: {self.key} ({owner}; {why})"


@dataclass(frozen=True)
class VerifyOptions:
    """What to read besides the structure: every part, a share of them (seeded), or none."""

    read_data: bool = False
    subset_percent: float | None = None
    seed: int = 0


STRUCTURE_ONLY = VerifyOptions()


@dataclass
class VerifyReport:
    site: str
    snapshots: int = 0
    parts: int = 0
    parts_read: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.is_warning]

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_INTEGRITY
        return EXIT_WARNINGS if self.warnings else EXIT_OK


@dataclass(frozen=True)
class PartRef:
    """A manifest's reference to a stored object; increments may share objects with parents."""

    snapshot_id: str
    name: str
    size: int
    sha256: str


# --- pure decisions ---------------------------------------------------------------------------


def parse_subset_percent(text: str) -> float:
    """'10' or '10%' -> 10.0; anything outside (0, 100] is refused with a one-line reason."""
    raw = text.strip().removesuffix("%").strip()
    try:
        percent = float(raw)
    except ValueError:
        percent = math.nan
    if not math.isfinite(percent) or not 0 < percent <= 100:
        raise TmaError(
            f"--read-data-subset: expected a percentage above 0 and at most 100 "
            f"(like 10 or 10%), got {text!r}"
        )
    return percent


def choose_parts_to_read(sizes: Mapping[str, int], percent: float, seed: int) -> list[str]:
    """Keys of a random subset of the objects holding about `percent` of their bytes, sorted.

    The keys are shuffled by the seed and taken in that order while they fit in the byte budget;
    those too big for what is left are skipped, but the first one is always taken. Any object can
    come first, so runs with different seeds read every object over time, however big.
    """
    if percent >= 100:
        return sorted(sizes)
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    budget = sum(sizes.values()) * percent / 100
    chosen: list[str] = []
    used = 0
    for key in order:
        if not chosen or used + sizes[key] <= budget:
            chosen.append(key)
            used += sizes[key]
    return sorted(chosen)


def broken_parent_chains(
    site: str, parents: Mapping[str, str | None], unreadable: Iterable[str] = ()
) -> list[Problem]:
    """A problem for each snapshot whose chain of parents is broken: an increment needs them all.

    `parents` maps each readable snapshot to its parent (None for a full snapshot); `unreadable`
    holds the snapshots whose manifest exists but cannot be read.
    """
    unreadable = set(unreadable)
    problems = []
    for snapshot_id in sorted(parents):
        broken = _chain_break(snapshot_id, parents, unreadable)
        if broken is not None:
            ancestor, detail = broken
            key = manifest_key(site, ancestor)
            problems.append(Problem(Kind.MISSING_PARENT, snapshot_id, key, detail=detail))
    return problems


def _chain_break(
    snapshot_id: str, parents: Mapping[str, str | None], unreadable: set[str]
) -> tuple[str, str] | None:
    """(id of the broken link, explanation), or None when the chain is whole."""
    seen = {snapshot_id}
    child, ancestor = snapshot_id, parents[snapshot_id]
    while ancestor is not None:
        link = "its parent" if child == snapshot_id else f"its ancestor {child} has parent"
        if ancestor in unreadable:
            return ancestor, f"{link} {ancestor}, whose manifest is unreadable"
        if ancestor not in parents:
            return ancestor, f"{link} {ancestor}, which is missing"
        if ancestor in seen:
            return ancestor, f"its chain of parents loops back to {ancestor}"
        seen.add(ancestor)
        child, ancestor = ancestor, parents[ancestor]
    return None


def group_by_snapshot(keys: Iterable[str], prefix: str) -> tuple[dict[str, list[str]], list[str]]:
    """Keys under `<prefix><id>/` by id, and the stray keys directly under the prefix."""
    groups: dict[str, list[str]] = {}
    strays = []
    for key in keys:
        snapshot_id, slash, _rest = key.removeprefix(prefix).partition("/")
        if slash:
            groups.setdefault(snapshot_id, []).append(key)
        else:
            strays.append(key)
    return groups, strays


# --- verification -----------------------------------------------------------------------------


def verify_site(
    store: Store,
    site: str,
    options: VerifyOptions = STRUCTURE_ONLY,
    progress: TransferProgress = SILENT,
) -> VerifyReport:
    """Check every snapshot of `site` in `store` at the level `options` asks for."""
    report = VerifyReport(site)
    prefix = snapshots_prefix(site)
    groups, strays = group_by_snapshot(store.list(prefix), prefix)
    manifests: dict[str, Manifest] = {}
    unreadable: list[str] = []
    for snapshot_id, keys in sorted(groups.items()):
        key = manifest_key(site, snapshot_id)
        if key not in keys:
            continue
        report.snapshots += 1
        manifest_or_problem = read_manifest(store, key, snapshot_id)
        if isinstance(manifest_or_problem, Problem):
            report.problems.append(manifest_or_problem)
            unreadable.append(snapshot_id)
        else:
            manifests[snapshot_id] = manifest_or_problem
    parents = {sid: m.parent for sid, m in manifests.items()}
    report.problems += broken_parent_chains(site, parents, unreadable)
    report.problems += orphans(site, groups, strays, parents)
    _check_parts(store, part_references(manifests.values()), options, progress, report)
    return report


def orphans(
    site: str,
    groups: Mapping[str, list[str]],
    strays: Iterable[str],
    parents: Mapping[str, str | None],
) -> list[Problem]:
    """Objects outside any snapshot that has a manifest; those of a lost parent say so."""
    children = {parent: child for child, parent in sorted(parents.items()) if parent}
    stray = "tma-ops never writes there; remove it by hand once checked"
    problems = [Problem(Kind.ORPHAN, None, key, detail=stray) for key in strays]
    for snapshot_id, keys in sorted(groups.items()):
        if manifest_key(site, snapshot_id) in keys:
            continue
        child = children.get(snapshot_id)
        detail = f"data of the parent of increment {child}: do not delete it" if child else ""
        problems += [Problem(Kind.ORPHAN, snapshot_id, key, detail=detail) for key in keys]
    return problems


def read_manifest(store: Store, key: str, snapshot_id: str) -> Manifest | Problem:
    """The manifest, or the problem that makes it unusable. Store failures are raised."""
    try:
        with store.get(key) as stream:
            raw = stream.read()
    except ObjectNotFound:
        return Problem(Kind.UNREADABLE_MANIFEST, snapshot_id, key, detail="gone while being read")
    try:
        manifest = Manifest.from_json(raw, key)
        for name, part in manifest.parts.items():
            for stored in part.objects():
                _check_part_key(name, stored.key)
    except Exception as exc:  # parsing is local: whatever it fails with, the manifest is broken
        detail = str(exc).removeprefix(f"{key}: ")
        return Problem(Kind.UNREADABLE_MANIFEST, snapshot_id, key, detail=detail)
    if manifest.snapshot_id != snapshot_id:
        detail = f"it records snapshot id {manifest.snapshot_id!r}"
        return Problem(Kind.UNREADABLE_MANIFEST, snapshot_id, key, detail=detail)
    return manifest


def _check_part_key(name: str, key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"part {name!r} has no object key")
    try:
        check_key(key)
    except StoreError as exc:
        raise ValueError(f"part {name!r}: {exc}") from exc


def part_references(manifests: Iterable[Manifest]) -> dict[str, list[PartRef]]:
    """Every referenced object key, with the manifests' records of it."""
    references: dict[str, list[PartRef]] = {}
    for manifest in manifests:
        for name, part in manifest.parts.items():
            for stored in part.objects():
                ref = PartRef(manifest.snapshot_id, name, stored.size, stored.sha256)
                references.setdefault(stored.key, []).append(ref)
    return dict(sorted(references.items()))


def _check_parts(
    store: Store,
    references: dict[str, list[PartRef]],
    options: VerifyOptions,
    progress: TransferProgress,
    report: VerifyReport,
) -> None:
    report.parts = len(references)
    sound_sizes: dict[str, int] = {}
    for key, refs in references.items():
        try:
            size = store.stat(key).size
        except ObjectNotFound:
            report.problems += [_missing(key, ref) for ref in refs]
            continue
        mismatches = [_size_mismatch(key, ref, size) for ref in refs if ref.size != size]
        report.problems += mismatches
        if not mismatches:
            sound_sizes[key] = size
    for key in _keys_to_read(sound_sizes, options):
        _read_and_compare(store, key, references[key], progress, report)


def _keys_to_read(sizes: dict[str, int], options: VerifyOptions) -> list[str]:
    if options.read_data:
        return sorted(sizes)
    if options.subset_percent is not None:
        return choose_parts_to_read(sizes, options.subset_percent, options.seed)
    return []


def _read_and_compare(
    store: Store,
    key: str,
    refs: list[PartRef],
    progress: TransferProgress,
    report: VerifyReport,
) -> None:
    label = f"verify {refs[0].snapshot_id} {refs[0].name}"
    try:
        with progress.transfer(label, refs[0].size) as advance, store.get(key) as stream:
            reader = HashingReader(stream, advance)
            reader.drain()
    except ObjectNotFound:
        report.problems += [_missing(key, ref) for ref in refs]
        return
    report.parts_read += 1
    report.bytes_read += reader.size
    for ref in refs:
        if reader.size != ref.size:
            report.problems.append(_size_mismatch(key, ref, reader.size))
        elif reader.sha256 != ref.sha256:
            report.problems.append(_corrupted(key, ref, reader.sha256))


def _missing(key: str, ref: PartRef) -> Problem:
    return Problem(Kind.MISSING, ref.snapshot_id, key, ref.name, expected_size=ref.size)


def _size_mismatch(key: str, ref: PartRef, found: int) -> Problem:
    return Problem(
        Kind.SIZE_MISMATCH, ref.snapshot_id, key, ref.name, expected_size=ref.size, found_size=found
    )


def _corrupted(key: str, ref: PartRef, found_sha256: str) -> Problem:
    return Problem(
        Kind.CORRUPTED,
        ref.snapshot_id,
        key,
        ref.name,
        expected_size=ref.size,
        found_size=ref.size,
        expected_sha256=ref.sha256,
        found_sha256=found_sha256,
    )
