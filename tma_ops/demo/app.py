"""The demo CMS: serves every site and environment of a demo workspace over real HTTP.

Routes are `/<site>/<env>/` (homepage) and `/<site>/<env>/contact`. Every request reads the
environment's database (SQLite or a server, see data.py) and executes its plugins afresh from
disk, so a refreshed database or an updated plugin shows on the very next request, as with a PHP
CMS. A plugin that raises turns the page into an HTTP 500 and a traceback in
`<ws>/sites/<site>/<env>/error.log`.
"""

from __future__ import annotations

import re
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tma_ops.demo.data import DatabaseUnavailable, SiteData, read_site_data

CRITICAL_ERROR = "There has been a critical error on this website."
DATABASE_ERROR = "Error establishing a database connection"
ROUTE = re.compile(
    r"^/(?P<site>[a-z0-9][a-z0-9_-]*)/(?P<env>[a-z0-9][a-z0-9_-]*)(?P<page>/|/contact)?$"
)
_LOG_LOCK = threading.Lock()

Render = Callable[[dict[str, Any], dict[str, Any]], None]


@dataclass(frozen=True)
class Response:
    status: int
    body: str
    location: str | None = None


@dataclass(frozen=True)
class Plugin:
    name: str
    version: str
    render: Render


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, workspace: Path, address: tuple[str, int]) -> None:
        self.workspace = workspace.resolve()
        super().__init__(address, DemoHandler)


class DemoHandler(BaseHTTPRequestHandler):
    server: DemoServer

    def do_GET(self) -> None:
        response = respond(self.server.workspace, self.path)
        body = response.body.encode("utf-8")
        self.send_response(response.status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if response.location:
            self.send_header("Location", response.location)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the demo runs alongside smoke tests and a terminal UI."""


def start_server(workspace: Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Serve `workspace` from a daemon thread; the caller calls shutdown() then server_close()."""
    server = DemoServer(workspace, (host, port))
    # A short poll interval keeps shutdown() quick: tests start and stop many servers.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="tma-demo-http", daemon=True
    )
    thread.start()
    return server


def serve_forever(
    workspace: Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground; `on_ready` receives the base URL.

    KeyboardInterrupt propagates (after the socket is closed) so the caller decides the exit code.
    """
    with DemoServer(workspace, (host, port)) as server:
        if on_ready is not None:
            bound_host, bound_port = server.server_address[:2]
            on_ready(f"http://{bound_host!s}:{bound_port}/")
        server.serve_forever()


def respond(workspace: Path, raw_path: str) -> Response:
    """The response to a GET of `raw_path` (path and optional query) on `workspace`."""
    path = urlsplit(raw_path).path
    match = ROUTE.match(path)
    env_dir = workspace / "sites" / match["site"] / match["env"] if match else None
    if match is None or env_dir is None or not env_dir.is_dir():
        return Response(404, _document("Not found", "<h1>Page not found</h1>"))
    if match["page"] is None:
        return Response(301, "", location=path + "/")
    try:
        data = read_site_data(env_dir)
    except DatabaseUnavailable as exc:
        _log_error(env_dir, path, f"database error: {exc}\n")
        return Response(500, _document("Database error", f"<h1>{DATABASE_ERROR}</h1>"))
    try:
        return Response(200, render_page(env_dir, match["site"], match["env"], match["page"], data))
    except Exception as exc:
        _log_error(env_dir, path, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        return Response(500, _document("Critical error", f"<p>{CRITICAL_ERROR}</p>"))


def code_dir(www: Path) -> Path:
    """The live code: www itself, or www/current where the code is kept as releases (resolved
    on every request, so a switch of `current` shows on the next one)."""
    current = www / "current"
    return current if current.is_symlink() else www


def load_plugins(www: Path) -> list[Plugin]:
    """Compile and execute every `plugins/<name>/plugin.py` afresh: no module cache on purpose."""
    plugins_dir = www / "plugins"
    if not plugins_dir.is_dir():
        return []
    plugins = []
    for directory in sorted(p for p in plugins_dir.iterdir() if p.is_dir()):
        version = (directory / "VERSION").read_text(encoding="utf-8").strip()
        source_path = directory / "plugin.py"
        code = compile(source_path.read_text(encoding="utf-8"), str(source_path), "exec")
        namespace: dict[str, Any] = {"__name__": f"demo_plugin_{directory.name}"}
        exec(code, namespace)
        render = namespace.get("render")
        if not callable(render):
            raise TypeError(f"plugin {directory.name!r} defines no render(page, context)")
        plugins.append(Plugin(directory.name, version, render))
    return plugins


def render_page(env_dir: Path, site: str, env: str, page_path: str, data: SiteData) -> str:
    """Run the plugins over a fresh page and return the HTML document."""
    page: dict[str, Any] = {"title": data.options.get("site_title", site), "sections": []}
    plugins = load_plugins(code_dir(env_dir / "www"))
    page["footer"] = [f"{plugin.name} v{plugin.version}" for plugin in plugins]
    context = {"environment": env, "site": site, "path": page_path, "options": data.options}
    for plugin in plugins:
        plugin.render(page, context)
    main = _posts_html(data.posts) if page_path == "/" else _contact_html()
    header = (
        f"<header><h1>{escape(data.options.get('site_title', site))}</h1>"
        f"<p>{escape(data.options.get('tagline', ''))}</p></header>"
    )
    sections = "".join(str(section) for section in page["sections"])
    footer = "".join(f"<li>{escape(str(item))}</li>" for item in page["footer"])
    body = f"{header}<main>{main}</main>{sections}<footer><ul>{footer}</ul></footer>"
    return _document(str(page["title"]), body)


def _posts_html(posts: list[dict[str, Any]]) -> str:
    items = "".join(
        f'<article id="post-{post["id"]}"><h2>{escape(post["title"])}</h2>'
        f"<time>{escape(post['published'] or '')}</time><p>{escape(post['body'] or '')}</p>"
        "</article>"
        for post in posts
    )
    return f'<section class="posts">{items or "<p>Aucun article.</p>"}</section>'


def _contact_html() -> str:
    return (
        '<section class="contact"><h2>Contact form</h2><form method="post">'
        '<label>Email <input type="email" name="email"></label>'
        '<label>Message <textarea name="message"></textarea></label>'
        "<button>Envoyer</button></form></section>"
    )


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="fr"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head><body>{body}</body></html>\n"
    )


def _log_error(env_dir: Path, path: str, details: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with _LOG_LOCK, (env_dir / "error.log").open("a", encoding="utf-8") as log:
        log.write(f"[{stamp}] GET {path}: {details}")
