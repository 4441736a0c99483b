"""Recreate a container on another image with the same settings, or leave the old one in place.

The new container's settings are the old one's inspect data (Config, HostConfig, networks) minus
what the old IMAGE gave it (its Env entries, labels, command, entrypoint, working dir, user,
exposed ports, volumes, healthcheck, stop signal), so the new image's defaults apply. Anonymous
volumes are passed on by name, so their data stays.

The swap: rename the old container to `<name>.tma-old` and stop it, create and start the new one
under the name, wait until it runs (healthy, if it has a healthcheck; answering on the declared
port), then remove the old one. Any failure removes the new container, renames the old one back
and starts it. A run interrupted in between leaves `<name>.tma-old`: recover() undoes that run
first (the update is then made again from the start).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tma_ops.errors import IntegrityError, StackError, TmaError
from tma_ops.stacks.docker_engine import Engine

BACKUP_SUFFIX = ".tma-old"
SETTLE = 1.0  # seconds a new container must keep running (a bad command exits at once)
POLL = 0.25
DEFAULT_STOP_TIMEOUT = 10
# Set by the old image; dropped when equal to its value, so the new image's value applies.
IMAGE_DEFAULTS = ("Cmd", "Entrypoint", "WorkingDir", "User", "StopSignal", "Healthcheck")
# Inside the container: does something accept a TCP connection on 127.0.0.1:$1?
PROBE = r"""
if command -v bash >/dev/null 2>&1; then
  exec bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' probe "$1"
elif command -v nc >/dev/null 2>&1; then
  exec nc -z -w 2 127.0.0.1 "$1"
elif command -v python3 >/dev/null 2>&1; then
  exec python3 -c 'import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2)' "$1"
fi
echo "no bash, nc or python3 in the container to probe the port with" >&2
exit 125
"""
PROBE_IMPOSSIBLE = 125


@dataclass(frozen=True)
class Readiness:
    port: int | None  # must accept a connection inside the container
    timeout: float  # seconds to run (and be healthy, and answer)


class NotReady(StackError):
    pass


def backup_name(name: str) -> str:
    return name + BACKUP_SUFFIX


def recover(engine: Engine, name: str) -> bool:
    """Undo an update of `name` that was interrupted: the old container takes its name back and
    runs again; a new container left under the name is removed. True when there was one."""
    old = engine.container(backup_name(name))
    if old is None:
        return False
    new = engine.container(name)
    if new is not None:
        engine.call(f"remove container {name}", engine.api.remove_container, new["Id"], force=True)
    engine.call(f"rename container {backup_name(name)}", engine.api.rename, old["Id"], name)
    if not old["State"].get("Running"):
        engine.call(f"start container {name}", engine.api.start, old["Id"])
    return True


def replace(
    engine: Engine, old: dict[str, Any], reference: str, image_id: str, readiness: Readiness
) -> None:
    """Recreate the container `old` (inspect data) on image `reference`, which must be image
    `image_id`; the old container is back, running as before, if anything fails."""
    name = old["Name"].lstrip("/")
    old_image = engine.image(old["Image"]) or {}
    body, more_networks = creation_request(old, old_image.get("Config") or {}, reference)
    running = bool(old["State"].get("Running"))
    engine.call(f"rename container {name}", engine.api.rename, old["Id"], backup_name(name))
    new_id = ""
    try:
        if running:
            stop_timeout = old["Config"].get("StopTimeout") or DEFAULT_STOP_TIMEOUT
            engine.call(f"stop container {name}", engine.api.stop, old["Id"], timeout=stop_timeout)
        created = engine.call(
            f"create container {name}", engine.api.create_container_from_config, body, name
        )
        new_id = created["Id"]
        _check_image(engine, name, new_id, reference, image_id)
        for network, endpoint in more_networks.items():
            engine.call(f"connect {name} to {network}", _connect, engine, new_id, network, endpoint)
        if running:
            engine.call(f"start container {name}", engine.api.start, new_id)
            wait_ready(engine, new_id, readiness)
    except BaseException as exc:
        _put_back(engine, name, old, new_id, running, exc)
        if not isinstance(exc, TmaError):
            raise
        again = "runs again" if running else "is back"
        kind = IntegrityError if isinstance(exc, IntegrityError) else StackError
        raise kind(f"{exc}; the old container {name} {again}") from exc
    engine.call(f"remove the old container {name}", engine.api.remove_container, old["Id"])


def creation_request(
    old: dict[str, Any], old_image: dict[str, Any], reference: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The create body for a container like `old` on `reference`, and the networks to connect it
    to after creation (the create call takes one)."""
    config = container_config(old, old_image, reference)
    host = dict(old["HostConfig"])
    host["Binds"] = [*(host.get("Binds") or []), *anonymous_volumes(old)] or None
    endpoints = network_endpoints(old)
    mode = host.get("NetworkMode", "")
    first = "bridge" if mode == "default" else mode
    created_on = {first: endpoints.pop(first)} if first in endpoints else {}
    body = {**config, "HostConfig": host, "NetworkingConfig": {"EndpointsConfig": created_on}}
    return body, endpoints


