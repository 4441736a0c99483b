"""Stack actions as Ansible playbooks, run through ansible-runner against one environment.

The inventory is made from the site's own environment (`inventory_for`), so nobody keeps a
second host list. `run_playbook` runs one playbook from `playbooks/` in a private data directory
that is a temporary directory, removed when the run ends, and:

- journals every task result (ok, failed, unreachable, skipped) as one event with the host, the
  task, its duration, whether it changed something and a short redacted message; never the
  task's full result (ansible-runner already censors it for `no_log` tasks);
- raises `PlaybookFailed` (a StackError) with one line naming the playbook, the failed task and
  its redacted message;
- keeps the artifacts only when asked (`keep_artifacts`), and then only a redacted copy.

Secrets. The become (sudo) password never goes into the inventory, the extra vars or the
command line: ansible-playbook is started with --ask-become-pass and ansible-runner answers the
"BECOME password:" prompt through its pseudo-terminal (its `passwords` mapping). ansible-runner
keeps that mapping in env/passwords inside the private data directory (mode 0600) until the
directory is removed; artifacts never hold it. Extra vars are handed over as env/extravars in
the same directory. Whatever is kept is redacted: the known secrets (the site's, the sudo
password, and every value of an extra var whose name looks secret) and every value of a key
that looks secret become "***"; the controller's environment is dropped from the `command` file.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tma_ops.errors import StackError
from tma_ops.faults import pause_point
from tma_ops.journal import Journal
from tma_ops.model import Environment, ExecutorSpec
from tma_ops.redact import REDACTED, Redactor, is_secret_key
from tma_ops.signals import held_signals

BECOME_PROMPT = r"BECOME password.*:\s*?$"
MAX_MESSAGE = 400
_STATUSES = {
    "runner_on_ok": "ansible-ok",
    "runner_on_failed": "ansible-failed",
    "runner_on_unreachable": "ansible-unreachable",
    "runner_on_skipped": "ansible-skipped",
}
_FAILURES = ("ansible-failed", "ansible-unreachable")
_NO_LOG_MESSAGE = "output hidden (no_log)"
DOCKER_CONNECTION = "community.docker.docker"


class PlaybookFailed(StackError):
    """A playbook did not succeed; `task` and `host` name the first failure, when there is one."""

    def __init__(self, playbook: str, message: str, task: str = "", host: str = "") -> None:
        self.playbook, self.message, self.task, self.host = playbook, message, task, host
        where = f"task {task!r} failed on {host}" if task else "failed"
        super().__init__(f"playbook {playbook}: {where}: {message}")


@dataclass(frozen=True)
class TaskResult:
    host: str
    task: str
    status: str  # ansible-ok | ansible-failed | ansible-unreachable | ansible-skipped
    changed: bool
    duration_s: float
    msg: str
    ignored: bool = False  # a failure the playbook ignores (ignore_errors)

    def journal_data(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k not in ("status", "ignored")}
        return data | {"ignored": True} if self.ignored else data


@dataclass(frozen=True)
class PlaybookResult:
    playbook: str
    status: str  # ansible-runner's: successful | failed | timeout | canceled
    rc: int
    tasks: list[TaskResult]
    artifacts: Path | None = None  # the redacted copy, when one was asked for

    @property
    def changed(self) -> int:
        return sum(1 for task in self.tasks if task.changed)


@dataclass(frozen=True)
class PlaybookContext:
    """What a stack driver needs to run its playbooks within a run: journal, names, secrets."""

    journal: Journal | None
    run_id: str
    site: str
    step: str
    secrets: tuple[str, ...] = ()
    keep_artifacts: Path | None = None
    pause_label: str = ""  # names the crash-test pause points after each applied component

    def applied(self, component: str) -> None:
        """Drivers call this once a component is installed: a crash test may stop the run here."""
        if self.pause_label:
            pause_point(f"{self.pause_label}:after-{component}")

    def run(self, playbook: str, env: Environment, extravars: dict[str, Any]) -> PlaybookResult:
        return run_playbook(
            playbook,
            env,
            extravars,
            journal=self.journal,
            run_id=self.run_id,
            site=self.site,
            step=self.step,
            secrets=list(self.secrets),
            keep_artifacts=self.keep_artifacts,
        )


def playbooks_dir() -> Path:
    """`tma_ops/playbooks` in an installed wheel, else `playbooks/` at the repository root."""
    package = Path(__file__).resolve().parent
    candidates = (package / "playbooks", package.parent / "playbooks")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise StackError(f"playbooks directory not found in {' or '.join(map(str, candidates))}")


def inventory_for(env: Environment, host_alias: str) -> dict[str, Any]:
    """An Ansible inventory (JSON/YAML structure) holding one host: `env` as `host_alias`.

    It holds no secret: the become password goes through the prompt (see the module doc).
    """
    spec = env.executor
    builders = {"local": _local_host, "ssh": _ssh_host, "docker": _docker_host}
    host = builders[spec.scheme](spec)
    if spec.sudo:
        host |= {"ansible_become": True, "ansible_become_method": "sudo"}
    if spec.python and spec.scheme != "local":
        host["ansible_python_interpreter"] = spec.python
    return {"all": {"hosts": {host_alias: host}}}


def _local_host(spec: ExecutorSpec) -> dict[str, Any]:
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


def _ssh_host(spec: ExecutorSpec) -> dict[str, Any]:
    url = urlsplit(spec.url)
    host: dict[str, Any] = {
        "ansible_connection": "ssh",
        "ansible_host": url.hostname,
        "ansible_port": url.port or 22,
        "ansible_host_key_checking": spec.host_key_policy != "off",
        "ansible_ssh_common_args": shlex.join(_host_key_options(spec)),
    }
    if url.username:
        host["ansible_user"] = unquote(url.username)
    if spec.identity_file:
        host["ansible_ssh_private_key_file"] = str(Path(spec.identity_file).expanduser())
    return host


def _host_key_options(spec: ExecutorSpec) -> list[str]:
    """ssh options for the host key policy; none of them can end in a prompt."""
    if spec.host_key_policy == "off":
        return ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    checking = "yes" if spec.host_key_policy == "strict" else "accept-new"
    options = ["-o", f"StrictHostKeyChecking={checking}"]
    if spec.known_hosts:
        options += ["-o", f"UserKnownHostsFile={Path(spec.known_hosts).expanduser()}"]
    return options


def _docker_host(spec: ExecutorSpec) -> dict[str, Any]:
    user, _, container = urlsplit(spec.url).netloc.rpartition("@")
    host: dict[str, Any] = {"ansible_connection": DOCKER_CONNECTION, "ansible_host": container}
    if user:
        host["ansible_user"] = unquote(user)
    if spec.docker_host:
        host["ansible_docker_extra_args"] = shlex.join(["-H", spec.docker_host])
    return host


def connection_problem(env: Environment) -> str | None:
    """Why the connection plugin `env` needs is missing, or None when it is there."""
    if env.executor.scheme != "docker" or _collection_installed("community", "docker"):
        return None
    return (
        f"{env.executor.url}: docker:// environments need the community.docker Ansible "
        "collection, which ansible-core does not ship: pip install 'ansible>=12,<13' (it "
        "bundles the collections) or ansible-galaxy collection install community.docker"
    )


def _collection_installed(namespace: str, name: str) -> bool:
    """Whether a collection is where ansible looks by default (or ANSIBLE_COLLECTIONS_PATH)."""
    configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep)
    defaults = ["~/.ansible/collections", "/usr/share/ansible/collections"]
    roots = [Path(root).expanduser() for root in [*configured, *defaults, *sys.path] if root]
    return any((root / "ansible_collections" / namespace / name).is_dir() for root in roots)


def run_playbook(
    playbook: str,
    env: Environment,
    extravars: dict[str, Any],
    *,
    journal: Journal | None,
    run_id: str,
    site: str,
    step: str,
    secrets: list[str],
    keep_artifacts: Path | None = None,
) -> PlaybookResult:
    """Run `playbook` (a name in playbooks/, or a path) on `env`; raise PlaybookFailed unless ok.

    `keep_artifacts`: a directory (created when missing) that receives a redacted copy of the
    run's artifacts (stdout, job_events/, command, status, rc); by default nothing is kept.
    """
    # Deferred: a second to import, needed only when a playbook runs.
    import ansible_runner
    from ansible_runner.exceptions import AnsibleRunnerException

    path = _playbook_path(playbook)
    problem = connection_problem(env)
    if problem:
        raise PlaybookFailed(path.name, problem)
    redactor = Redactor([*secrets, *env.executor.secrets(), *secret_values(extravars)])
    recorder = _TaskRecorder(journal, run_id, site, step, redactor)
    with tempfile.TemporaryDirectory(prefix="tma-ansible-") as tmp:
        private = Path(tmp)
        try:
            with held_signals() as cancelled:
                runner = ansible_runner.run(
                    **_runner_kwargs(path, env, extravars, private, site),
                    event_handler=recorder,
                    cancel_callback=cancelled,
                )
        except AnsibleRunnerException as exc:
            raise PlaybookFailed(path.name, one_line(redactor.text(str(exc)))) from exc
        artifacts = Path(runner.config.artifact_dir)
        last_line = _last_output_line(artifacts / "stdout", redactor)
        kept = _keep(artifacts, keep_artifacts, redactor) if keep_artifacts else None
    result = PlaybookResult(path.name, str(runner.status), int(runner.rc), recorder.tasks, kept)
    if result.status != "successful":
        raise _failure(result, last_line)
    return result


def _playbook_path(playbook: str) -> Path:
    path = Path(playbook)
    if not path.is_absolute():
        path = playbooks_dir() / playbook
    if not path.is_file():
        raise StackError(f"playbook {playbook}: not found at {path}")
    return path


def _runner_kwargs(
    path: Path, env: Environment, extravars: dict[str, Any], private: Path, host: str
) -> dict[str, Any]:
    password = env.executor.sudo_password if env.executor.sudo else None
    return {
        "private_data_dir": str(private),
        "project_dir": str(path.parent),
        "playbook": path.name,
        "inventory": inventory_for(env, host),
        "extravars": extravars,
        "envvars": ansible_envvars(env, private),
        "passwords": {BECOME_PROMPT: password} if password else {},
        "cmdline": "--ask-become-pass" if password else None,
        "quiet": True,
    }


def ansible_envvars(env: Environment, private: Path) -> dict[str, str]:
    """ANSIBLE_* settings of a run, and a PATH on which this interpreter's ansible-playbook is."""
    spec = env.executor
    temp = private / "tmp"
    envvars = {
        # ansible-playbook is installed beside the interpreter running tma-ops (a venv's bin/).
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOWS": "True",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        # Host keys are checked per host (inventory_for); this only rules out a prompt.
        "ANSIBLE_HOST_KEY_CHECKING": "False" if spec.host_key_policy == "off" else "True",
        "ANSIBLE_TIMEOUT": str(max(1, round(spec.connect_timeout))),
        "ANSIBLE_TASK_TIMEOUT": str(max(1, round(spec.command_timeout))),
        "ANSIBLE_LOCAL_TEMP": str(temp / "local"),
    }
    if spec.scheme == "local":  # on another host, the default (~/.ansible/tmp there) stays
        envvars["ANSIBLE_REMOTE_TEMP"] = str(temp / "remote")
    return envvars


