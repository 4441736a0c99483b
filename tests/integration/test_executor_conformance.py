"""Executor conformance suite, run here against the local executor and an SSH executor (a
separate host in a network namespace, see tests/harness).

Every test talks to the environment only through the `Executor` API, in a working directory the
executor makes itself (`workdir`). An executor joins either by a factory in `EXECUTOR_FACTORIES`
(given the pytest request, it returns the executor and a scratch directory on its environment),
or, as the Docker tests do, by collecting the `Test*` classes and `workdir` of this module in its
own module next to its own `executor` fixture.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from harness.fixtures import ssh_host  # noqa: F401 - until tests/conftest.py registers the plugin
from harness.sshd import SshServer

from tma_ops.errors import ExecutorError
from tma_ops.executors import Executor, iter_chunks
from tma_ops.executors.local import LocalExecutor
from tma_ops.executors.ssh import SshExecutor

pytestmark = pytest.mark.integration

MIB = 1 << 20
BIG = 30 * MIB
MAX_READ = 16 * MIB  # "bounded chunks": no single read of the whole source
MKDTEMP = """
import sys, tempfile
parent = sys.argv[1] if len(sys.argv) > 1 else None
print(tempfile.mkdtemp(prefix="tma-conformance-", dir=parent))
"""


@dataclass
class Target:
    executor: Executor
    scratch: str | None  # where the tests make their directories (None: the temporary directory)


def local_target(request: pytest.FixtureRequest) -> Target:
    return Target(LocalExecutor(), None)


def ssh_target(request: pytest.FixtureRequest) -> Target:
    server: SshServer = request.getfixturevalue("ssh_host")
    executor = SshExecutor(server.spec())
    request.addfinalizer(executor.close)
    scratch = str(server.host.base / "scratch")
    executor.run(["mkdir", "-p", scratch])
    return Target(executor, scratch)


EXECUTOR_FACTORIES: dict[str, Callable[[pytest.FixtureRequest], Target]] = {
    "local": local_target,
    "ssh": ssh_target,
}


@pytest.fixture(params=list(EXECUTOR_FACTORIES))
def target(request: pytest.FixtureRequest) -> Target:
    return EXECUTOR_FACTORIES[request.param](request)


@pytest.fixture
def executor(target: Target) -> Executor:
    return target.executor


@pytest.fixture
def scratch(target: Target) -> str | None:
    return target.scratch


@pytest.fixture
def workdir(executor: Executor, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh directory on the environment: under the `scratch` fixture's directory if the
    module has one (a module reusing these tests may define `executor` alone)."""
    try:
        parent = request.getfixturevalue("scratch")
    except pytest.FixtureLookupError:
        parent = None
    argv = [executor.python, "-c", MKDTEMP, *([parent] if parent else [])]
    path = executor.run(argv).out.strip()
    yield path
    executor.run(["rm", "-rf", path], check=False)


class BrokeOff(Exception):
    pass


class PatternSource(io.RawIOBase):
    """`size` pseudo-random bytes, hashed as they are handed out; records every read size asked
    for and can fail after `fail_after` bytes, like a download that breaks off."""

    def __init__(self, size: int, fail_after: int | None = None) -> None:
        self.remaining = size
        self.fail_after = fail_after
        self.sent = 0
        self.block = os.urandom(MIB + 7)  # an odd length, so chunks never line up with it
        self.sha256 = hashlib.sha256()
        self.read_sizes: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.read_sizes.append(size)
        return super().read(size)

    def readall(self) -> bytes:
        self.read_sizes.append(-1)
        return super().readall()

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise BrokeOff("source broke off")
        count = min(len(buffer), self.remaining, len(self.block))
        start = self.sent % len(self.block)
        data = (self.block[start:] + self.block[:start])[:count]
        buffer[:count] = data
        self.sha256.update(data)
        self.sent += count
        self.remaining -= count
        return count


def remote_sha256(executor: Executor, path: str) -> str:
    return executor.run(["sha256sum", path]).out.split()[0]


def assert_bounded_reads(source: PatternSource) -> None:
    assert source.read_sizes, "the source was never read"
    assert all(0 < size <= MAX_READ for size in source.read_sizes), source.read_sizes[:5]


class TestRun:
    def test_result_carries_exit_code_and_output(self, executor: Executor) -> None:
        result = executor.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
        assert (result.rc, result.ok) == (3, False)
        assert result.out == "out\n"
        assert result.err == "err\n"
        assert executor.run(["true"]).ok

    def test_check_raises_with_exit_code_and_last_stderr_line(self, executor: Executor) -> None:
        script = "echo first >&2; echo 'the last word' >&2; exit 7"
        with pytest.raises(ExecutorError) as caught:
            executor.run(["sh", "-c", script])
        message = str(caught.value)
        assert "7" in message
        assert "the last word" in message
        assert "\n" not in message

    def test_timeout_raises(self, executor: Executor) -> None:
        started = time.monotonic()
        with pytest.raises(ExecutorError, match="timed out"):
            executor.run(["sleep", "30"], timeout=0.5)
        assert time.monotonic() - started < 10

    def test_command_not_found_is_clear(self, executor: Executor) -> None:
        with pytest.raises(ExecutorError) as caught:
            executor.run(["tma-no-such-command"])
        assert "tma-no-such-command" in str(caught.value)
        assert "not found" in str(caught.value).lower()


