"""Pieces of the SSH executor: host-key policies, remote commands and their streams, sockets."""

from __future__ import annotations

import contextlib
import io
import posixpath
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko

CHUNK = 1 << 20
KEEPALIVE = 15  # seconds of silence before the peer is probed
DEAD_PEER_MS = 60_000  # data unacknowledged this long: the connection is dead
REFUSED_RETRY_DELAY = 0.5
LOST = (OSError, EOFError, paramiko.SSHException)


class UnknownHost(Exception):
    pass


class RejectUnknown(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: Any) -> None:
        raise UnknownHost(hostname)


class AcceptNew(paramiko.MissingHostKeyPolicy):
    """Trust an unknown host on first contact and record its key, like OpenSSH's accept-new."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: Any) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        old = self.path.read_bytes() if self.path.exists() else b""
        with open(self.path, "ab") as known:
            separator = b"\n" if old and not old.endswith(b"\n") else b""
            known.write(separator + f"{hostname} {key.get_name()} {key.get_base64()}\n".encode())
        client.get_host_keys().add(hostname, key.get_name(), key)


class OutputDrain(threading.Thread):
    """Reads a channel stream to its end in the background (a full window would stall the
    command). With `pid_line`, the first line, the pid that `echo $$` wrote, is kept apart."""

    def __init__(self, read: Callable[[int], bytes], keep: bool = True, pid_line: bool = False):
        super().__init__(daemon=True)
        self._read, self._keep, self._head = read, keep, b"" if pid_line else None
        self._chunks: list[bytes] = []
        self.pid: int | None = None
        self.pid_known = threading.Event()
        self.start()

    def run(self) -> None:
        with contextlib.suppress(*LOST):
            while chunk := self._read(CHUNK):
                self._take(chunk)
        self._chunks[:0] = [self._head] if self._head else []  # no whole first line came
        self.pid_known.set()

    def _take(self, chunk: bytes) -> None:
        if self._head is None:
            self._chunks += [chunk] if self._keep else []
            return
        line, newline, rest = (self._head + chunk).partition(b"\n")
        self._head = None if newline else line
        if newline:
            self.pid = int(line) if line.isdigit() else None
            self._chunks.append(rest if self.pid else line + newline + rest)
            self.pid_known.set()

    def text(self) -> str:
        return b"".join(self._chunks).decode("utf-8", errors="replace")


class RemoteCommand:
    """A started command: its channel, and its stderr read in the background."""

    def __init__(self, channel: paramiko.Channel, argv: list[str]) -> None:
        self.channel, self.argv = channel, argv
        self.err = OutputDrain(channel.recv_stderr, pid_line=True)

    def wait(self, limit: float, out: OutputDrain) -> bool:
        deadline = time.monotonic() + limit
        if not self.channel.status_event.wait(limit):
            return False
        for drain in (out, self.err):
            drain.join(max(0.0, deadline - time.monotonic()))
        return not (out.is_alive() or self.err.is_alive())


class ChannelReader(io.RawIOBase):
    """A binary stream over `read`; an early end (`cut()` true) or a transport error raises the
    ExecutorError that `lost` makes, never a paramiko exception or a silent truncation."""

    def __init__(self, read: Callable[[int], bytes], cut: Callable[[], bool], lost: Any) -> None:
        self._read, self._cut, self._lost = read, cut, lost

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        try:
            data = self._read(min(size, 16 * CHUNK))
        except LOST as exc:
            raise self._lost() from exc
        if not data and size and self._cut():
            raise self._lost()
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def skip(self, limit: int) -> bool:
        """Read and drop up to `limit` bytes; true if the end came."""
        while limit > 0 and (data := self.read(CHUNK)):
            limit -= len(data)
        return limit > 0 or not self.read(CHUNK)


def read_ahead(handle: paramiko.SFTPFile) -> Callable[[int], bytes]:
    """Reads of the file as it was when opened, each asking for its 32 KiB blocks at once."""
    left = handle.stat().st_size

    def read(size: int) -> bytes:
        nonlocal left
        if left <= 0:
            return bytes(handle.read(size))  # grown since it was opened: to its real end
        data = b"".join(handle.readv([(handle.tell(), min(size, left))]))
        left = left - len(data) if data else 0
        return data

    return read


def send_chunk(channel: paramiko.Channel, chunk: bytes) -> bool:
    try:
        channel.sendall(chunk)
    except LOST:
        return False
    return True


def open_socket(host: str, port: int, timeout: float) -> socket.socket:
    """Connect within `timeout`; a refusal is retried meanwhile, since an sshd being restarted
    (after a dropped connection, a host reboot) refuses connections for a moment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            break
        except ConnectionRefusedError:
            if time.monotonic() + REFUSED_RETRY_DELAY > deadline:
                raise
            time.sleep(REFUSED_RETRY_DELAY)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = {"TCP_KEEPIDLE": KEEPALIVE, "TCP_KEEPINTVL": KEEPALIVE, "TCP_KEEPCNT": 4}
    for name, value in (options | {"TCP_USER_TIMEOUT": DEAD_PEER_MS}).items():
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    return sock


def makedirs(sftp: paramiko.SFTPClient, directory: str) -> None:
    missing: list[str] = []
    while directory not in ("", "/"):
        try:
            sftp.stat(directory)
            break
        except FileNotFoundError:
            missing.append(directory)
            directory = posixpath.dirname(directory)
    for path in reversed(missing):
        try:
            sftp.mkdir(path)
        except OSError:
            sftp.stat(path)  # made meanwhile by someone else is fine; otherwise this raises
