"""`docker://container`: the environment is a running container of a Docker engine.

Commands go through the exec API on a hijacked connection (stdin raw, stdout and stderr in frames,
read as they come). A small `sh` wrapper first reports the command's process id, so a timeout, a
consumer error or a source that breaks off kills its process group before stdin closes: a command
never takes a cut stream as complete. `put` writes `PATH.partial` through `cat`, then renames it
(the archive API needs the size up front); `get` untars the archive API's stream on the fly.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import socket
import ssl
import struct
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import docker
import docker.errors
import requests

from tma_ops.errors import ExecutorError
from tma_ops.executors import Result, command_failed, iter_chunks
from tma_ops.model import ExecutorSpec
from tma_ops.streams import Readable

MARK = b"tma-exec:"
WRAPPER = (
    'command -v "$1" >/dev/null 2>&1 || { echo "tma-exec: missing" >&2; exit 127; }; '
    'echo "tma-exec: $$" >&2; exec "$@"'
)
KILL = 'kill -s KILL -- "-$1" 2>/dev/null || kill -s KILL "$1"'  # an exec leads its group
KILL_WAIT = 10  # seconds
ERR_TAIL = 64 << 10  # stderr kept for messages: the end is what tells
ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException, OSError)


class DockerExecutor:
    def __init__(self, spec: ExecutorSpec) -> None:
        self.url = spec.url
        self.python = spec.python or "python3"
        self._name = urlsplit(spec.url).netloc  # not .hostname, which lowercases
        default = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self._host = spec.docker_host or default
        self._spec = spec
        self._client: Any = None

    def run(self, argv: list[str], *, timeout: float | None = None, check: bool = True) -> Result:
        limit = timeout if timeout is not None else self._spec.command_timeout
        with self._exec(argv, timeout=limit) as command:
            out = bytearray()
            while chunk := command.read_out():
                out += chunk
            rc = command.exit_code()
        result = Result(rc, _text(out), _text(command.err))
        if check and not result.ok:
            raise command_failed(argv, rc, result.err, self.url)
        return result

    @contextmanager
    def stream_out(self, argv: list[str]) -> Iterator[BinaryIO]:
        with self._exec(argv) as command:
            try:
                yield io.BufferedReader(_Stdout(command), 1 << 16)
            except BaseException:
                command.kill()
                raise
            while command.read_out():
                pass  # what the consumer left: the exit code comes after it
            rc = command.exit_code()
        if rc != 0:
            raise command_failed(argv, rc, _text(command.err), self.url)

    def stream_in(self, argv: list[str], source: Readable) -> Result:
        result = self._feed(argv, source)
        if not result.ok:
            raise command_failed(argv, result.rc, result.err, self.url)
        return result

    def put(self, path: str, source: Readable) -> None:
        partial = f"{path}.partial"
        script = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"'
        done = False
        try:
            result = self._feed(["sh", "-c", script, "sh", partial], source)
            if result.ok:
                result = self.run(["mv", "-f", "--", partial, path], check=False)
            done = result.ok
        finally:
            if not done:  # the source, the engine or the command failed
                with contextlib.suppress(ExecutorError):
                    self.run(["rm", "-f", "--", partial], check=False)
        if not result.ok:
            reason = result.err.strip().splitlines()[-1:] or [f"exit {result.rc}"]
            raise ExecutorError(f"{self.url}: cannot write {path}: {reason[0]}")

    @contextmanager
    def get(self, path: str) -> Iterator[BinaryIO]:
        response, archive, member = self._open_member(path)
        try:
            yield archive.extractfile(member)  # type: ignore[misc]
        finally:
            archive.close()
            response.close()

    def exists(self, path: str) -> bool:
        api = self._ready()
        with self._errors(f"cannot look up {path}"):
            url = api._url("/containers/{0}/archive", self._name)
            response = api.head(url, params={"path": path}, timeout=api.timeout)
            if response.status_code == 404:
                return False
            api._raise_for_status(response)
        return True

    def _feed(self, argv: list[str], source: Readable) -> Result:
        with self._exec(argv, stdin=True) as command:
            out = bytearray()
            command.feeding = True
            reader = threading.Thread(target=command.collect, args=(out,), daemon=True)
            reader.start()
            try:
                for chunk in iter_chunks(source):
                    command.send(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the command stopped reading; its exit code tells why
            except BaseException:
                command.kill()  # before stdin closes: a cut stream must not look complete
                raise
            command.close_stdin()
            reader.join()
            if command.failure is not None:
                raise command.failure
            rc = command.exit_code()
        return Result(rc, _text(out), _text(command.err))

    @contextmanager
    def _exec(
        self, argv: list[str], *, stdin: bool = False, timeout: float | None = None
    ) -> Iterator[_Exec]:
        api = self._ready()
        with self._errors(f"cannot run {argv[0]}"):
            command = _Exec(api, self.url, self._name, argv, stdin)
        try:
            command.start(timeout, self._spec.command_timeout)
            yield command
        finally:
            command.close()

    def _open_member(self, path: str, hops: int = 8) -> tuple[Any, tarfile.TarFile, Any]:
        api = self._ready()
        with self._errors(f"cannot read {path}"):
            url = api._url("/containers/{0}/archive", self._name)
            plain = {"Accept-Encoding": "identity"}  # else the engine gzips it
            response = api._get(url, params={"path": path}, headers=plain, stream=True)
            if response.status_code == 404:
                raise ExecutorError(f"{self.url}: cannot read {path}: no such file")
            api._raise_for_status(response)
            archive = tarfile.open(fileobj=response.raw, mode="r|")  # noqa: SIM115
            member = archive.next()
        if member is not None and member.isfile():
            return response, archive, member
        archive.close()
        response.close()
        if member is not None and member.issym() and hops > 0:
            target = posixpath.join(posixpath.dirname(path), member.linkname)
            return self._open_member(posixpath.normpath(target), hops - 1)
        raise ExecutorError(f"{self.url}: cannot read {path}: not a regular file")

    def _ready(self) -> Any:
        """The engine's API client, once the container is known to be running."""
        with self._errors("cannot inspect the container"):
            if self._client is None:
                timeout = max(60, int(self._spec.connect_timeout))
                host = self._spec.docker_host
                self._client = (
                    docker.DockerClient(base_url=host, timeout=timeout)
                    if host
                    else docker.from_env(timeout=timeout)
                )
            state = self._client.api.inspect_container(self._name)["State"]
        if not state.get("Running") or state.get("Paused"):
            status = state.get("Status", "not running")
            raise ExecutorError(f"{self.url}: container {self._name} is not running ({status})")
        return self._client.api

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except docker.errors.APIError as exc:
            explanation = str(exc.explanation or exc).strip()
            if exc.status_code == 404 and "container" in explanation.lower():
                where = f"on the Docker engine at {self._host}"
                raise ExecutorError(
                    f"{self.url}: container {self._name} not found {where}"
                ) from exc
            if exc.status_code == 409:  # exec into a container that stopped meanwhile
                raise ExecutorError(f"{self.url}: container {self._name} is not running") from exc
            raise ExecutorError(f"{self.url}: {doing}: {explanation}") from exc
        except ENGINE_ERRORS as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            where = f"cannot reach the Docker engine at {self._host}"
            raise ExecutorError(f"{self.url}: {where}: {reason}") from exc


