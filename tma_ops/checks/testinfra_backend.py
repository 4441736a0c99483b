"""testinfra over the environment's own executor.

testinfra's modules (services, sockets, files) run shell commands through a backend. This one
hands every command to the executor of the environment, so a host check reaches the host exactly
as the rest of tma-ops does: the same SSH settings and host keys, the same sudo, the same Docker
engine. testinfra's own connections and sudo are never used.
"""

from __future__ import annotations

from typing import Any

from testinfra.backend.base import BaseBackend, CommandResult
from testinfra.host import Host

from tma_ops.executors import Executor, telling_line

COMMAND_TIMEOUT = 60.0  # seconds; a probe of the host that takes longer is a failure itself
SHOWN_COMMAND = 60  # characters of a command quoted in a message
SHOWN_OUTPUT = 100  # characters of what it said


class ExecutorBackend(BaseBackend):
    NAME = "tma-ops"

    def __init__(self, executor: Executor, timeout: float = COMMAND_TIMEOUT) -> None:
        super().__init__(executor.url)
        self.executor = executor
        self.timeout = timeout
        self.last_result: CommandResult | None = None

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        # Not get_command(): sudo is the executor's setting, applied to every command it runs.
        command = self.quote(command, *args)
        done = self.executor.run(["sh", "-c", command], check=False, timeout=self.timeout)
        result = self.result(done.rc, self.encode(command), done.out.encode(), done.err.encode())
        self.last_result = result
        return result

    def get_encoding(self) -> str:
        return "utf-8"  # the executor decoded the output as UTF-8: no need to ask the host

    def describe_last(self) -> str:
        """The last command and how it ended, for a "cannot tell" message."""
        if self.last_result is None:
            return "no command ran"
        return describe_result(self.last_result)


def executor_host(executor: Executor) -> Host:
    """A testinfra Host whose commands all go through `executor`."""
    backend = ExecutorBackend(executor)
    host = Host(backend)
    backend.set_host(host)
    return host


def describe_result(result: CommandResult) -> str:
    """ "`command` exited N: what it said", the command cut short (it may be a long script)."""
    command = result.command.decode("utf-8", errors="replace")
    if len(command) > SHOWN_COMMAND:
        command = command[: SHOWN_COMMAND - 3] + "..."
    said = telling_line(result.stderr) if result.stderr.strip() else result.stdout.strip()
    said = said.splitlines()[0][:SHOWN_OUTPUT] if said else "no output"
    return f"`{command}` exited {result.rc}: {said}"
