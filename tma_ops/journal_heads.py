"""Signed run heads copied to the store, and the local journal checked against them.

After each run the journal's head (last event id and hash) is signed with this machine's Ed25519
key and put in the site's store at `journal/<journal_id>/heads/<last_id:012d>.json`, under the
store's retention lock when it has one. Whoever rewrites the local journal, chain and head row
included, still cannot rewrite what the store already holds: `check_against_heads` names the
event the rewrite reached, or the events that went missing.

A head that cannot be copied never fails the run: the failure is told and journaled, and the
next run's head covers the events it would have signed.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from tma_ops.config import Inventory, Site
from tma_ops.errors import EXIT_INTERRUPTED, ObjectNotFound, one_line
from tma_ops.journal import VerifyReport, canonical_json
from tma_ops.journal_chain import JournalLike
from tma_ops.model import ObjectLock
from tma_ops.redact import Redactor
from tma_ops.signing import (
    Signer,
    SigningError,
    key_id,
    load_or_create_signer,
    load_public_key,
    verify_signature,
)
from tma_ops.snapshot import lock_objects
from tma_ops.stores import Store, open_store

DEFAULT_SIGNING_KEY = "journal-signing-key.pem"
HEAD_STEP = "journal-head"
_HEAD_FIELDS: dict[str, type] = {
    "journal_id": str,
    "last_id": int,
    "last_hash": str,
    "run_id": str,
    "site": str,
    "signed_at": str,
    "key_id": str,
}


class ChainedEvent(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def hash(self) -> str: ...

    @property
    def run_id(self) -> str: ...


@dataclass(frozen=True)
class AgainstStoreReport:
    """The local journal against the signed heads of the store.

    `ok` only when the local chain is intact and every head verifies and matches. When a rewrite
    is caught, it reached an event after `rewritten_after` and at or before `rewritten_by`.
    """

    ok: bool
    local: VerifyReport | None
    local_end: int
    heads: int
    matching: int
    problems: list[str] = field(default_factory=list)
    newest_matching: int | None = None
    rewritten_after: int | None = None
    rewritten_by: int | None = None


def heads_prefix(journal_id: str) -> str:
    return f"journal/{journal_id}/heads/"


def head_key(journal_id: str, last_id: int) -> str:
    return f"{heads_prefix(journal_id)}{last_id:012d}.json"


def signer_for(state_dir: Path, configured_path: Path | str | None) -> Signer:
    """The journal signing key: the configured one, else `<state_dir>/journal-signing-key.pem`."""
    path = Path(configured_path) if configured_path else Path(state_dir) / DEFAULT_SIGNING_KEY
    return load_or_create_signer(path)


def configured_signing_key(inventory: Inventory | None) -> Path | None:
    return inventory.journal.signing_key if inventory is not None else None


def signing_key_path(state_dir: Path, inventory: Inventory | None) -> Path:
    return configured_signing_key(inventory) or Path(state_dir) / DEFAULT_SIGNING_KEY


def trusted_public_keys(current: bytes, inventory: Inventory | None) -> list[bytes]:
    """The keys whose heads are trusted: the signing key's public half, then the former ones
    the inventory lists (`journal.former_public_keys`), each checked to be an Ed25519 key."""
    trusted = [current]
    for path in inventory.journal.former_public_keys if inventory is not None else []:
        trusted.append(read_public_key(path, "journal.former_public_keys"))
    return trusted


def read_public_key(path: Path, what: str) -> bytes:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{what}: cannot read {path} ({exc.strerror})") from exc
    load_public_key(pem, source=f"{what}: {path}")
    return pem


def sign_head(journal: JournalLike, signer: Signer, run_id: str, site: str) -> dict[str, Any]:
    """The journal's current head, signed: `{"head": {...}, "signature": base64}`."""
    last_id, last_hash = journal.head()
    head = {
        "journal_id": journal.journal_id,
        "last_id": last_id,
        "last_hash": last_hash,
        "run_id": run_id,
        "site": site,
        "signed_at": _utc_now(),
        "key_id": signer.key_id,
    }
    return {"head": head, "signature": signer.sign(canonical_json(head).encode("utf-8"))}


def publish_run_head(
    journal: JournalLike,
    store: Store,
    signer: Signer,
    run_id: str,
    site: str,
    *,
    object_lock: ObjectLock | None = None,
) -> str | None:
    """Put the signed head in the store (locked when the store has a retention); return its key.

    An empty journal has nothing to sign (None). A head already stored for the same last event
    is left as it is: it is the evidence, and a locked object cannot be replaced anyway.
    """
    document = sign_head(journal, signer, run_id, site)
    last_id = document["head"]["last_id"]
    if last_id == 0:
        return None
    key = head_key(journal.journal_id, last_id)
    if _exists(store, key):
        return key
    store.put(key, io.BytesIO(canonical_json(document).encode("utf-8")))
    lock_objects(store, object_lock, [key])
    return key


