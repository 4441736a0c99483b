"""The Docker executor: the shared executor conformance suite run against a container of the
Debian site image in a private engine, then what is particular to Docker (engine and container
errors, 50 MiB streams in bounded memory, a MariaDB server in a DB container)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pytest
import test_executor_conformance as conformance
from harness.docker_engine import DockerEngine

from tma_ops.errors import ExecutorError
from tma_ops.executors import Executor, iter_chunks, open_executor
from tma_ops.executors.docker import DockerExecutor
from tma_ops.model import ExecutorSpec

if TYPE_CHECKING:
    from harness.docker_fixtures import Container

pytestmark = pytest.mark.integration

MIB = 1 << 20

# The shared tests, collected here again against the `executor` fixture of this module.
SHARED = {name: value for name, value in vars(conformance).items() if name.startswith("Test")}
globals().update(SHARED)
workdir = conformance.workdir
PatternSource = conformance.PatternSource
remote_sha256 = conformance.remote_sha256


@pytest.fixture
def executor(site_container: Container) -> Executor:
    return open_executor(site_container.spec)


def test_the_shared_suite_is_collected_here() -> None:
    assert {"TestRun", "TestStreamOut", "TestStreamIn", "TestFiles"} <= set(SHARED)


class TestDockerErrors:
    def test_missing_container(self, docker_engine: DockerEngine) -> None:
        spec = ExecutorSpec(url="docker://tma-no-such-container", docker_host=docker_engine.host)
        executor = DockerExecutor(spec)
        for call in (lambda: executor.run(["true"]), lambda: executor.exists("/etc")):
            with pytest.raises(ExecutorError) as caught:
                call()
            assert str(caught.value) == (
                "docker://tma-no-such-container: container tma-no-such-container not found on "
                f"the Docker engine at {docker_engine.host}"
            )

    def test_stopped_container(self, stopped_container: str, docker_engine: DockerEngine) -> None:
        executor = DockerExecutor(
            ExecutorSpec(url=stopped_container, docker_host=docker_engine.host)
        )
        with pytest.raises(ExecutorError) as caught:
            executor.run(["true"])
        assert (
            str(caught.value)
            == f"{stopped_container}: container tma-stopped is not running (created)"
        )
        with pytest.raises(ExecutorError, match="is not running"), executor.get("/hello"):
            pass

    def test_unreachable_engine(self, tmp_path: Path) -> None:
        host = f"unix://{tmp_path}/no-engine.sock"
        executor = open_executor(ExecutorSpec(url="docker://tma-site", docker_host=host))
        assert isinstance(executor, DockerExecutor)
        with pytest.raises(ExecutorError) as caught:
            executor.run(["true"])
        message = str(caught.value)
        assert message.startswith(f"docker://tma-site: cannot reach the Docker engine at {host}: ")
        assert "\n" not in message

    def test_timeout_kills_the_command(self, site_container: Container) -> None:
        executor = DockerExecutor(site_container.spec)
        started = time.monotonic()
        with pytest.raises(ExecutorError, match="timed out"):
            executor.run(["sleep", "30"], timeout=0.5)
        assert time.monotonic() - started < 10
        sleeping = executor.run(["sh", "-c", "cat /proc/[0-9]*/comm | grep -cx sleep"]).out
        assert sleeping.strip() == "1", "only the container's own `sleep infinity` is left"


def test_site_files_live_in_the_bind_mount(site_container: Container) -> None:
    executor = DockerExecutor(site_container.spec)
    inside, outside = site_container.mount, site_container.host_dir
    executor.put(f"{inside}/conf/settings.php", io.BytesIO(b"<?php // settings"))
    assert (outside / "conf" / "settings.php").read_bytes() == b"<?php // settings"
    (outside / "from-host.txt").write_text("written on the host")
    assert executor.exists(f"{inside}/from-host.txt")
    with executor.get(f"{inside}/from-host.txt") as stream:
        assert stream.read() == b"written on the host"
    executor.run(["rm", "-r", f"{inside}/conf", f"{inside}/from-host.txt"])


def test_50_mib_through_streams_in_bounded_memory(executor: Executor, workdir: str) -> None:
    size, path = 50 * MIB, f"{workdir}/big.bin"
    source = PatternSource(size)
    tracemalloc.start()
    try:
        executor.stream_in(["sh", "-c", 'cat > "$1"', "sh", path], source)
        streamed = _digest_and_size(executor.stream_out(["cat", path]))
        fetched = _digest_and_size(executor.get(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = (source.sha256.hexdigest(), size)
    assert streamed == fetched == expected
    assert remote_sha256(executor, path) == expected[0]
    assert peak < 10 * MIB, f"peak {peak / MIB:.1f} MiB for {size // MIB} MiB of data"


def _digest_and_size(opened: contextlib.AbstractContextManager[BinaryIO]) -> tuple[str, int]:
    digest, total = hashlib.sha256(), 0
    with opened as stream:
        for chunk in iter_chunks(stream, MIB):
            digest.update(chunk)
            total += len(chunk)
    return digest.hexdigest(), total


DATADIR, SOCKET = "/var/lib/tma-db", "/run/mysqld/tma.sock"


@pytest.fixture(scope="module")
def mariadb(db_container: Container) -> Iterator[DockerExecutor]:
    """mariadbd started in the DB container through the executor, reached on its socket."""
    db = DockerExecutor(db_container.spec)
    db.run(["install", "-d", "-o", "mysql", "-g", "mysql", "/run/mysqld", DATADIR])
    db.run(["mariadb-install-db", "--user=mysql", f"--datadir={DATADIR}"], timeout=120)
    start = 'mariadbd --no-defaults --user=mysql --datadir="$1" --socket="$2" --skip-networking'
    db.run(["sh", "-c", f"{start} </dev/null >/tmp/mariadbd.log 2>&1 &", "sh", DATADIR, SOCKET])
    deadline = time.monotonic() + 30
    while not db.run(["mysqladmin", f"--socket={SOCKET}", "ping"], check=False).ok:
        if time.monotonic() > deadline:
            log = db.run(["tail", "-5", "/tmp/mariadbd.log"], check=False).out
            pytest.fail(f"mariadbd did not answer within 30 s: {log}")
        time.sleep(0.2)
    yield db
    db.run(["mysqladmin", f"--socket={SOCKET}", "shutdown"], check=False)


def test_mariadb_in_a_db_container_answers_through_the_executor(mariadb: DockerExecutor) -> None:
    result = mariadb.run(["mysql", f"--socket={SOCKET}", "-N", "-e", "SELECT 1"])
    assert result.out.strip() == "1"


def test_mariadb_dump_and_load_stream_through_the_executor(mariadb: DockerExecutor) -> None:
    sql = b"CREATE DATABASE site; USE site; CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('kept');"
    mariadb.stream_in(["mysql", f"--socket={SOCKET}"], io.BytesIO(sql))
    with mariadb.stream_out(["mysqldump", f"--socket={SOCKET}", "site"]) as dump:
        text = dump.read()
    assert b"INSERT INTO `t` VALUES" in text
    assert b"('kept')" in text