def container_config(
    old: dict[str, Any], old_image: dict[str, Any], reference: str
) -> dict[str, Any]:
    """The old container's Config on `reference`, without what the old image set."""
    config = dict(old["Config"])
    config["Image"] = reference
    image_env = set(old_image.get("Env") or [])
    config["Env"] = [entry for entry in config.get("Env") or [] if entry not in image_env]
    image_labels = old_image.get("Labels") or {}
    labels = config.get("Labels") or {}
    config["Labels"] = {k: v for k, v in labels.items() if image_labels.get(k) != v}
    for key in IMAGE_DEFAULTS:
        if key in config and config[key] == old_image.get(key):
            del config[key]
    for key in ("ExposedPorts", "Volumes"):
        own = {
            k: v for k, v in (config.get(key) or {}).items() if k not in (old_image.get(key) or {})
        }
        config[key] = own or None
    if config.get("Hostname") == old["Id"][:12]:  # the engine's default, not a setting
        del config["Hostname"]
    return config


def anonymous_volumes(old: dict[str, Any]) -> list[str]:
    """`name:destination[:ro]` for the volumes the engine created unnamed (an image's VOLUME, a
    bare `-v /path`): a new container would otherwise get new, empty ones."""
    host = old["HostConfig"]
    taken = {bind.split(":")[1] for bind in host.get("Binds") or [] if bind.count(":") >= 1}
    taken |= {mount.get("Target") for mount in host.get("Mounts") or []}
    kept = []
    for mount in old.get("Mounts") or []:
        if mount.get("Type") == "volume" and mount.get("Destination") not in taken:
            read_only = "" if mount.get("RW", True) else ":ro"
            kept.append(f"{mount['Name']}:{mount['Destination']}{read_only}")
    return kept