def secret_values(data: Any, secret: bool = False) -> list[str]:
    """Every string found under a key whose name looks secret, at any depth."""
    if isinstance(data, dict):
        found: list[str] = []
        for key, value in data.items():
            found += secret_values(value, secret or is_secret_key(str(key)))
        return found
    if isinstance(data, list | tuple):
        return [text for item in data for text in secret_values(item, secret)]
    return [data] if secret and isinstance(data, str) else []


@dataclass
class _TaskRecorder:
    """ansible-runner's event handler: one TaskResult (and journal event) per task result."""

    journal: Journal | None
    run_id: str
    site: str
    step: str
    redactor: Redactor
    tasks: list[TaskResult] = field(default_factory=list)

    def __call__(self, event: dict[str, Any]) -> bool:
        status = _STATUSES.get(str(event.get("event")))
        if status is not None:
            task = self._task_result(status, event)
            self.tasks.append(task)
            if self.journal is not None:
                self.journal.append(
                    run_id=self.run_id,
                    site=self.site,
                    step=self.step,
                    status=status,
                    data=task.journal_data(),
                )
        return True  # ansible-runner writes the event to the (temporary) artifacts

    def _task_result(self, status: str, event: dict[str, Any]) -> TaskResult:
        data = event.get("event_data") or {}
        res: dict[str, Any] = data["res"] if isinstance(data.get("res"), dict) else {}
        text = self.redactor.text
        # A no_log result is censored whole; its display line still says "changed: [host]".
        changed = str(event.get("stdout") or "").lstrip().startswith("changed:")
        return TaskResult(
            host=text(str(data.get("host") or "")),
            task=text(str(data.get("task") or "")),
            status=status,
            changed=bool(res.get("changed", changed)),
            duration_s=round(float(data.get("duration") or 0.0), 3),
            msg=one_line(text(result_message(res))),
            ignored=bool(data.get("ignore_errors")),
        )


