"""The audit export as one self-verifying file: json, csv or html, signed with the journal's key.

json: `{"export": {...}, "signature": {"algorithm", "key_id", "value"}}`, the signature over
canonical_json(export). csv and html: the signature over every byte before the last line, which
carries it (`# tma-ops-signature ed25519 <key id> <base64>` or the same inside an html comment).
The html page also embeds the signed json document, so its chain proof can be checked.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from tma_ops.audit_verifier import (
    CSV_SIGNATURE_PREFIX,
    EMBEDDED_JSON_ID,
    HTML_SIGNATURE_PREFIX,
    HTML_SIGNATURE_SUFFIX,
    canonical_json,
)
from tma_ops.signing import ALGORITHM, Signer
from tma_ops.units import human_size

FORMATS = ("json", "csv", "html")
CSV_COLUMNS = (
    "site",
    "run_id",
    "event_id",
    "status",
    "tested_at",
    "snapshot_id",
    "snapshot_created_at",
    "snapshot_age_s",
    "time_to_recovery_s",
    "bytes_read",
    "parts",
    "smoke",
    "failed_stage",
    "cause",
    "teardown",
    "covered_by_signed_head",
)

NUMERIC_COLUMNS = ("event_id", "snapshot_age_s", "time_to_recovery_s", "bytes_read")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def signed_document(export: dict[str, Any], signer: Signer) -> dict[str, Any]:
    value = signer.sign(canonical_json(export).encode("utf-8"))
    return {
        "export": export,
        "signature": {"algorithm": ALGORITHM, "key_id": signer.key_id, "value": value},
    }


def render(export: dict[str, Any], output_format: str, signer: Signer) -> bytes:
    document = signed_document(export, signer)
    if output_format == "json":
        return render_json(document)
    if output_format == "csv":
        return with_signature_line(render_csv_body(export), signer, CSV_SIGNATURE_PREFIX, "")
    if output_format == "html":
        body = render_html_body(export, document)
        return with_signature_line(body, signer, HTML_SIGNATURE_PREFIX, HTML_SIGNATURE_SUFFIX)
    raise ValueError(f"unknown export format {output_format!r}; expected one of {FORMATS}")


def render_json(document: dict[str, Any]) -> bytes:
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def with_signature_line(body: bytes, signer: Signer, prefix: str, suffix: str) -> bytes:
    if not body.endswith(b"\n"):
        body += b"\n"
    line = f"{prefix}{ALGORITHM} {signer.key_id} {signer.sign(body)}{suffix}\n"
    return body + line.encode("ascii")


# --- csv ----------------------------------------------------------------------------------


def render_csv_body(export: dict[str, Any]) -> bytes:
    out = io.StringIO()
    for line in csv_preamble(export):
        out.write(f"# {line}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in export["restore_tests"]:
        writer.writerow([csv_cell(name, row) for name in CSV_COLUMNS])
    return out.getvalue().encode("utf-8")


def csv_preamble(export: dict[str, Any]) -> list[str]:
    journal = export["journal"]
    return [
        f"tma-ops audit export: restore tests ended from {export['range']['from']} up to "
        f"{export['range']['to']} (excluded), site: {export['site'] or 'all'}, "
        f"generated at {export['generated_at']}",
        f"journal {journal['journal_id']}: {journal['verify']['reason']} "
        f"(head: event {journal['last_id']})",
        heads_sentence(export),
        "a csv carries no chain proof: export json or html for one",
    ]


def heads_sentence(export: dict[str, Any]) -> str:
    heads = export["signed_heads"]
    damaged = [head for head in heads if head["problem"]]
    cover = export["proof"]["covering_head"]
    parts = [f"{len(heads)} signed head(s) found in the stores"]
    if cover is not None:
        head = cover["head"]
        parts.append(
            f"covering head: event {head['last_id']} of run {head['run_id']}, signed at "
            f"{head['signed_at']} by {head['key_id']}"
        )
    else:
        parts.append("no signed head covers the exported events yet")
    parts.extend(f"{head['key']}: {head['problem']}" for head in damaged)
    return "; ".join(parts)


def csv_cell(name: str, row: dict[str, Any]) -> str:
    text = _csv_text(name, row)
    # A spreadsheet would run a cell starting like a formula (a cause quoting a page, say).
    return "'" + text if text[:1] in FORMULA_STARTS and name not in NUMERIC_COLUMNS else text


def _csv_text(name: str, row: dict[str, Any]) -> str:
    value = row.get(name)
    if name == "parts":
        return " | ".join(
            f"{p.get('name')} {p.get('snapshot_id')} sha256={p.get('sha256')} "
            f"size={p.get('size')} stored={p.get('stored_size')} key={p.get('key')}"
            for p in value or []
        )
    if name == "smoke":
        return " | ".join(
            f"{c.get('name')} ({c.get('kind')}): {'ok' if c.get('ok') else 'FAILED'}"
            + (f" {c.get('detail')}" if c.get("detail") else "")
            for c in value or []
        )
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# --- html ---------------------------------------------------------------------------------


def render_html_body(export: dict[str, Any], document: dict[str, Any]) -> bytes:
    environment = Environment(
        loader=PackageLoader("tma_ops", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["duration"] = human_duration
    environment.filters["size"] = lambda value: "" if value is None else human_size(int(value))
    template = environment.get_template("audit_export.html.j2")
    page = template.render(
        export=export,
        tests=[with_defaults(row) for row in export["restore_tests"]],
        heads_sentence=heads_sentence(export),
        embedded_id=EMBEDDED_JSON_ID,
        embedded_json=Markup(script_safe_json(document)),
    )
    return page.encode("utf-8")


def with_defaults(row: dict[str, Any]) -> dict[str, Any]:
    """A restore test row with every column present, so a sparse event still renders."""
    return {
        **dict.fromkeys(CSV_COLUMNS),
        **row,
        "parts": row.get("parts") or [],
        "smoke": row.get("smoke") or [],
    }


def script_safe_json(document: dict[str, Any]) -> str:
    """JSON that cannot close its <script> element; json.loads reads it back unchanged."""
    text = json.dumps(document, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    total = float(seconds)
    if total < 60:
        return f"{total:.1f} s"
    minutes, secs = divmod(round(total), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
