"""Offline verifier of tma-ops audit exports (json, csv, html).

This one file is all an auditor needs beside the journal's public key: it imports only the
standard library and `cryptography`. Run it as

    python3 audit_verifier.py EXPORT --public-key journal-signing-key.pem.pub

It checks the export's Ed25519 signature, then (json and html) the chain proof: every exported
journal event is re-hashed from its content, the hash skeleton (id, prev_hash, hash) must link
without a gap from the first exported event on, and the signed head that covers it must carry a
valid signature and the skeleton's hash at its event. It prints each check and exits 0 when all
pass, 6 naming the first problem otherwise, 2 when the file or key cannot be read.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and (Path(__file__).parent / "__init__.py").exists():
    # Run in place inside the tma_ops package, whose modules (bisect.py...) would shadow the
    # standard library's: never look them up there.
    here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != here]

import argparse
import base64
import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EXPORT_FORMAT = "tma-ops audit export"
CSV_SIGNATURE_PREFIX = "# tma-ops-signature "
HTML_SIGNATURE_PREFIX = "<!-- tma-ops-signature "
HTML_SIGNATURE_SUFFIX = " -->"
EMBEDDED_JSON_ID = "tma-audit-export"
EXIT_OK, EXIT_UNREADABLE, EXIT_FAILED = 0, 2, 6
_EMBEDDED = re.compile(
    rb'<script type="application/json" id="' + EMBEDDED_JSON_ID.encode() + rb'">(.*?)</script>',
    re.DOTALL,
)


class VerificationFailed(Exception):
    """The first problem found, as one line."""


class Unreadable(Exception):
    """The export or a key cannot be read at all."""


@dataclass
class Outcome:
    """What was checked, one line each, in order."""

    lines: list[str] = field(default_factory=list)

    def ok(self, line: str) -> None:
        self.lines.append(line)


def canonical_json(value: Any) -> str:
    """The same text as tma_ops.journal.canonical_json."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def event_hash(fields: dict[str, Any]) -> str:
    """The same hash as tma_ops.journal.event_hash: fields without `hash`, prev_hash included."""
    payload = fields["prev_hash"] + canonical_json(fields)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --- keys and signatures ------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """The same id as tma_ops.signing.key_id."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def load_public_keys(paths: Sequence[Path]) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            pem = Path(path).read_bytes()
        except OSError as exc:
            raise Unreadable(f"public key {path}: cannot read ({exc.strerror or exc})") from None
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise Unreadable(
                f"public key {path}: expected an Ed25519 public key in PEM ({exc})"
            ) from None
        if not isinstance(key, Ed25519PublicKey):
            raise Unreadable(
                f"public key {path}: expected an Ed25519 key, not {type(key).__name__}"
            )
        keys[key_id(key)] = key
    return keys


def check_signature(
    keys: dict[str, Ed25519PublicKey], signer_id: str, payload: bytes, signature: str, what: str
) -> None:
    """Raise VerificationFailed unless one of `keys`, the one named `signer_id`, signed it."""
    if signer_id not in keys:
        given = ", ".join(sorted(keys)) or "none"
        raise VerificationFailed(
            f"{what}: signed by key {signer_id}, which is not the given public key ({given})"
        )
    try:
        keys[signer_id].verify(base64.b64decode(signature, validate=True), payload)
    except (InvalidSignature, ValueError):
        raise VerificationFailed(
            f"{what}: the signature does not verify with key {signer_id} "
            "(the content was changed after it was signed)"
        ) from None


# --- the chain proof ----------------------------------------------------------------------


def check_events_rehash(events: Sequence[dict[str, Any]]) -> None:
    """Every exported event's hash, recomputed from its content, is the one it carries."""
    for event in events:
        fields = {name: value for name, value in event.items() if name != "hash"}
        if event_hash(fields) != event.get("hash"):
            raise VerificationFailed(
                f"event {event.get('id')}: hash does not match its content (the event was changed)"
            )


def check_skeleton(skeleton: Sequence[Sequence[Any]]) -> None:
    """Consecutive ids, each prev_hash equal to the previous entry's hash."""
    for previous, entry in itertools.pairwise(skeleton):
        if entry[0] != previous[0] + 1:
            missing = previous[0] + 1
            raise VerificationFailed(
                f"skeleton: event {missing} is missing (after event {previous[0]}, "
                f"next is {entry[0]})"
            )
        if entry[1] != previous[2]:
            raise VerificationFailed(
                f"skeleton: event {entry[0]} does not link to event {previous[0]} "
                "(prev_hash differs from its hash)"
            )


