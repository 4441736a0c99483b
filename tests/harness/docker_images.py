"""Small service images for tests of the docker stack, without a registry or a build.

The site image's root filesystem is 500 MB, and the engine's vfs storage copies an image's whole
filesystem for every container (and every build step): too slow for tests that create many. A
service image here holds what python3 and sh need from that root filesystem (about 40 MB) and a
tiny web app; its tags are `docker import`s of that one layer with different settings (ENV,
CMD, HEALTHCHECK...), so they share the layer and differ by image id.

The app (/srv/app/server.py) answers `web <APP_VERSION>` on 127.0.0.1:8000 inside the container;
`--get` prints that answer, `--check` is a healthcheck, `--fail` exits 3 at start, `--mute` runs
without listening.
"""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

from harness.docker_engine import PATH, DockerEngine

APP = "/srv/app/server.py"
PORT = 8000
PYTHON_LIB = "./usr/lib/python3.11/"
UNUSED_STDLIB = ("test/", "idlelib/", "tkinter/", "lib2to3/", "pydoc_data/", "ensurepip/")
SHARED_LIBS = "./usr/lib/x86_64-linux-gnu/"
NEEDED_LIBS = (
    *("libc.so", "libm.so", "libz.so", "libexpat.so", "ld-linux", "libffi.so"),
    *("libcrypto.so", "libssl.so", "libbz2.so", "liblzma.so", "libuuid.so"),
)
NEEDED = {
    *("./bin", "./lib", "./lib64", "./sbin", "./usr", "./usr/bin", "./usr/lib", "./usr/lib64"),
    *("./usr/sbin", SHARED_LIBS.rstrip("/"), "./etc", "./etc/passwd", "./etc/group", "./tmp"),
    *("./root", "./srv", "./usr/bin/python3", "./usr/bin/python3.11", "./usr/bin/dash"),
    *("./usr/bin/sh", "./usr/lib64/ld-linux-x86-64.so.2", PYTHON_LIB.rstrip("/")),
}
SERVER = f'''"""A web app that tells its version (tests of the docker stack)."""
import http.server, os, sys, time, urllib.request

URL = "http://127.0.0.1:{PORT}/"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("web " + os.environ.get("APP_VERSION", "unknown") + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main(args):
    if "--get" in args or "--check" in args:
        sys.stdout.write(urllib.request.urlopen(URL, timeout=5).read().decode())
        return 0
    if "--fail" in args:
        print("cannot read /srv/data/settings.json: no such file", file=sys.stderr)
        return 3
    if "--mute" in args:
        while True:
            time.sleep(3600)
    print("listening on " + URL, flush=True)
    http.server.ThreadingHTTPServer(("127.0.0.1", {PORT}), Handler).serve_forever()


sys.exit(main(sys.argv[1:]))
'''


def service_rootfs(site_rootfs: Path) -> bytes:
    """A tar of the parts of the site root filesystem that python3 and sh need, plus the app."""
    out = io.BytesIO()
    with tarfile.open(site_rootfs, "r|") as source, tarfile.open(fileobj=out, mode="w") as tar:
        for member in source:
            if not _needed(member.name):
                continue
            if member.islnk() and not _needed("./" + member.linkname.removeprefix("./")):
                continue
            tar.addfile(member, source.extractfile(member) if member.isfile() else None)
        _add_file(tar, APP, SERVER.encode())
    return out.getvalue()


def _needed(name: str) -> bool:
    if name in NEEDED:
        return True
    if name.startswith(PYTHON_LIB):
        return not name.removeprefix(PYTHON_LIB).startswith(UNUSED_STDLIB)
    if name.startswith(SHARED_LIBS):
        return name.removeprefix(SHARED_LIBS).startswith(NEEDED_LIBS)
    return False


def _add_file(tar: tarfile.TarFile, path: str, data: bytes) -> None:
    parts = path.strip("/").split("/")
    present = set(tar.getnames())
    for depth in range(1, len(parts)):
        if "./" + "/".join(parts[:depth]) in present:
            continue
        folder = tarfile.TarInfo("./" + "/".join(parts[:depth]))
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        tar.addfile(folder)
    info = tarfile.TarInfo("./" + "/".join(parts))
    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def import_service_image(
    engine: DockerEngine, rootfs: bytes, reference: str, changes: list[str]
) -> str:
    """Import `rootfs` as `reference` with Dockerfile-style `changes` (ENV, CMD, LABEL,
    HEALTHCHECK, VOLUME, WORKDIR...) over a PATH and the app as command; the image id."""
    repository, tag = reference.rsplit(":", 1)
    defaults = [f"ENV PATH={PATH}", f'CMD ["python3", "{APP}"]']
    client = engine.client()
    client.api.import_image_from_data(
        rootfs, repository=repository, tag=tag, changes=[*defaults, *changes]
    )
    image_id: str = client.images.get(reference).id
    return image_id