class TestStreamOut:
    def test_large_output_arrives_intact(self, executor: Executor, workdir: str) -> None:
        path = f"{workdir}/random.bin"
        executor.run(["sh", "-c", f"head -c {BIG} /dev/urandom > {path}"])
        digest, total = hashlib.sha256(), 0
        with executor.stream_out(["cat", path]) as stream:
            for chunk in iter_chunks(stream, MIB):
                digest.update(chunk)
                total += len(chunk)
        assert total == BIG
        assert digest.hexdigest() == remote_sha256(executor, path)

    def test_failing_command_raises_on_close(self, executor: Executor) -> None:
        script = "echo partial; echo 'stream broke' >&2; exit 4"
        with pytest.raises(ExecutorError) as caught, executor.stream_out(["sh", "-c", script]) as s:
            assert s.read() == b"partial\n"  # the failure is raised on close
        assert "stream broke" in str(caught.value)
        assert "4" in str(caught.value)

    def test_command_not_found(self, executor: Executor) -> None:
        missing = ["tma-no-such-command"]
        with (
            pytest.raises(ExecutorError, match="tma-no-such-command"),
            executor.stream_out(missing) as s,
        ):
            s.read()  # an SSH executor only learns of the failure on close

    def test_error_in_consumer_propagates(self, executor: Executor) -> None:
        argv = ["sh", "-c", "yes | head -c 50000000"]
        with pytest.raises(BrokeOff), executor.stream_out(argv) as stream:
            stream.read(MIB)
            raise BrokeOff("consumer gave up")


class TestStreamIn:
    def test_large_input_arrives_intact(self, executor: Executor) -> None:
        source = PatternSource(BIG)
        result = executor.stream_in(["sha256sum"], source)  # type: ignore[arg-type]
        assert result.out.split()[0] == source.sha256.hexdigest()
        assert_bounded_reads(source)

    def test_large_input_into_a_file(self, executor: Executor, workdir: str) -> None:
        path = f"{workdir}/copy.bin"
        source = PatternSource(BIG)
        executor.stream_in(["sh", "-c", f"cat > {path}"], source)  # type: ignore[arg-type]
        assert remote_sha256(executor, path) == source.sha256.hexdigest()

    def test_failing_command_raises(self, executor: Executor) -> None:
        script = "cat > /dev/null; echo 'rejected' >&2; exit 5"
        with pytest.raises(ExecutorError, match="rejected"):
            executor.stream_in(["sh", "-c", script], io.BytesIO(b"data"))

    def test_failing_source_does_not_complete_the_command(
        self, executor: Executor, workdir: str
    ) -> None:
        final = f"{workdir}/final.bin"
        script = f"cat > {workdir}/tmp.bin && mv {workdir}/tmp.bin {final}"
        source = PatternSource(BIG, fail_after=5 * MIB)
        with pytest.raises(BrokeOff):
            executor.stream_in(["sh", "-c", script], source)  # type: ignore[arg-type]
        time.sleep(0.5)  # a command that took the cut stream as complete would finish by now
        assert not executor.exists(final)


class TestFiles:
    def test_put_get_round_trip(self, executor: Executor, workdir: str) -> None:
        path = f"{workdir}/new/dir/object.bin"
        source = PatternSource(BIG)
        executor.put(path, source)  # type: ignore[arg-type]
        assert_bounded_reads(source)
        digest = hashlib.sha256()
        with executor.get(path) as stream:
            for chunk in iter_chunks(stream, MIB):
                digest.update(chunk)
        assert digest.hexdigest() == source.sha256.hexdigest()

    def test_put_is_atomic_when_the_source_fails(self, executor: Executor, workdir: str) -> None:
        fresh, existing = f"{workdir}/fresh.bin", f"{workdir}/existing.bin"
        executor.put(existing, io.BytesIO(b"before"))
        for path in (fresh, existing):
            with pytest.raises(BrokeOff):
                executor.put(path, PatternSource(BIG, fail_after=5 * MIB))  # type: ignore[arg-type]
        assert not executor.exists(fresh)
        with executor.get(existing) as stream:
            assert stream.read() == b"before"
        assert executor.run(["ls", "-A", workdir]).out.split() == ["existing.bin"]

    def test_put_replaces_existing(self, executor: Executor, workdir: str) -> None:
        path = f"{workdir}/object.bin"
        executor.put(path, io.BytesIO(b"one"))
        executor.put(path, io.BytesIO(b"two"))
        with executor.get(path) as stream:
            assert stream.read() == b"two"

    def test_get_missing_raises(self, executor: Executor, workdir: str) -> None:
        with (
            pytest.raises(ExecutorError, match=r"missing\.bin"),
            executor.get(f"{workdir}/missing.bin"),
        ):
            pass

    def test_exists(self, executor: Executor, workdir: str) -> None:
        executor.put(f"{workdir}/file", io.BytesIO(b"x"))
        assert executor.exists(f"{workdir}/file")
        assert executor.exists(workdir)
        assert not executor.exists(f"{workdir}/nothing")