def check_events_in_skeleton(
    events: Sequence[dict[str, Any]], skeleton: Sequence[Sequence[Any]]
) -> None:
    links = {entry[0]: (entry[1], entry[2]) for entry in skeleton}
    for event in events:
        link = links.get(event["id"])
        if link is None:
            raise VerificationFailed(f"event {event['id']}: not in the hash skeleton")
        if link != (event["prev_hash"], event["hash"]):
            raise VerificationFailed(f"event {event['id']}: differs from the hash skeleton's")


def check_covering_head(
    head_document: dict[str, Any] | None,
    skeleton: Sequence[Sequence[Any]],
    journal_id: str,
    keys: dict[str, Ed25519PublicKey],
) -> int | None:
    """Check the covering head against the skeleton; return the last event id it covers."""
    if head_document is None:
        return None
    head = head_document["head"]
    what = f"signed head of event {head['last_id']} (run {head['run_id']})"
    payload = canonical_json(head).encode("utf-8")
    check_signature(keys, head["key_id"], payload, head_document["signature"], what)
    if head["journal_id"] != journal_id:
        raise VerificationFailed(f"{what}: of journal {head['journal_id']}, not {journal_id}")
    links = {entry[0]: entry[2] for entry in skeleton}
    if links.get(head["last_id"]) != head["last_hash"]:
        raise VerificationFailed(
            f"{what}: its hash is not the skeleton's hash of event {head['last_id']}"
        )
    return int(head["last_id"])


def uncovered_ids(events: Sequence[dict[str, Any]], covered_through: int | None) -> list[int]:
    return [e["id"] for e in events if covered_through is None or e["id"] > covered_through]


def check_restore_tests(rows: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]) -> None:
    """Each reported restore test says what its final journal event says."""
    by_id = {event["id"]: event for event in events}
    for row in rows:
        event = by_id.get(row["event_id"])
        where = f"restore test {row['run_id']} of {row['site']}"
        if event is None or event["step"] != "restore-test":
            raise VerificationFailed(f"{where}: its event {row['event_id']} is not in the proof")
        expected = {"site": event["site"], "run_id": event["run_id"], "status": event["status"]}
        expected.update(event["data"])
        for name, value in expected.items():
            if row.get(name) != value:
                raise VerificationFailed(
                    f"{where}: {name} is {row.get(name)!r}, its journal event says {value!r}"
                )


def check_recorded_state(export: dict[str, Any]) -> None:
    """What the exporter found wrong at export time fails the verification too."""
    chain = export["journal"]["verify"]
    if not chain["ok"]:
        raise VerificationFailed(f"journal chain was broken when exported: {chain['reason']}")
    for head in export["signed_heads"]:
        if head.get("problem"):
            raise VerificationFailed(
                f"signed head {head['key']} in {head['store']}: {head['problem']}"
            )


# --- the three formats --------------------------------------------------------------------


def split_signature_line(data: bytes, prefix: str, suffix: str = "") -> tuple[bytes, str, str]:
    """(signed bytes, key id, signature) of a file whose last line is its signature."""
    text = data[:-1] if data.endswith(b"\n") else data
    cut = text.rfind(b"\n") + 1
    body, line = data[:cut], text[cut:].decode("utf-8", errors="replace")
    if not (line.startswith(prefix) and line.endswith(suffix)):
        raise VerificationFailed(f"signature: the last line is not a {prefix.strip()!r} line")
    parts = line[len(prefix) : len(line) - len(suffix)].split()
    if len(parts) != 3 or parts[0] != "ed25519":
        raise VerificationFailed("signature: expected 'ed25519 <key id> <base64>' on the last line")
    return body, parts[1], parts[2]


def verify_json_document(
    document: dict[str, Any],
    keys: dict[str, Ed25519PublicKey],
    outcome: Outcome,
    what: str = "signature",
) -> None:
    try:
        export, signature = document["export"], document["signature"]
        if export.get("format") != EXPORT_FORMAT or signature.get("algorithm") != "ed25519":
            raise VerificationFailed(f"not a {EXPORT_FORMAT} signed with ed25519")
        payload = canonical_json(export).encode("utf-8")
        check_signature(keys, signature["key_id"], payload, signature["value"], what)
        outcome.ok(f"{what}: ok, ed25519 by {signature['key_id']}")
        verify_proof(export, keys, outcome)
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise VerificationFailed(
            f"export: malformed document ({type(exc).__name__}: {exc})"
        ) from None