def network_endpoints(old: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per network, what the old container's endpoint was given (aliases, fixed address, links)."""
    mode = old["HostConfig"].get("NetworkMode", "")
    if mode in ("none", "host") or mode.startswith("container:"):
        return {}
    endpoints = {}
    for network, endpoint in (old["NetworkSettings"].get("Networks") or {}).items():
        aliases = [a for a in endpoint.get("Aliases") or [] if a != old["Id"][:12]]
        given = {
            "Aliases": aliases,
            "IPAMConfig": endpoint.get("IPAMConfig"),
            "Links": endpoint.get("Links"),
            "DriverOpts": endpoint.get("DriverOpts"),
        }
        endpoints[network] = {key: value for key, value in given.items() if value}
    return endpoints


def wait_ready(engine: Engine, container_id: str, readiness: Readiness) -> None:
    """Wait until the container has run for SETTLE seconds, is healthy if it has a healthcheck
    and answers on the declared port; NotReady says why not."""
    started = time.monotonic()
    deadline = started + readiness.timeout
    while True:
        inspected = engine.call(
            "inspect the new container", engine.api.inspect_container, container_id
        )
        waiting = _waiting_for(engine, container_id, inspected, readiness)
        if waiting is None and time.monotonic() - started >= SETTLE:
            return
        if time.monotonic() > deadline:
            raise NotReady(f"not ready after {readiness.timeout:g}s: {waiting or 'still starting'}")
        time.sleep(POLL)


def _waiting_for(
    engine: Engine, container_id: str, inspected: dict[str, Any], readiness: Readiness
) -> str | None:
    """What the container is still waiting for, None when ready; NotReady when it failed."""
    state = inspected["State"]
    if state.get("Restarting") or inspected.get("RestartCount"):
        raise NotReady(
            f"keeps restarting (exit code {state.get('ExitCode')}){_said(engine, container_id)}"
        )
    if not state.get("Running"):
        reason = state.get("Error") or f"exit code {state.get('ExitCode')}"
        raise NotReady(f"exited ({reason}){_said(engine, container_id)}")
    health = state.get("Health") or {}
    if health.get("Status") == "unhealthy":
        checks = health.get("Log") or [{}]
        output = (checks[-1].get("Output") or "").strip().splitlines()
        raise NotReady("unhealthy" + (f": {output[-1][:300]}" if output else ""))
    if health.get("Status") == "starting":
        return "healthcheck still starting"
    if readiness.port is not None and not _answers(engine, container_id, readiness.port):
        return f"nothing answers on port {readiness.port} inside the container"
    return None


def _answers(engine: Engine, container_id: str, port: int) -> bool:
    argv = ["sh", "-c", PROBE, "sh", str(port)]
    probe = engine.call(
        "probe the new container's port", engine.api.exec_create, container_id, argv
    )
    output = engine.call("probe the new container's port", engine.api.exec_start, probe["Id"])
    result = engine.call("probe the new container's port", engine.api.exec_inspect, probe["Id"])
    code = result.get("ExitCode")
    if code == 0:
        return True
    if code != PROBE_IMPOSSIBLE:
        # Refused, or the probe was killed by a container that is stopping: the next look at
        # the container tells which, and a deadline bounds the wait.
        return False
    said = bytes(output).decode(errors="replace").strip().splitlines()
    reason = said[-1][:300] if said else f"exit code {code}"
    raise NotReady(f"cannot probe port {port} inside the container: {reason}")


def _said(engine: Engine, container_id: str) -> str:
    line = engine.last_log_line(container_id)
    return f": {line}" if line else ""


def _check_image(engine: Engine, name: str, new_id: str, reference: str, image_id: str) -> None:
    created = engine.call("inspect the new container", engine.api.inspect_container, new_id)
    if created["Image"] != image_id:
        raise IntegrityError(
            f"container {name}: {reference} is image {created['Image'][:19]}, not the planned "
            f"{image_id[:19]} (re-tagged since it was planned)"
        )


def _connect(engine: Engine, container_id: str, network: str, endpoint: dict[str, Any]) -> None:
    addresses = endpoint.get("IPAMConfig") or {}
    engine.api.connect_container_to_network(
        container_id,
        network,
        aliases=endpoint.get("Aliases"),
        links=endpoint.get("Links"),
        ipv4_address=addresses.get("IPv4Address"),
        ipv6_address=addresses.get("IPv6Address"),
        driver_opt=endpoint.get("DriverOpts"),
    )


def _put_back(
    engine: Engine, name: str, old: dict[str, Any], new_id: str, running: bool, cause: BaseException
) -> None:
    """Remove the new container, give the old one its name back and start it again. Raises a
    StackError saying both what failed and what is left when this fails too."""
    try:
        if new_id:
            engine.call(
                f"remove the new container {name}", engine.api.remove_container, new_id, force=True
            )
        engine.call(f"rename container {backup_name(name)}", engine.api.rename, old["Id"], name)
        if running:
            engine.call(f"start container {name}", engine.api.start, old["Id"])
    except TmaError as failure:
        left = f"{name} may be missing, the old container is {backup_name(name)}"
        raise StackError(
            f"{cause}; putting the old container back failed: {failure}; {left}"
        ) from cause
