"""What only the SSH executor can get wrong: reaching the host, keys, host keys, sudo, timeouts and
connections that die mid-stream. Every failure is one clear ExecutorError line naming the URL.
(The behaviour it shares with the other executors is in test_executor_conformance.py.)"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness.fixtures import serve_ssh_host, skip_unless_available, ssh_host  # noqa: F401
from harness.sshd import (
    SshServer,
    add_login_user,
    kill_sshd,
    remove_user,
    restart_sshd,
    wrong_identity,
    wrong_known_hosts,
)

from tma_ops.errors import ExecutorError
from tma_ops.executors import open_executor
from tma_ops.executors.ssh import SshExecutor
from tma_ops.model import ExecutorSpec

pytestmark = pytest.mark.integration

MIB = 1 << 20
UNUSED_ADDRESS = "10.77.0.250"  # on the test bridge, no host behind it
SUDO_PASSWORD = "tma-sudo-S3cret!"


def failure(call: Callable[[], object], url: str) -> str:
    """The message of the ExecutorError that `call` raises, checked to be one line naming url."""
    with pytest.raises(ExecutorError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{url}: ")
    return message


def connect(spec: ExecutorSpec) -> None:
    with SshExecutor(spec) as executor:
        executor.run(["true"])


def test_open_executor_gives_an_ssh_executor(ssh_host: SshServer) -> None:  # noqa: F811
    executor = open_executor(ssh_host.spec())
    assert isinstance(executor, SshExecutor)
    with executor:
        assert executor.run(["hostname", "-I"]).out.split() == [ssh_host.host.address]
    assert isinstance(open_executor(ssh_host.url), SshExecutor)


def test_connection_is_reused_and_reopened(ssh_host: SshServer) -> None:  # noqa: F811
    with SshExecutor(ssh_host.spec()) as executor:
        first = executor.run(["sh", "-c", "echo $SSH_CONNECTION"]).out
        assert executor.run(["sh", "-c", "echo $SSH_CONNECTION"]).out == first
        executor.close()
        assert executor.run(["true"]).ok


class TestReachingTheHost:
    def test_unreachable_address(self, ssh_host: SshServer) -> None:  # noqa: F811
        spec = ssh_host.spec(url=f"ssh://root@{UNUSED_ADDRESS}", connect_timeout=1)
        started = time.monotonic()
        message = failure(lambda: connect(spec), spec.url)
        assert time.monotonic() - started < 5
        assert f"cannot reach {UNUSED_ADDRESS}:22" in message

    def test_closed_port(self, ssh_host: SshServer) -> None:  # noqa: F811
        spec = ssh_host.spec(url=f"ssh://root@{ssh_host.host.address}:2222", connect_timeout=2)
        message = failure(lambda: connect(spec), spec.url)
        assert "connection refused" in message

    def test_wrong_key(self, ssh_host: SshServer) -> None:  # noqa: F811
        spec = ssh_host.spec(identity_file=str(wrong_identity(ssh_host)))
        message = failure(lambda: connect(spec), spec.url)
        assert "authentication failed for root@" in message
        assert str(spec.identity_file) in message

    def test_missing_key_file(self, ssh_host: SshServer, tmp_path: Path) -> None:  # noqa: F811
        spec = ssh_host.spec(identity_file=str(tmp_path / "no-such-key"))
        assert "does not exist" in failure(lambda: connect(spec), spec.url)


class TestHostKeys:
    def test_mismatch_is_refused(self, ssh_host: SshServer) -> None:  # noqa: F811
        known_hosts = wrong_known_hosts(ssh_host)
        for policy in ("strict", "accept-new"):
            spec = ssh_host.spec(known_hosts=str(known_hosts), host_key_policy=policy)
            message = failure(functools.partial(connect, spec), spec.url)
            assert f"does not match known_hosts {known_hosts}" in message
            assert "man-in-the-middle" in message

    def test_unknown_host_is_refused_when_strict(
        self,
        ssh_host: SshServer,  # noqa: F811
        tmp_path: Path,
    ) -> None:
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text("")
        spec = ssh_host.spec(known_hosts=str(known_hosts))
        message = failure(lambda: connect(spec), spec.url)
        assert f"not in known_hosts {known_hosts}" in message
        assert "ssh-keyscan" in message
        assert "accept-new" in message

    def test_accept_new_records_the_key(self, ssh_host: SshServer, tmp_path: Path) -> None:  # noqa: F811
        known_hosts = tmp_path / "new" / "known_hosts"
        connect(ssh_host.spec(known_hosts=str(known_hosts), host_key_policy="accept-new"))
        assert known_hosts.read_text() == f"{ssh_host.host.address} {ssh_host.host_public_key}\n"
        connect(ssh_host.spec(known_hosts=str(known_hosts)))  # now known to strict checking

    def test_off_checks_and_writes_nothing(self, ssh_host: SshServer, tmp_path: Path) -> None:  # noqa: F811
        known_hosts = tmp_path / "known_hosts"
        connect(ssh_host.spec(known_hosts=str(known_hosts), host_key_policy="off"))
        connect(ssh_host.spec(known_hosts=str(wrong_known_hosts(ssh_host)), host_key_policy="off"))
        assert not known_hosts.exists()


class TestTimeouts:
    def test_command_timeout_is_the_default(self, ssh_host: SshServer) -> None:  # noqa: F811
        with SshExecutor(ssh_host.spec(command_timeout=1)) as executor:
            started = time.monotonic()
            message = failure(lambda: executor.run(["sleep", "417"]), executor.url)
            assert "timed out after 1.0s" in message
            assert time.monotonic() - started < 5
            assert executor.run(["sleep", "0.1"], timeout=5).ok  # a per-call timeout overrides

    def test_timed_out_command_is_killed(self, ssh_host: SshServer) -> None:  # noqa: F811
        with SshExecutor(ssh_host.spec()) as executor:
            failure(
                lambda: executor.run(["sh", "-c", "sleep 418; true"], timeout=0.5), executor.url
            )
            still_running = executor.run(["pgrep", "-f", "sleep 418"], check=False)
            assert still_running.rc == 1, still_running.out


@pytest.fixture
def sudoer(ssh_host: SshServer) -> Iterator[SshServer]:  # noqa: F811
    with skip_unless_available():
        yield add_login_user(ssh_host, "tma-deploy", sudo="nopasswd")
    remove_user("tma-deploy")


@pytest.fixture
def password_sudoer(ssh_host: SshServer) -> Iterator[SshServer]:  # noqa: F811
    with skip_unless_available():
        yield add_login_user(ssh_host, "tma-admin", sudo="password", password=SUDO_PASSWORD)
    remove_user("tma-admin")


class TestSudo:
    def test_commands_run_as_root(self, sudoer: SshServer) -> None:
        with SshExecutor(sudoer.spec()) as plain, SshExecutor(sudoer.spec(sudo=True)) as root:
            assert plain.run(["id", "-u"]).out.strip() != "0"
            assert root.run(["id", "-u"]).out == "0\n"
            assert root.stream_in(["sh", "-c", "id -u; cat >/dev/null"], io.BytesIO(b"x")).ok

    def test_files_are_handled_as_root(self, sudoer: SshServer) -> None:
        private = sudoer.host.base / "root-only"
        private.mkdir(mode=0o700, exist_ok=True)
        path = f"{private}/secret.txt"
        with SshExecutor(sudoer.spec(sudo=True)) as root:
            root.put(path, io.BytesIO(b"for root"))
            with root.get(path) as stream:
                assert stream.read() == b"for root"
            assert root.exists(path)
        assert Path(path).stat().st_uid == 0
        with SshExecutor(sudoer.spec()) as plain:
            assert "Permission denied" in failure(lambda: plain.exists(path), plain.url)

    def test_cut_source_is_not_taken_as_complete(self, sudoer: SshServer) -> None:
        final = sudoer.host.base / "sudo-final.bin"
        script = f"cat > {final}.tmp && mv {final}.tmp {final}"
        with SshExecutor(sudoer.spec(sudo=True)) as root:
            with pytest.raises(BrokeOff):
                root.stream_in(["sh", "-c", script], CutSource(8 * MIB, cut_after=2 * MIB))
            time.sleep(0.5)
            assert not root.exists(str(final))

    def test_password_goes_to_sudo_only(self, password_sudoer: SshServer) -> None:
        spec = password_sudoer.spec(sudo=True, sudo_password=SUDO_PASSWORD)
        data = os.urandom(3 * MIB)
        with SshExecutor(spec) as root:
            assert root.run(["id", "-u"]).out == "0\n"
            digest = root.stream_in(["sha256sum"], io.BytesIO(data)).out.split()[0]
            assert digest == hashlib.sha256(data).hexdigest()  # nothing but the data on stdin
            with root.stream_out(["ps", "-eo", "args"]) as stream:
                assert SUDO_PASSWORD.encode() not in stream.read()
            path = f"{password_sudoer.host.base}/by-root.bin"
            root.put(path, io.BytesIO(data))  # SFTP through `sudo -S`
            with root.get(path) as stream:
                assert stream.read() == data
        assert Path(path).stat().st_uid == 0

    def test_wrong_or_missing_password(self, password_sudoer: SshServer) -> None:
        for password in ("wrong-password", None):
            spec = password_sudoer.spec(sudo=True, sudo_password=password)
            with SshExecutor(spec) as root:
                message = failure(functools.partial(root.run, ["id", "-u"]), root.url)
                assert "sudo" in message
                assert SUDO_PASSWORD not in message


class BrokeOff(Exception):
    pass


class CutSource(io.RawIOBase):
    """`size` bytes handed out in reads; calls `on_cut` (or raises BrokeOff) at `cut_after`."""

    def __init__(self, size: int, cut_after: int, on_cut: Callable[[], None] | None = None) -> None:
        self.left, self.cut_after, self.on_cut, self.sent = size, cut_after, on_cut, 0
        self.block = os.urandom(MIB)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.sent >= self.cut_after:
            if self.on_cut is None:
                raise BrokeOff("source broke off")
            self.on_cut()
            self.on_cut, self.cut_after = None, self.left + self.sent + 1
        count = min(len(buffer), self.left, len(self.block))
        buffer[:count] = self.block[:count]
        self.sent, self.left = self.sent + count, self.left - count
        return count


@pytest.fixture(scope="module")
def fragile_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A host of its own whose sshd the tests kill (restarted before each test)."""
    with (
        skip_unless_available(),
        serve_ssh_host("tma-fragile", "10.77.0.9", tmp_path_factory.mktemp("fragile")) as server,
    ):
        yield server