def verify_proof(
    export: dict[str, Any], keys: dict[str, Ed25519PublicKey], outcome: Outcome
) -> None:
    proof = export["proof"]
    events, skeleton = proof["events"], proof["skeleton"]
    check_events_rehash(events)
    outcome.ok(f"events: {len(events)} exported event(s) re-hashed from their content, all match")
    check_skeleton(skeleton)
    check_events_in_skeleton(events, skeleton)
    if skeleton:
        outcome.ok(
            f"skeleton: {len(skeleton)} link(s) from event {skeleton[0][0]} to event "
            f"{skeleton[-1][0]}, intact, every exported event in place"
        )
    covered = check_covering_head(
        proof["covering_head"], skeleton, export["journal"]["journal_id"], keys
    )
    outcome.ok(_coverage_line(proof["covering_head"], covered))
    uncovered = uncovered_ids(events, covered)
    if uncovered != proof["not_yet_covered"]:
        raise VerificationFailed(
            f"proof: events {uncovered} are not covered by the signed head, the export says "
            f"{proof['not_yet_covered']}"
        )
    if uncovered:
        outcome.ok(f"not yet covered by a signed head: event(s) {_ids(uncovered)}")
    check_restore_tests(export["restore_tests"], events)
    outcome.ok(f"restore tests: {len(export['restore_tests'])} row(s) match their journal events")
    check_recorded_state(export)
    outcome.ok(
        f"recorded at export: journal chain ok ({export['journal']['verify']['reason']}), "
        f"{len(export['signed_heads'])} signed head(s) found, none damaged or mismatching"
    )


def _coverage_line(head_document: dict[str, Any] | None, covered: int | None) -> str:
    if head_document is None or covered is None:
        return "covering head: none (no signed head reaches the exported events)"
    head = head_document["head"]
    return (
        f"covering head: event {covered} of run {head['run_id']} ({head['site']}), signed at "
        f"{head['signed_at']} by {head['key_id']}: signature ok, hash matches the skeleton"
    )


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids)


def verify_bytes(
    data: bytes, keys: dict[str, Ed25519PublicKey], outcome: Outcome | None = None
) -> Outcome:
    """Check an export of any format; raise VerificationFailed at the first problem.

    The lines of the checks passed so far are in `outcome` (when given) even then."""
    outcome = outcome if outcome is not None else Outcome()
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        outcome.ok("format: json")
        verify_json_document(_parse_json(data, "export"), keys, outcome)
    elif stripped[:15].lower().startswith(b"<!doctype html") or stripped.startswith(b"<html"):
        outcome.ok("format: html")
        body, signer, signature = split_signature_line(
            data, HTML_SIGNATURE_PREFIX, HTML_SIGNATURE_SUFFIX
        )
        check_signature(keys, signer, body, signature, "signature")
        outcome.ok(f"signature: ok over the page's {len(body)} bytes, ed25519 by {signer}")
        verify_json_document(_embedded_json(body), keys, outcome, "embedded export's signature")
    else:
        outcome.ok("format: csv (a csv carries no chain proof: only its signature is checked)")
        body, signer, signature = split_signature_line(data, CSV_SIGNATURE_PREFIX)
        check_signature(keys, signer, body, signature, "signature")
        outcome.ok(f"signature: ok over the file's {len(body)} bytes, ed25519 by {signer}")
    return outcome


def _parse_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise VerificationFailed(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise VerificationFailed(f"{what}: expected a JSON object")
    return value


def _embedded_json(page: bytes) -> dict[str, Any]:
    found = _EMBEDDED.search(page)
    if found is None:
        raise VerificationFailed(f"html: no embedded export (script id {EMBEDDED_JSON_ID!r})")
    return _parse_json(found.group(1), "html: embedded export")


def verify_file(path: Path, public_keys: Sequence[Path], outcome: Outcome | None = None) -> Outcome:
    keys = load_public_keys(public_keys)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise Unreadable(f"export {path}: cannot read ({exc.strerror or exc})") from None
    return verify_bytes(data, keys, outcome)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="audit_verifier.py",
        description="Verify a tma-ops audit export (json, csv or html) with the journal's "
        "public key: its signature and, for json and html, its chain proof.",
    )
    parser.add_argument("export", type=Path, help="the exported file")
    parser.add_argument(
        "--public-key",
        type=Path,
        action="append",
        required=True,
        metavar="PEM",
        help="the journal's public key (journal-signing-key.pem.pub); repeat for older keys",
    )
    args = parser.parse_args(argv)
    outcome = Outcome()
    try:
        verify_file(args.export, args.public_key, outcome)
    except Unreadable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except VerificationFailed as exc:
        print("\n".join([*outcome.lines, f"FAILED: {exc}"]))
        return EXIT_FAILED
    print("\n".join([*outcome.lines, f"ok: {args.export} verified"]))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
