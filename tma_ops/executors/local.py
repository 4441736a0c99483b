"""`local://`: the environment lives on this machine; commands run as subprocesses."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO

from tma_ops.errors import ExecutorError
from tma_ops.executors import Result, command_failed, iter_chunks
from tma_ops.streams import Readable


class LocalExecutor:
    def __init__(self, url: str = "local://") -> None:
        self.url = url
        self.python = sys.executable

    def run(self, argv: list[str], *, timeout: float | None = None, check: bool = True) -> Result:
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise ExecutorError(f"{self.url}: command not found: {argv[0]}") from exc
        except OSError as exc:
            raise ExecutorError(f"{self.url}: cannot run {argv[0]}: {exc.strerror}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ExecutorError(f"{self.url}: {argv[0]} timed out after {timeout}s") from exc
        result = Result(proc.returncode, _text(proc.stdout), _text(proc.stderr))
        if check and not result.ok:
            raise command_failed(argv, result.rc, result.err, self.url)
        return result

    @contextmanager
    def stream_out(self, argv: list[str]) -> Iterator[BinaryIO]:
        proc = self._popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        err_chunks: list[bytes] = []
        drain = _drain_in_thread(proc.stderr, err_chunks)
        assert proc.stdout is not None
        try:
            yield proc.stdout  # type: ignore[misc]
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        rc = proc.wait()
        drain.join()
        if rc != 0:
            raise command_failed(argv, rc, _text(b"".join(err_chunks)), self.url)

    def stream_in(self, argv: list[str], source: Readable) -> Result:
        proc = self._popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out_chunks: list[bytes] = []
        err_chunks: list[bytes] = []
        threads = [
            _drain_in_thread(proc.stdout, out_chunks),
            _drain_in_thread(proc.stderr, err_chunks),
        ]
        assert proc.stdin is not None
        _widen_pipe(proc.stdin.fileno())
        try:
            for chunk in iter_chunks(source):
                proc.stdin.write(chunk)
        except BrokenPipeError:
            pass  # the command stopped reading; its exit code tells why
        except BaseException:
            proc.kill()  # before stdin closes: the command must not take a cut stream as complete
            proc.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):  # flushing to a command that has exited
                proc.stdin.close()
        rc = proc.wait()
        for thread in threads:
            thread.join()
        result = Result(rc, _text(b"".join(out_chunks)), _text(b"".join(err_chunks)))
        if not result.ok:
            raise command_failed(argv, rc, result.err, self.url)
        return result

    @contextmanager
    def get(self, path: str) -> Iterator[BinaryIO]:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the context manager
        except OSError as exc:
            raise ExecutorError(f"{self.url}: cannot read {path}: {exc.strerror}") from exc
        with handle:
            yield handle

    def put(self, path: str, source: Readable) -> None:
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        except OSError as exc:
            raise ExecutorError(f"{self.url}: cannot write {path}: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(OSError):
                partial.unlink()  # gone already after success; left over if the source failed

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def _popen(self, argv: list[str], **streams: int) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(argv, stderr=subprocess.PIPE, **streams)  # type: ignore[call-overload]
        except FileNotFoundError as exc:
            raise ExecutorError(f"{self.url}: command not found: {argv[0]}") from exc
        except OSError as exc:
            raise ExecutorError(f"{self.url}: cannot run {argv[0]}: {exc.strerror}") from exc


def _drain_in_thread(stream: IO[bytes] | None, sink: list[bytes]) -> threading.Thread:
    def drain() -> None:
        assert stream is not None
        while chunk := stream.read(65536):
            sink.append(chunk)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return thread


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _widen_pipe(fd: int) -> None:
    """A 1 MiB pipe instead of 64 KiB: the writer hands over whole chunks, fewer wake-ups."""
    with contextlib.suppress(OSError, AttributeError):  # F_SETPIPE_SZ is Linux-only
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
