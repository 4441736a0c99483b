"""`ssh://user@host:port`: commands over SSH sessions, files over SFTP (paramiko).

- One connection, opened on first use, reused, reopened if it died; `close()` (or `with`) ends it.
- Login by key only: `identity_file`, else the SSH agent and ~/.ssh keys; never a password.
- Host keys: `strict` trusts only known_hosts (`known_hosts`, default ~/.ssh/known_hosts);
  `accept-new` records an unknown host's key there and still refuses a changed key; `off` checks
  nothing and is INSECURE: anyone on the network path can impersonate the host.
- `sudo`: commands run as `sudo -n -- argv`; with `sudo_password` (and a rule that asks for it) as
  `sudo -S -k -p '' -- argv`, the password fed on stdin ahead of the data, never in argv, logs or
  messages. SFTP then runs the host's sftp-server through sudo, so files are handled as root too.
- Commands run through the login shell (POSIX sh syntax) as `echo $$ >&2; exec argv`: the first
  stderr line names the process group, so a command that times out, or whose input source or
  output consumer fails, is killed (TERM, then KILL) before its stdin closes and it cannot take a
  cut stream for a complete one.
- TCP keepalive, TCP_USER_TIMEOUT and SSH keepalives turn a silently dead peer into an error.
- `put` writes `path.partial` and renames it; the partial is removed on failure unless the
  connection itself is gone (the next `put` of that path overwrites it).
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import posixpath
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

import paramiko

from tma_ops.errors import ExecutorError
from tma_ops.executors import Result, command_failed, describe_command, iter_chunks
from tma_ops.executors.ssh_support import (
    CHUNK,
    KEEPALIVE,
    LOST,
    AcceptNew,
    ChannelReader,
    OutputDrain,
    RejectUnknown,
    RemoteCommand,
    UnknownHost,
    makedirs,
    open_socket,
    read_ahead,
    send_chunk,
)
from tma_ops.model import ExecutorSpec
from tma_ops.streams import Readable

logging.getLogger("paramiko").addHandler(logging.NullHandler())  # no tracebacks on stderr

ABORT_GRACE = 1.0  # seconds between TERM and KILL
UNREAD_LIMIT = 4 * CHUNK  # output left unread at close: drained up to this, else refused
SFTP_SERVERS = "/usr/lib/openssh /usr/libexec/openssh /usr/lib/ssh /usr/libexec"


class SshExecutor:
    def __init__(self, spec: ExecutorSpec) -> None:
        parts = urlsplit(spec.url)
        self.url, self.spec, self.python = spec.url, spec, spec.python or "python3"
        self.host, self.user = parts.hostname or "", parts.username or getpass.getuser()
        try:
            self.port = parts.port or 22
        except ValueError as exc:
            raise ExecutorError(f"{spec.url}: invalid port") from exc
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._sudo_asks_password: bool | None = None

    def __enter__(self) -> SshExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()  # the SFTP channel goes with the transport
            self._client, self._sftp = None, None

    def run(self, argv: list[str], *, timeout: float | None = None, check: bool = True) -> Result:
        limit = self.spec.command_timeout if timeout is None else timeout
        command = self._start(argv, close_stdin=True)
        out = OutputDrain(command.channel.recv)
        try:
            finished = command.wait(limit, out)
        except BaseException:  # interrupted: the command must not run on unattended
            self._abort(command)
            raise
        if not finished:
            self._abort(command)
            raise ExecutorError(f"{self.url}: {describe_command(argv)} timed out after {limit}s")
        try:
            rc = self._exit_status(command)
        finally:
            command.channel.close()
        return self._checked(argv, Result(rc, out.text(), command.err.text()), check)

    @contextmanager
    def stream_out(self, argv: list[str]) -> Iterator[BinaryIO]:
        command = self._start(argv, close_stdin=True)
        try:
            channel, lost = command.channel, self._lost(f"reading {describe_command(argv)}")
            reader = ChannelReader(channel.recv, lambda: not channel.eof_received, lost)
            try:
                yield cast(BinaryIO, reader)
                finished = reader.skip(UNREAD_LIMIT)
            except BaseException:
                self._abort(command)
                raise
            if not finished:
                self._abort(command)
                what = describe_command(argv)
                raise ExecutorError(f"{self.url}: {what} closed with its output unread")
            rc = self._exit_status(command)
        finally:
            command.channel.close()
        self._checked(argv, Result(rc, "", command.err.text()), check=True)

    def stream_in(self, argv: list[str], source: Readable) -> Result:
        command = self._start(argv)
        try:
            out = OutputDrain(command.channel.recv)
            try:
                for chunk in iter_chunks(source):
                    if not send_chunk(command.channel, chunk):
                        break  # the command stopped reading; its exit status tells why
            except BaseException:
                self._abort(command)  # before stdin closes: a cut stream must not look complete
                raise
            with contextlib.suppress(*LOST):
                command.channel.shutdown_write()
            rc = self._exit_status(command)
            out.join()
        finally:
            command.channel.close()
        return self._checked(argv, Result(rc, out.text(), command.err.text()), check=True)

    def put(self, path: str, source: Readable) -> None:
        sftp, partial = self._sftp_client(), f"{path}.partial"
        try:
            makedirs(sftp, posixpath.dirname(path))
            with sftp.open(partial, "wb") as handle:
                handle.set_pipelined(True)
                for chunk in iter_chunks(source):
                    handle.write(chunk)
            sftp.posix_rename(partial, path)
        except BaseException as exc:
            with contextlib.suppress(*LOST):
                sftp.remove(partial)
            if isinstance(exc, LOST):
                raise self._file_error("writing", path, exc) from exc
            raise

    @contextmanager
    def get(self, path: str) -> Iterator[BinaryIO]:
        try:
            handle = self._sftp_client().open(path, "rb")
            read = read_ahead(handle)
        except LOST as exc:
            raise self._file_error("reading", path, exc) from exc
        with handle:
            yield cast(BinaryIO, ChannelReader(read, lambda: False, self._lost(f"reading {path}")))

    def exists(self, path: str) -> bool:
        try:
            self._sftp_client().lstat(path)
        except FileNotFoundError:
            return False
        except LOST as exc:
            raise self._file_error("checking", path, exc) from exc
        return True

    # -- commands ------------------------------------------------------------------------------

    def _start(self, argv: list[str], close_stdin: bool = False) -> RemoteCommand:
        """argv through the login shell, which first tells its pid (the process group's id)."""
        prefix, stdin = self._sudo()
        command = f"echo $$ >&2; exec {prefix}{shlex.join(argv)}"
        return RemoteCommand(self._open(command, stdin, close_stdin), argv)

    def _open(self, command: str, stdin: bytes = b"", close_stdin: bool = False) -> Any:
        transport = self._transport()
        try:
            channel = transport.open_session(timeout=self.spec.connect_timeout)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            if close_stdin:
                channel.shutdown_write()
        except LOST as exc:
            raise self._lost("starting a command")() from exc
        return channel

    def _sudo(self) -> tuple[str, bytes]:
        """The command prefix and stdin preamble for sudo, if configured."""
        if not self.spec.sudo:
            return "", b""
        password = self.spec.sudo_password
        if password is not None and self._sudo_asks_password is None:
            probe = self._open("sudo -n -k true", close_stdin=True)  # -k: ignore cached ones
            self._sudo_asks_password = probe.recv_exit_status() != 0
            probe.close()
        if password is None or not self._sudo_asks_password:
            return "sudo -n -- ", b""  # a password fed to a NOPASSWD rule would reach the command
        return "sudo -S -k -p '' -- ", password.encode() + b"\n"

    def _exit_status(self, command: RemoteCommand) -> int:
        channel = command.channel
        channel.status_event.wait()
        command.err.join()
        if channel.exit_status != -1:
            return int(channel.exit_status)
        transport = channel.get_transport()
        deadline = time.monotonic() + 0.5  # on a lost connection the transport stops right after
        while transport.is_active() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not transport.is_active():
            raise self._lost(f"running {describe_command(command.argv)}")()
        return -1  # killed by a signal: exit-signal carries no exit code

    def _abort(self, command: RemoteCommand) -> None:
        """TERM, then KILL, to the command's process group (through sudo if configured)."""
        OutputDrain(command.channel.recv, keep=False)  # a full window would hold back the exit
        pid = command.err.pid if command.err.pid_known.wait(ABORT_GRACE) else None
        for name in ("TERM", "KILL"):
            if pid is None or command.channel.status_event.is_set():
                break
            prefix, stdin = self._sudo()
            with contextlib.suppress(ExecutorError, *LOST):
                killer = self._open(f"{prefix}kill -s {name} -- -{pid}", stdin, close_stdin=True)
                killer.status_event.wait(self.spec.connect_timeout)
                killer.close()
            command.channel.status_event.wait(ABORT_GRACE)
        command.channel.close()

    def _checked(self, argv: list[str], result: Result, check: bool) -> Result:
        last = result.err.strip().splitlines()[-1] if result.err.strip() else ""
        missing = (f"{argv[0]}: not found", f"{argv[0]}: command not found")
        if (result.rc == 127 or (self.spec.sudo and result.rc == 1)) and last.endswith(missing):
            raise ExecutorError(f"{self.url}: command not found: {argv[0]}")
        if check and not result.ok:
            raise command_failed(argv, result.rc, result.err, self.url)
        return result

    # -- connection ----------------------------------------------------------------------------

    def _transport(self) -> paramiko.Transport:
        with self._lock:
            transport = self._client.get_transport() if self._client else None
            if transport is None or not transport.is_active():
                if self._client is not None:
                    self._client.close()
                self._client, self._sftp = self._connect(), None
                transport = self._client.get_transport()
            return transport

    def _sftp_client(self) -> paramiko.SFTPClient:
        transport = self._transport()
        if self._sftp is None or self._sftp.get_channel().get_transport() is not transport:
            self._sftp = self._open_sftp(transport)
        return self._sftp

    def _open_sftp(self, transport: paramiko.Transport) -> paramiko.SFTPClient:
        channel = None
        try:
            if not self.spec.sudo:
                return paramiko.SFTPClient.from_transport(transport)
            prefix, stdin = self._sudo()
            script = f"for d in {SFTP_SERVERS}; do [ -x $d/sftp-server ] && exec $d/sftp-server; "
            script += "done; echo sftp-server not found >&2; exit 127"
            channel = self._open(f"{prefix}sh -c {shlex.quote(script)}", stdin)
            return paramiko.SFTPClient(channel)
        except LOST as exc:
            reason = channel.recv_stderr(4096).decode(errors="replace") if channel else ""
            raise ExecutorError(f"{self.url}: cannot start SFTP: {reason.strip() or exc}") from exc

    def _connect(self) -> paramiko.SSHClient:
        client, auth, timeout = paramiko.SSHClient(), self._auth(), self.spec.connect_timeout
        self._trust(client)
        try:
            sock = open_socket(self.host, self.port, timeout)
            timeouts = {f"{kind}timeout": timeout for kind in ("", "banner_", "auth_", "channel_")}
            client.connect(self.host, self.port, username=self.user, sock=sock, **timeouts, **auth)
        except Exception as exc:
            client.close()
            error = self._connect_error(exc)
            if error is None:
                raise
            raise error from exc
        client.get_transport().set_keepalive(KEEPALIVE)
        return client

    def _auth(self) -> dict[str, Any]:
        if self.spec.identity_file is None:
            return {"allow_agent": True, "look_for_keys": True}
        key = Path(self.spec.identity_file).expanduser()
        if not key.is_file():
            raise ExecutorError(f"{self.url}: identity_file {key} does not exist")
        return {"key_filename": str(key), "allow_agent": False, "look_for_keys": False}

    def _trust(self, client: paramiko.SSHClient) -> None:
        if self.spec.host_key_policy == "off":
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # insecure, on request
            return
        path = self._known_hosts()
        try:
            if path.exists():
                client.load_host_keys(str(path))
        except OSError as exc:
            raise ExecutorError(f"{self.url}: cannot read known_hosts {path}: {exc}") from exc
        accept = self.spec.host_key_policy == "accept-new"
        client.set_missing_host_key_policy(AcceptNew(path) if accept else RejectUnknown())

    def _known_hosts(self) -> Path:
        return Path(self.spec.known_hosts or "~/.ssh/known_hosts").expanduser()

    def _connect_error(self, exc: Exception) -> ExecutorError | None:
        target, known = f"{self.host}:{self.port}", self._known_hosts()
        key = self.spec.identity_file or "the SSH agent and default keys"
        reasons: list[tuple[type[BaseException], str]] = [
            (UnknownHost, f"host key for {self.host} is not in known_hosts {known}; add it "
             f"(ssh-keyscan -p {self.port} {self.host} >> {known}) or set host_key_policy: "
             "accept-new"),
            (paramiko.BadHostKeyException, f"host key for {self.host} does not match known_hosts "
             f"{known}: possible man-in-the-middle; if the host was reinstalled, verify its new "
             f"key and replace the old one (ssh-keygen -R {self.host} -f {known})"),
            (paramiko.PasswordRequiredException, f"key {key} is encrypted: load it into ssh-agent"),
            (paramiko.AuthenticationException, f"authentication failed for {self.user}@{target} "
             f"with {key}"),
            (TimeoutError, f"cannot reach {target}: no answer in {self.spec.connect_timeout}s"),
            (ConnectionRefusedError, f"connection refused by {target}: no SSH server there"),
            (paramiko.SSHException, f"SSH handshake with {target} failed (connect_timeout "
             f"{self.spec.connect_timeout}s): {exc}"),
            (OSError, f"cannot reach {target}: {getattr(exc, 'strerror', None) or exc}"),
        ]  # fmt: skip
        for kind, reason in reasons:
            if isinstance(exc, kind):
                return ExecutorError(f"{self.url}: {reason}")
        return None

    def _lost(self, during: str) -> Callable[[], ExecutorError]:
        target = f"{self.host}:{self.port}"
        return lambda: ExecutorError(f"{self.url}: connection to {target} lost while {during}")

    def _file_error(self, doing: str, path: str, exc: BaseException) -> ExecutorError:
        transport = self._client.get_transport() if self._client else None
        connected = transport is not None and transport.is_active()
        if isinstance(exc, EOFError | paramiko.SSHException) or not connected:
            return self._lost(f"{doing} {path}")()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return ExecutorError(f"{self.url}: {doing} {path} failed: {reason}")
