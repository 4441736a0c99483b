"""Pytest fixtures for separate hosts running sshd.

Register once for the whole suite (tests/conftest.py): `pytest_plugins = ["harness.fixtures"]`.
A test module may also import the fixtures it uses (`from harness.fixtures import ssh_host`):
however many modules do, each host is started once per session.

Session fixtures: `ssh_host` (production-like host `tma-prod`, 10.77.0.2) and `ssh_staging_host`
(`tma-staging`, 10.77.0.3), each an `SshServer` logged into as root, started on first use and
stopped at the end of the session. `serve_ssh_host` gives a host of one's own for a `with` block
(tests that kill sshd, reconfigure it, ...). A host name is locked machine-wide while in use, so
two test sessions on one machine take turns instead of tearing down each other's hosts. Without
root, `ip` or sshd (installed with apt-get when missing) the tests are skipped, which the suite's
conftest turns into failures under CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from harness.netns import HarnessUnavailable, create_host, destroy_host, host_lock
from harness.sshd import SshServer, ensure_tools, start_sshd, stop_sshd

PROD = ("tma-prod", "10.77.0.2")
STAGING = ("tma-staging", "10.77.0.3")


@contextmanager
def serve_ssh_host(name: str, address: str, base: Path) -> Iterator[SshServer]:
    """Host `name` at `address` with sshd, files under `base`; all torn down on exit. Raises
    HarnessUnavailable (see `skip_unless_available`) when the machine cannot run it."""
    ensure_tools("sshd", "ssh-keygen")
    with host_lock(name):
        host = create_host(name, address, base)
        try:
            server = start_sshd(host)
            try:
                yield server
            finally:
                stop_sshd(server)
        finally:
            destroy_host(host)


@contextmanager
def skip_unless_available() -> Iterator[None]:
    """Turn HarnessUnavailable raised while setting up into a pytest skip with its reason."""
    try:
        yield
    except HarnessUnavailable as exc:
        pytest.skip(str(exc))


_SERVED: dict[str, SshServer] = {}  # one instance per host, however many modules import these


def _session_host(request: pytest.FixtureRequest, name: str, address: str) -> SshServer:
    if name not in _SERVED:
        stack = ExitStack()
        with skip_unless_available():
            base = request.getfixturevalue("tmp_path_factory").mktemp(name)
            _SERVED[name] = stack.enter_context(serve_ssh_host(name, address, base))

        def stop() -> None:
            _SERVED.pop(name, None)
            stack.close()

        request.session.addfinalizer(stop)
    return _SERVED[name]


@pytest.fixture(scope="session")
def ssh_host(request: pytest.FixtureRequest) -> SshServer:
    return _session_host(request, *PROD)


@pytest.fixture(scope="session")
def ssh_staging_host(request: pytest.FixtureRequest) -> SshServer:
    return _session_host(request, *STAGING)