def _exists(store: Store, key: str) -> bool:
    try:
        store.stat(key)
    except ObjectNotFound:
        return False
    return True


def list_heads(store: Store, journal_id: str) -> list[dict[str, Any]]:
    """The journal's heads in the store, oldest first, each with its `key`.

    A document that cannot be read as a head is returned as `{"key": ..., "damaged": why}` for
    `check_against_heads` to name; a valid one as `{"key": ..., "head": {...}, "signature": ...}`.
    """
    found = []
    for key in store.list(heads_prefix(journal_id)):
        try:
            with store.get(key) as stream:
                raw = stream.read()
        except ObjectNotFound:
            found.append({"key": key, "damaged": "listed, then gone when read"})
            continue
        found.append({"key": key, **parse_head(raw)})
    return found


def parse_head(raw: bytes) -> dict[str, Any]:
    """`{"head", "signature"}` of a stored document, or `{"damaged": why}`."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {"damaged": "not JSON"}
    if not isinstance(document, dict) or set(document) != {"head", "signature"}:
        return {"damaged": "expected an object with exactly 'head' and 'signature'"}
    head, signature = document["head"], document["signature"]
    if not isinstance(signature, str):
        return {"damaged": "signature is not a string"}
    if not isinstance(head, dict) or set(head) != set(_HEAD_FIELDS):
        return {"damaged": f"head must have exactly the fields {', '.join(sorted(_HEAD_FIELDS))}"}
    for name, kind in _HEAD_FIELDS.items():
        value = head[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            expected = "an integer" if kind is int else "a string"
            return {"damaged": f"head {name} is {value!r}, expected {expected}"}
    return {"head": head, "signature": signature}


def check_against_heads(
    events_or_hashes: Iterable[ChainedEvent] | Mapping[int, str],
    heads: Iterable[Mapping[str, Any]],
    public_pem: bytes | Sequence[bytes],
    *,
    local: VerifyReport | None = None,
    journal_id: str | None = None,
) -> AgainstStoreReport:
    """Compare the local events (or their id -> hash) with the store's heads; name each fault.
    `public_pem`: the signing key's public half, or the list of trusted ones (the current key
    first, then former keys still trusted for the heads they signed)."""
    hashes = _hash_by_id(events_or_hashes)
    local_end = max(hashes, default=0)
    heads = list(heads)
    problems = [f"local chain: {local.reason}"] if local is not None and not local.ok else []
    valid: list[dict[str, Any]] = []
    for stored in heads:
        problem = head_problem(stored, public_pem, journal_id)
        if problem is None:
            valid.append(stored["head"])
        else:
            problems.append(problem)
    valid.sort(key=lambda head: int(head["last_id"]))
    beyond = [head for head in valid if head["last_id"] > local_end]
    within = [head for head in valid if head["last_id"] <= local_end]
    matching = [head for head in within if hashes.get(head["last_id"]) == head["last_hash"]]
    differing = [head for head in within if hashes.get(head["last_id"]) != head["last_hash"]]
    if beyond:
        problems.append(_truncation(beyond, local_end))
    bounds: tuple[int | None, int | None] = (None, None)
    if differing:
        problem, bounds = _rewrite(differing, matching, hashes)
        problems.append(problem)
    return AgainstStoreReport(
        ok=not problems,
        local=local,
        local_end=local_end,
        heads=len(heads),
        matching=len(matching),
        problems=problems,
        newest_matching=matching[-1]["last_id"] if matching else None,
        rewritten_after=bounds[0],
        rewritten_by=bounds[1],
    )


def _hash_by_id(events_or_hashes: Iterable[ChainedEvent] | Mapping[int, str]) -> dict[int, str]:
    if isinstance(events_or_hashes, Mapping):
        return {int(event_id): str(value) for event_id, value in events_or_hashes.items()}
    return {event.id: event.hash for event in events_or_hashes}


def head_problem(
    stored: Mapping[str, Any], public_pem: bytes | Sequence[bytes], journal_id: str | None = None
) -> str | None:
    """Why a stored head cannot be trusted (one line naming its key), or None."""
    key = stored.get("key", "?")
    if "damaged" in stored:
        return f"forged or damaged head {key}: {stored['damaged']}"
    head = stored["head"]
    payload = canonical_json(head).encode("utf-8")
    checking = key_for_head(head, public_pem)
    if not verify_signature(checking, payload, stored["signature"]):
        expected = key_id(checking)
        signed_as = "" if head["key_id"] == expected else f", it names key {head['key_id']}"
        return (
            f"forged or damaged head {key}: its signature does not verify with "
            f"key {expected}{signed_as}"
        )
    if journal_id is not None and head["journal_id"] != journal_id:
        return f"forged or damaged head {key}: it signs journal {head['journal_id']}, not this one"
    if not str(key).endswith(f"/{head['last_id']:012d}.json"):
        return f"forged or damaged head {key}: it signs event {head['last_id']}, not its key's"
    return None


def key_for_head(head: Mapping[str, Any], public_pem: bytes | Sequence[bytes]) -> bytes:
    """The trusted key a head names, or the current one (the first) when it names none of them."""
    trusted = [public_pem] if isinstance(public_pem, bytes) else list(public_pem)
    named = [pem for pem in trusted if key_id(pem) == head.get("key_id")]
    return (named or trusted)[0]


def _truncation(beyond: list[dict[str, Any]], local_end: int) -> str:
    newest = beyond[-1]
    more = f" ({len(beyond) - 1} other head(s) beyond it too)" if len(beyond) > 1 else ""
    return (
        f"journal truncated: the store's head of run {newest['run_id']} says event "
        f"{newest['last_id']}, the local journal ends at {local_end}{more}"
    )


def _rewrite(
    differing: list[dict[str, Any]], matching: list[dict[str, Any]], hashes: Mapping[int, str]
) -> tuple[str, tuple[int | None, int | None]]:
    """The oldest differing head, bounded below by the newest head that still matches."""
    first = differing[0]
    event_id = first["last_id"]
    earlier = [head for head in matching if head["last_id"] < event_id]
    bound = earlier[-1] if earlier else None
    what = "is missing from the local journal" if event_id not in hashes else "differs"
    text = (
        f"event {event_id} {what} from the signed head of run {first['run_id']} signed at "
        f"{first['signed_at']}: the journal was rewritten at or before event {event_id}"
    )
    if bound is not None:
        text += (
            f", after event {bound['last_id']} (which matches the head of run {bound['run_id']})"
        )
    if len(differing) > 1:
        text += f"; {len(differing) - 1} later head(s) differ too"
    return text, (bound["last_id"] if bound else 0, event_id)


@contextmanager
def head_published_after(
    journal: JournalLike,
    inventory: Inventory,
    state_dir: Path,
    site: Site,
    *,
    run_id: str | None = None,
    enabled: bool = True,
) -> Iterator[None]:
    """Publish the journal's signed head to the site's store when the block ends, however it
    ends (an interruption excepted: the process is asked to stop, not to upload)."""
    try:
        yield
    except BaseException as exc:
        if enabled and not is_interruption(exc):
            publish_after_run(journal, inventory, state_dir, site, run_id=run_id)
        raise
    if enabled:
        publish_after_run(journal, inventory, state_dir, site, run_id=run_id)


def is_interruption(exc: BaseException) -> bool:
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return True
    return getattr(exc, "exit_code", None) == EXIT_INTERRUPTED


def publish_after_run(
    journal: JournalLike,
    inventory: Inventory,
    state_dir: Path,
    site: Site,
    *,
    run_id: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> str | None:
    """`publish_run_head` that never raises: a failure is told in one line and journaled."""
    tell = warn or _warn
    redact = Redactor(inventory.secrets())
    run = run_id or "unknown"
    try:
        run = run_id or _latest_run(journal, site.name)
        signer = signer_for(state_dir, configured_signing_key(inventory))
        store = open_store(site.store)
        return publish_run_head(
            journal, store, signer, run, site.name, object_lock=site.store.object_lock
        )
    except Exception as exc:  # whatever the cause, the run's outcome stands
        why = redact.text(one_line(exc))
    tell(
        f"tma-ops: warning: {site.name}: the journal's signed head was not copied to the store "
        f"({why}); the next run's head will cover it"
    )
    try:
        journal.append(
            run_id=run, site=site.name, step=HEAD_STEP, status="failed", data={"error": why}
        )
    except Exception as exc:  # the journal itself failing: already the run's own problem
        failure = redact.text(one_line(exc))
        tell(
            f"tma-ops: warning: {site.name}: the failure could not be journaled either ({failure})"
        )
    return None


def _latest_run(journal: JournalLike, site: str) -> str:
    events = journal.events(site=site)
    return events[-1].run_id if events else "none"


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