class _Exec:
    """One command on a hijacked exec connection: stdin goes out raw, stdout and stderr come back
    in frames (8-byte header: stream 1 or 2, size). Stderr opens with the wrapper's line."""

    def __init__(self, api: Any, url: str, container: str, argv: list[str], stdin: bool) -> None:
        self._api, self._url, self._container, self._program = api, url, container, argv[0]
        self.id = api.exec_create(container, ["sh", "-c", WRAPPER, "sh", *argv], stdin=stdin)["Id"]
        start = api._url("/exec/{0}/start", self.id)
        upgrade = {"Connection": "Upgrade", "Upgrade": "tcp"}
        body = {"Tty": False, "Detach": False}
        self._response = api._post_json(start, headers=upgrade, data=body, stream=True)
        api._raise_for_status(self._response)
        parser_buffer = getattr(getattr(self._response.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(parser_buffer, "raw", None), "_sock", None)
        if not isinstance(sock, socket.socket) or (stdin and isinstance(sock, ssl.SSLSocket)):
            self._response.close()  # ssh:// has no socket here; TLS cannot half-close for stdin
            raise ExecutorError(f"{url}: needs a Docker engine on unix:// or plain tcp://")
        self._sock = sock
        self._buf = bytearray(_take_buffered(parser_buffer, self._sock))
        self._deadline: float | None = None
        self._timed_out = ""
        self.feeding = False  # stdin open: a silent command may just be busy reading it
        self.failure: BaseException | None = None
        self.pid = 0
        self.err = bytearray()
        self._head: bytearray | None = bytearray()  # stderr until the wrapper's line ends
        self._early: list[bytes] = []  # stdout that came before it

    def start(self, timeout: float | None, idle: float) -> None:
        """Wait for the wrapper's line, which names the command's process."""
        url, program = self._url, self._program
        if timeout is None:
            self._timed_out = f"{url}: {program} stalled: nothing moved for {idle}s"
            self._sock.settimeout(idle)
        else:
            self._timed_out = f"{url}: {program} timed out after {timeout}s"
            self._deadline = time.monotonic() + timeout
        while self._head is not None:
            if (frame := self._frame()) is None:
                said = _text(b"".join([self._head, *self._early])).strip() or "no output"
                raise ExecutorError(f"{url}: cannot run {program} through sh: {said}")
            if frame[0] == 1:
                self._early.append(frame[1])
            else:
                self._stderr(frame[1])
        if self.pid == 0:
            raise ExecutorError(f"{url}: command not found: {program}")

    def read_out(self) -> bytes:
        """The next stdout bytes, b"" at the end; stderr is kept aside on the way."""
        if self._early:
            return self._early.pop(0)
        while (frame := self._frame()) is not None:
            if frame[0] == 1 and frame[1]:
                return frame[1]
            self._stderr(frame[1])
        return b""

    def collect(self, out: bytearray) -> None:
        try:
            while chunk := self.read_out():
                out += chunk
        except BaseException as exc:  # handed to the writing thread
            self.failure = exc

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except TimeoutError as exc:
            self.kill()
            raise ExecutorError(self._timed_out) from exc

    def close_stdin(self) -> None:
        self.feeding = False
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def exit_code(self) -> int:
        for _ in range(1000):  # the stream can end a moment before the engine records the exit
            info = self._engine(self._api.exec_inspect, self.id)
            if not info["Running"] and info["ExitCode"] is not None:
                return int(info["ExitCode"])
            time.sleep(0.01)
        raise ExecutorError(f"{self._url}: {self._program}: output ended, the process runs on")

    def kill(self) -> None:
        """SIGKILL the command's process group, reading its output meanwhile (unless the collecting
        thread does): the engine does not end the killing exec while this one's output waits."""
        if self.pid <= 0:
            return
        killer = threading.Thread(target=self._kill, daemon=True)
        killer.start()
        deadline = time.monotonic() + KILL_WAIT
        with contextlib.suppress(OSError):
            while not self.feeding and killer.is_alive() and time.monotonic() < deadline:
                self._sock.settimeout(0.1)
                with contextlib.suppress(TimeoutError):
                    if not self._sock.recv(1 << 16):
                        break
        killer.join(KILL_WAIT)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._response.close()

    def _kill(self) -> None:
        argv = ["sh", "-c", KILL, "sh", str(self.pid)]
        with contextlib.suppress(ExecutorError):
            killing = self._engine(self._api.exec_create, self._container, argv)["Id"]
            self._engine(self._api.exec_start, killing)

    def _engine(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except ENGINE_ERRORS as exc:
            raise ExecutorError(f"{self._url}: Docker engine: {exc}") from exc

    def _frame(self) -> tuple[int, bytes] | None:
        header = self._read(8)
        if len(header) < 8:
            return None
        stream, size = struct.unpack(">BxxxL", header)
        return stream, self._read(size)

    def _read(self, size: int) -> bytes:
        while len(self._buf) < size:
            try:
                if self._deadline is not None:
                    self._sock.settimeout(max(self._deadline - time.monotonic(), 0.001))
                chunk = self._sock.recv(max(size - len(self._buf), 1 << 16))
            except TimeoutError as exc:
                if self.feeding:
                    continue
                self.kill()
                raise ExecutorError(self._timed_out) from exc
            except OSError as exc:
                raise ExecutorError(f"{self._url}: engine connection lost: {exc}") from exc
            if not chunk:
                break
            self._buf += chunk
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def _stderr(self, data: bytes) -> None:
        if self._head is None:
            self.err += data
            del self.err[:-ERR_TAIL]
            return
        self._head += data
        line, newline, rest = bytes(self._head).partition(b"\n")
        if newline:
            word = line.removeprefix(MARK).strip()
            if not line.startswith(MARK) or not (word.isdigit() or word == b"missing"):
                said = f"cannot run {self._program} through sh: {_text(line)}"
                raise ExecutorError(f"{self._url}: {said}")
            self.pid, self._head = (int(word) if word.isdigit() else 0), None
            self._stderr(rest)


def _take_buffered(parser_buffer: Any, sock: socket.socket) -> bytes:
    """What the HTTP parser read past the response headers: output, read directly from then on."""
    sock.setblocking(False)
    try:
        ready = parser_buffer.peek(0)  # buffered bytes, or what the socket has without waiting
        return bytes(parser_buffer.read(len(ready))) if ready else b""
    except OSError:
        return b""
    finally:
        sock.setblocking(True)


class _Stdout(io.RawIOBase):
    def __init__(self, command: _Exec) -> None:
        self._command = command
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._left:
            self._left = memoryview(self._command.read_out())
        count = min(len(buffer), len(self._left))
        buffer[:count] = self._left[:count]
        self._left = self._left[count:]
        return count


def _text(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")
