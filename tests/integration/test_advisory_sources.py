"""Advisory sources: OSV files, directories of them, and URLs served by a real local HTTP server."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tma_ops.advisories import AdvisoryError, load_advisories, read_source

pytestmark = pytest.mark.integration


def osv(ident: str, name: str, fixed: str, ecosystem: str = "PyPI") -> dict[str, Any]:
    return {
        "id": ident,
        "aliases": [f"CVE-{ident}"],
        "summary": f"{name} hole",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
    }


def write(path: Path, document: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


MIRROR_CREDENTIALS = "Basic " + base64.b64encode(b"agency:mirror pass").decode()


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files; those under /private/ only with the mirror's basic credentials."""

    def do_GET(self) -> None:
        if self.path.startswith("/private/") and (
            self.headers.get("Authorization") != MIRROR_CREDENTIALS
        ):
            self.send_error(401, "Unauthorized")
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a directory: (base URL, directory)."""
    root = tmp_path_factory.mktemp("www")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_file_with_one_record(tmp_path: Path) -> None:
    path = write(tmp_path / "one.json", osv("PYSEC-1", "django", "4.2.11"))
    (advisory,) = read_source(str(path))
    assert (advisory.id, advisory.aliases, advisory.source) == (
        "PYSEC-1",
        ("CVE-PYSEC-1",),
        str(path),
    )


def test_file_with_a_list_and_an_osv_query_answer(tmp_path: Path) -> None:
    listed = write(tmp_path / "list.json", [osv("A", "x", "1.1"), osv("B", "y", "2.0")])
    answer = write(tmp_path / "answer.json", {"vulns": [osv("C", "z", "3.0")]})
    index = load_advisories([str(listed), str(answer)])
    assert len(index) == 3
    assert [a.id for a in index.affecting("PyPI", "z", "2.9")] == ["C"]


def test_directory_reads_every_json_file_below_it(tmp_path: Path) -> None:
    feed = tmp_path / "osv"
    write(feed / "PyPI" / "django.json", osv("PYSEC-1", "django", "4.2.11"))
    write(feed / "npm" / "GHSA-aaaa.json", osv("GHSA-aaaa", "lodash", "4.17.21", "npm"))
    write(feed / "WordPress" / "core.json", osv("WP-1", "wordpress", "6.4.3", "WordPress"))
    (feed / "README.md").write_text("not a record")
    index = load_advisories([str(feed)])
    assert len(index) == 3
    assert [a.id for a in index.affecting("npm", "lodash", "4.17.20")] == ["GHSA-aaaa"]
    assert [a.id for a in index.affecting("WordPress", "wordpress", "6.4.2")] == ["WP-1"]
    assert index.affecting("WordPress", "wordpress", "6.4.3") == []


def test_url_serving_a_json_document(served: tuple[str, Path]) -> None:
    base, root = served
    write(root / "feed" / "all.json", [osv("A", "django", "4.2.11"), osv("B", "flask", "3.0")])
    index = load_advisories([f"{base}/feed/all.json"])
    assert [a.id for a in index.affecting("PyPI", "Django", "4.2.10")] == ["A"]
    assert next(iter(index.affecting("PyPI", "flask", "2.0"))).source == f"{base}/feed/all.json"


def test_same_record_from_two_sources_counts_once(tmp_path: Path, served: tuple[str, Path]) -> None:
    base, root = served
    write(root / "a.json", osv("A", "django", "4.2.11"))
    local = write(tmp_path / "a.json", osv("A", "django", "4.2.11"))
    index = load_advisories([str(local), f"{base}/a.json"])
    assert len(index) == 1
    assert len(index.affecting("PyPI", "django", "4.0")) == 1


def test_withdrawn_record_in_a_file_is_ignored(tmp_path: Path) -> None:
    withdrawn = {**osv("A", "django", "4.2.11"), "withdrawn": "2024-02-01T00:00:00Z"}
    path = write(tmp_path / "w.json", [withdrawn, osv("B", "django", "4.2.11")])
    assert [a.id for a in read_source(str(path))] == ["B"]


def error_of(source: str) -> str:
    with pytest.raises(AdvisoryError) as caught:
        load_advisories([source])
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    assert error_of(str(missing)) == (
        f"advisories {missing}: not found; expected an OSV JSON file, a directory of them or an "
        "http(s) URL"
    )


def test_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("<html>", encoding="utf-8")
    assert error_of(str(path)).startswith(f"advisories {path}: not valid JSON")


def test_bad_record_in_a_directory_names_the_file_and_the_place(tmp_path: Path) -> None:
    write(tmp_path / "osv" / "good.json", osv("A", "django", "4.2.11"))
    bad = write(tmp_path / "osv" / "sub" / "bad.json", {"id": "B", "affected": [{"package": {}}]})
    assert error_of(str(tmp_path / "osv")).startswith(
        f"advisories {bad}: record 0 (B): affected[0].package: expected non-empty strings"
    )


def test_url_not_found(served: tuple[str, Path]) -> None:
    base, _ = served
    message = error_of(f"{base}/missing.json")
    assert message.startswith(f"advisories {base}/missing.json: HTTP 404")
    assert message.endswith("expected a JSON document of OSV records")


def test_url_answering_something_else_than_json(served: tuple[str, Path]) -> None:
    base, root = served
    (root / "index.html").write_text("<html><body>feed moved</body></html>", encoding="utf-8")
    assert error_of(f"{base}/index.html").startswith(
        f"advisories {base}/index.html: not valid JSON"
    )


def test_url_credentials_and_query_stay_out_of_errors(served: tuple[str, Path]) -> None:
    base, _ = served
    host = base.removeprefix("http://")
    message = error_of(f"http://feeds:s3cret-pass@{host}/missing.json?token=t0ken")
    assert "s3cret-pass" not in message and "t0ken" not in message
    assert message.startswith(f"advisories {base}/missing.json: HTTP 404")


def test_url_with_basic_credentials(served: tuple[str, Path]) -> None:
    base, root = served
    write(root / "private" / "feed.json", [osv("A", "django", "4.2.11")])
    host = base.removeprefix("http://")
    assert error_of(f"{base}/private/feed.json").startswith(
        f"advisories {base}/private/feed.json: HTTP 401"
    )
    index = load_advisories([f"http://agency:mirror%20pass@{host}/private/feed.json"])
    assert len(index) == 1


def test_url_nobody_listens_on(served: tuple[str, Path]) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    message = error_of(f"http://127.0.0.1:{port}/feed.json")
    assert message.startswith(f"advisories http://127.0.0.1:{port}/feed.json: cannot fetch:")
