"""The site model and the inventory loader.

An inventory is one YAML file, or a directory of them, each holding `sites:` (and optionally
`defaults:` merged into every site of that file and `state_dir:`). Relative paths are taken from
the directory of the file that holds them. `${VAR}` and `${VAR:-default}` in strings are read from
the environment, so secrets need not be written in the inventory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import BaseModel, ValidationError

from tma_ops.errors import InventoryError
from tma_ops.inventory_errors import describe_validation_error, error_key, first_error, line_of
from tma_ops.model import (
    AGE_RECIPIENT,
    Database,
    Encryption,
    Environment,
    ExecutorSpec,
    HttpCheck,
    Retention,
    ServerDatabase,
    Site,
    SqliteDatabase,
    StoreSpec,
    UpdatePolicy,
)
from tma_ops.model_journal import JournalSettings, journal_settings_of
from tma_ops.model_stacks import ArchiveStack, Stack

__all__ = [
    "ArchiveStack",
    "Database",
    "Environment",
    "ExecutorSpec",
    "HttpCheck",
    "Inventory",
    "JournalSettings",
    "Retention",
    "ServerDatabase",
    "Site",
    "SqliteDatabase",
    "StoreSpec",
    "UpdatePolicy",
    "load_inventory",
]
SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
TOP_LEVEL_KEYS = ("version", "state_dir", "defaults", "sites", "journal")
LOADER_KEYS = ("name", "source")  # Site fields set by the loader, never written in a file


class Inventory(BaseModel):
    sites: dict[str, Site]
    state_dir: Path
    files: list[Path]
    journal: JournalSettings = JournalSettings()

    def secrets(self) -> list[str]:
        found = [secret for site in self.sites.values() for secret in site.secrets()]
        return found + self.journal.secrets()

    def site(self, name: str) -> Site:
        if name not in self.sites:
            known = ", ".join(sorted(self.sites)) or "none"
            raise InventoryError(f"unknown site {name!r}; the inventory has: {known}")
        return self.sites[name]


def load_inventory(path: Path) -> Inventory:
    files = _inventory_files(path)
    sites: dict[str, Site] = {}
    state_dir: Path | None = None
    journal: JournalSettings | None = None
    for file in files:
        document = _read_yaml(file)
        for site in _sites_of(file, document):
            if site.name in sites:
                key = f"sites.{site.name}"
                raise InventoryError(
                    f"{file}{line_of(file, key)}: {key}: site {site.name!r} is already defined "
                    f"in {sites[site.name].source}; expected each site name once in the inventory"
                )
            sites[site.name] = site
        if "state_dir" in document and state_dir is None:
            state_dir = _resolve(file.parent, document["state_dir"])
        if "journal" in document and journal is None:
            journal = journal_settings_of(file, _expand_env(file, "journal", document["journal"]))
    if not sites:
        raise InventoryError(f"{path}: no site defined; expected a 'sites:' mapping")
    default_state = Path(os.environ.get("TMA_OPS_STATE", "~/.local/state/tma-ops")).expanduser()
    return Inventory(
        sites=sites,
        state_dir=state_dir or default_state,
        files=files,
        journal=journal or JournalSettings(),
    )


def _inventory_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        if not files:
            raise InventoryError(
                f"{path}: no inventory in this directory; expected at least one .yaml or .yml file"
            )
        return files
    if not path.exists():
        raise InventoryError(
            f"{path}: inventory not found; expected a YAML file or a directory of them"
        )
    return [path]


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key written twice in one mapping (the last would win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base loader reports an unhashable key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}; expected each key once in a mapping",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f":{mark.line + 1}" if mark else ""
        raise InventoryError(f"{file}{where}: invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise InventoryError(f"{file}: invalid YAML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{file}: cannot read: {exc}") from exc
    if not isinstance(document, dict):
        got = "an empty file" if document is None else f"a {type(document).__name__}"
        raise InventoryError(
            f"{file}: expected a mapping with a 'sites:' key at the top level; got {got}"
        )
    _check_top_level(file, document)
    return document


def _check_top_level(file: Path, document: dict[Any, Any]) -> None:
    unknown = [key for key in document if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise InventoryError(
            f"{file}{line_of(file, str(unknown[0]))}: unknown top-level key {unknown[0]!r}; "
            f"expected one of {', '.join(TOP_LEVEL_KEYS)}"
        )
    if document.get("version", 1) != 1:
        raise InventoryError(
            f"{file}{line_of(file, 'version')}: version: expected 1, got {document['version']!r}"
        )
    if "state_dir" in document and not isinstance(document["state_dir"], str):
        raise InventoryError(
            f"{file}{line_of(file, 'state_dir')}: state_dir: expected a directory path; "
            f"got {document['state_dir']!r}"
        )


def _sites_of(file: Path, document: dict[str, Any]) -> list[Site]:
    raw_sites = document.get("sites")
    if "sites" not in document:
        raise InventoryError(
            f"{file}: sites: this key is required; expected a mapping of site name to settings"
        )
    if not isinstance(raw_sites, dict) or not raw_sites:
        raise InventoryError(
            f"{file}{line_of(file, 'sites')}: sites: expected a mapping of site name to "
            f"site settings; got {raw_sites!r}"
        )
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise InventoryError(
            f"{file}{line_of(file, 'defaults')}: defaults: expected a mapping; got {defaults!r}"
        )
    return [_site_of(file, name, body, defaults) for name, body in raw_sites.items()]


def _site_of(file: Path, name: Any, body: Any, defaults: dict[str, Any]) -> Site:
    if not isinstance(name, str) or not SITE_NAME.match(name):
        raise InventoryError(
            f"{file}{line_of(file, f'sites.{name}')}: sites: site name {name!r} is invalid; "
            "expected lower-case letters, digits, '-' or '_' (starting with a letter or digit)"
        )
    key = f"sites.{name}"
    if not isinstance(body, dict):
        raise InventoryError(
            f"{file}{line_of(file, key)}: {key}: expected a mapping of site settings; got {body!r}"
        )
    inherited = {k: v for k, v in defaults.items() if k not in body}
    merged = {**_expand_env(file, "defaults", inherited), **_expand_env(file, key, body)}
    reserved = [k for k in LOADER_KEYS if k in merged]
    if reserved:
        loc = (reserved[0],)
        _raise_site_error(
            file, name, inherited, {"type": "extra_forbidden", "loc": loc, "input": ""}
        )
    try:
        site = Site(name=name, source=str(file), **merged)
    except ValidationError as exc:
        _raise_site_error(file, name, inherited, first_error(exc, Site))
    return _with_resolved_paths(site, file.parent)


def _raise_site_error(file: Path, name: str, inherited: dict[str, Any], error: Any) -> NoReturn:
    """Raise the one-line error for a site; a value inherited from defaults names both keys."""
    key = error_key(f"sites.{name}", error["loc"])
    where = line_of(file, key)
    loc = error["loc"]
    if loc and loc[0] in inherited:
        origin = error_key("defaults", loc)
        where = line_of(file, origin)
        key = f"{key} (from {origin})"
    message = describe_validation_error(key, error, Site, hidden=LOADER_KEYS)
    raise InventoryError(f"{file}{where}: {message}")


def _expand_env(file: Path, key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(file, f"{key}.{k}", v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(file, f"{key}.{i}", v) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise InventoryError(
            f"{file}{line_of(file, key)}: {key}: environment variable {name} is not set; "
            "expected it set, or a default written ${" + name + ":-default}"
        )

    return ENV_REF.sub(substitute, value)


def _with_resolved_paths(site: Site, base: Path) -> Site:
    """Paths on this machine are taken from the inventory file's directory."""
    environments = {
        name: _resolved_environment(env, base, f"sites.{site.name}.environments.{name}")
        for name, env in site.environments.items()
    }
    stack = _resolved_stack(site.stack, base)
    store = _resolved_store(site.store, base, f"sites.{site.name}.store")
    sources = [s if "://" in s else str(_resolve(base, s)) for s in site.updates.advisories]
    updates = site.updates.model_copy(update={"advisories": sources})
    return site.model_copy(
        update={"environments": environments, "stack": stack, "store": store, "updates": updates}
    )