@pytest.fixture
def fragile(fragile_host: SshServer) -> Iterator[SshExecutor]:
    if fragile_host.process.poll() is not None:
        restart_sshd(fragile_host)
    with SshExecutor(fragile_host.spec()) as executor:
        yield executor


class TestConnectionLost:
    """sshd dies (every process of it, as on a crash or reboot): an error within seconds."""

    def test_during_stream_out(self, fragile: SshExecutor, fragile_host: SshServer) -> None:
        argv = ["head", "-c", str(50 * MIB), "/dev/zero"]
        started = time.monotonic()
        with pytest.raises(ExecutorError, match="lost") as caught, fragile.stream_out(argv) as out:
            assert out.read(MIB)
            kill_sshd(fragile_host)
            started = time.monotonic()
            while out.read(MIB):
                pass
        assert time.monotonic() - started < 10
        assert str(caught.value).startswith(fragile.url)

    def test_during_stream_in(self, fragile: SshExecutor, fragile_host: SshServer) -> None:
        source = CutSource(50 * MIB, cut_after=5 * MIB, on_cut=lambda: kill_sshd(fragile_host))
        started = time.monotonic()
        message = failure(
            lambda: fragile.stream_in(["sh", "-c", "cat >/dev/null"], source), fragile.url
        )
        assert "lost" in message
        assert time.monotonic() - started < 10

    def test_during_put(self, fragile: SshExecutor, fragile_host: SshServer) -> None:
        path = str(fragile_host.host.base / "upload.bin")
        source = CutSource(50 * MIB, cut_after=5 * MIB, on_cut=lambda: kill_sshd(fragile_host))
        message = failure(lambda: fragile.put(path, source), fragile.url)
        assert "lost" in message
        assert not Path(path).exists()

    def test_during_a_command_and_reconnect(
        self, fragile: SshExecutor, fragile_host: SshServer
    ) -> None:
        threading.Timer(0.5, kill_sshd, [fragile_host]).start()
        started = time.monotonic()
        message = failure(lambda: fragile.run(["sleep", "419"]), fragile.url)
        assert "lost" in message
        assert time.monotonic() - started < 10
        restart_sshd(fragile_host)
        assert fragile.run(["true"]).ok  # the executor opens a new connection