def result_message(res: dict[str, Any]) -> str:
    """A task result's message, with the last line of its stderr when it failed."""
    if "censored" in res or res.get("_ansible_no_log"):
        return _NO_LOG_MESSAGE
    msg = res.get("msg") or ""
    msg = msg if isinstance(msg, str) else json.dumps(msg, default=str)
    stderr = str(res.get("stderr") or "").strip()
    if stderr and (res.get("failed") or res.get("rc")):
        last = stderr.splitlines()[-1].strip()
        msg = f"{msg}: {last}" if msg else last
    return msg


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _failure(result: PlaybookResult, last_line: str) -> PlaybookFailed:
    failed = [t for t in result.tasks if t.status in _FAILURES and not t.ignored]
    if failed:
        first = failed[0]
        return PlaybookFailed(result.playbook, first.msg or "failed", first.task, first.host)
    reason = last_line or f"ansible-runner status {result.status}"
    return PlaybookFailed(result.playbook, f"{reason} (rc {result.rc})")


def _last_output_line(stdout: Path, redactor: Redactor) -> str:
    """The last line ansible-playbook printed (syntax errors, missing files), redacted."""
    try:
        lines = stdout.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return one_line(redactor.text(lines[-1])) if lines else ""


def _keep(artifacts: Path, destination: Path, redactor: Redactor) -> Path:
    """Copy the run's artifacts to `destination`, every file redacted (JSON as data)."""
    destination.mkdir(parents=True, exist_ok=True, mode=0o700)
    for source in sorted(artifacts.rglob("*")):
        if not source.is_file():
            continue
        target = destination / source.relative_to(artifacts)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.write_text(_redacted_file(source, redactor), encoding="utf-8")
        target.chmod(0o600)
    return destination


def _redacted_file(source: Path, redactor: Redactor) -> str:
    text = source.read_bytes().decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        return redactor.text(text)
    if source.name == "command" and isinstance(data, dict):
        # The controller's whole environment: nothing a reader needs, maybe someone's token.
        data["env"] = REDACTED
    return json.dumps(redactor(data), ensure_ascii=False)