def _resolved_stack(stack: Stack, base: Path) -> Stack:
    channel = getattr(stack, "channel", None)
    if channel is None:
        return stack
    return stack.model_copy(update={"channel": str(_resolve(base, channel))})


def _resolved_store(store: StoreSpec, base: Path, key: str) -> StoreSpec:
    update: dict[str, Any] = {}
    url = store.url
    if url.startswith("file://") and not url.startswith("file:///"):
        update["url"] = "file://" + str(_resolve(base, url[len("file://") :]))
    if store.ca_bundle:
        update["ca_bundle"] = str(_resolve(base, store.ca_bundle))
    if store.secret_access_key_file:
        path = _resolve(base, store.secret_access_key_file)
        update["secret_access_key"] = _read_secret(path, f"{key}.secret_access_key_file", "key")
    if store.encryption is not None:
        update["encryption"] = _resolved_encryption(store.encryption, base, f"{key}.encryption")
    return store.model_copy(update=update)


def _resolved_encryption(encryption: Encryption, base: Path, key: str) -> Encryption:
    """Recipients from recipients_file join the inline ones; the identity is only located here."""
    recipients = list(encryption.recipients)
    if encryption.recipients_file:
        path = _resolve(base, encryption.recipients_file)
        text = _read_secret(path, f"{key}.recipients_file", "recipients, one per line")
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not AGE_RECIPIENT.match(line):
                raise InventoryError(
                    f"{path}:{number}: {key}.recipients_file: expected an age public key "
                    f"(age1...) or an SSH public key, got {line[:40]!r}"
                )
            recipients.append(line)
    identity = encryption.identity_file
    return encryption.model_copy(
        update={
            "recipients": recipients,
            "recipients_file": str(_resolve(base, encryption.recipients_file))
            if encryption.recipients_file
            else None,
            "identity_file": str(_resolve(base, identity)) if identity else None,
        }
    )


def _resolved_environment(env: Environment, base: Path, key: str) -> Environment:
    executor = env.executor.model_copy(
        update={
            name: str(_resolve(base, value))
            for name in ("identity_file", "known_hosts")
            if (value := getattr(env.executor, name))
        }
    )
    update: dict[str, Any] = {"executor": executor}
    database = env.database
    if executor.scheme == "local":
        update["root"] = str(_resolve(base, env.root))
        if isinstance(database, SqliteDatabase):
            database = database.model_copy(update={"path": str(_resolve(base, database.path))})
    if isinstance(database, ServerDatabase) and database.password_file:
        database = _with_password_from_file(database, base, f"{key}.database.password_file")
    update["database"] = database
    return env.model_copy(update=update)


def _with_password_from_file(database: ServerDatabase, base: Path, key: str) -> ServerDatabase:
    path = _resolve(base, database.password_file or "")
    return database.model_copy(update={"password": _read_secret(path, key, "password")})


def _read_secret(path: Path, key: str, holding: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InventoryError(
            f"{key}: cannot read {path}: {exc.strerror}; expected a file holding the {holding}"
        ) from exc


def _resolve(base: Path, raw: str) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else (base / path).resolve()
