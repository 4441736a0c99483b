"""The site model and the inventory loader.

An inventory is one YAML file, or a directory of them, each holding `sites:` (and optionally
`defaults:` merged into every site of that file and `state_dir:`). Relative paths are taken from
the directory of the file that holds them. `${VAR}` and `${VAR:-default}` in strings are read from
the environment, so secrets need not be written in the inventory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tma_ops.errors import InventoryError
from tma_ops.inventory_errors import describe_validation_error, line_of

Tier = Literal["essentiel", "business", "critique"]
SemverClass = Literal["patch", "minor", "major"]
SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpCheck(Strict):
    check: Literal["http"] = "http"
    url: str
    status: int = Field(200, ge=100, le=599)
    contains: str | None = None
    max_latency_ms: int = Field(3000, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value


class Database(Strict):
    engine: Literal["sqlite"]
    path: str


class Environment(Strict):
    executor: str
    root: str
    persistent: list[str] = []
    database: Database
    smoke: Annotated[list[HttpCheck], Field(min_length=1)]

    @field_validator("executor")
    @classmethod
    def _executor_url(cls, value: str) -> str:
        if urlsplit(value).scheme != "local":
            raise ValueError(f"expected an executor URL like local://, got {value!r}")
        return value

    @field_validator("persistent")
    @classmethod
    def _inside_root(cls, value: list[str]) -> list[str]:
        for item in value:
            if item.startswith("/") or ".." in Path(item).parts:
                raise ValueError(f"expected a path relative to root without '..', got {item!r}")
        return value


class ArchiveStack(Strict):
    kind: Literal["archive"]
    channel: str
    components_dir: str
    version_file: str = "VERSION"


class Retention(Strict):
    keep_last: int = Field(3, ge=1)
    keep_daily: int = Field(7, ge=0)
    keep_weekly: int = Field(4, ge=0)
    keep_monthly: int = Field(12, ge=0)


class UpdatePolicy(Strict):
    allow: list[SemverClass] = ["patch", "minor", "major"]
    hold: dict[str, str] = {}


class Site(Strict):
    name: str
    tier: Tier
    store: str
    stack: ArchiveStack
    environments: dict[Literal["production", "staging"], Environment]
    retention: Retention = Retention()
    updates: UpdatePolicy = UpdatePolicy()
    source: str = ""

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("file", "mem"):
            raise ValueError(f"expected a store URL like file:///path or mem://name, got {value!r}")
        return value

    @field_validator("environments")
    @classmethod
    def _both_environments(cls, value: dict[str, Environment]) -> dict[str, Environment]:
        missing = {"production", "staging"} - set(value)
        if missing:
            raise ValueError(f"expected both production and staging, missing {sorted(missing)}")
        return value

    @property
    def production(self) -> Environment:
        return self.environments["production"]

    @property
    def staging(self) -> Environment:
        return self.environments["staging"]

    def environment(self, name: str) -> Environment:
        if name not in self.environments:
            raise InventoryError(f"site {self.name!r} has no environment {name!r}")
        return self.environments[name]


class Inventory(BaseModel):
    sites: dict[str, Site]
    state_dir: Path
    files: list[Path]

    def site(self, name: str) -> Site:
        if name not in self.sites:
            known = ", ".join(sorted(self.sites)) or "none"
            raise InventoryError(f"unknown site {name!r}; the inventory has: {known}")
        return self.sites[name]


def load_inventory(path: Path) -> Inventory:
    files = _inventory_files(path)
    sites: dict[str, Site] = {}
    state_dir: Path | None = None
    for file in files:
        document = _read_yaml(file)
        for site in _sites_of(file, document):
            if site.name in sites:
                raise InventoryError(
                    f"{file}: site {site.name!r} is already defined in {sites[site.name].source}"
                )
            sites[site.name] = site
        if "state_dir" in document and state_dir is None:
            state_dir = _resolve(file.parent, str(document["state_dir"]))
    if not sites:
        raise InventoryError(f"{path}: no site defined; expected a 'sites:' mapping")
    default_state = Path(os.environ.get("TMA_OPS_STATE", "~/.local/state/tma-ops")).expanduser()
    return Inventory(sites=sites, state_dir=state_dir or default_state, files=files)


def _inventory_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        if not files:
            raise InventoryError(f"{path}: no .yaml or .yml file in this directory")
        return files
    if not path.exists():
        raise InventoryError(f"{path}: inventory not found")
    return [path]


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f":{mark.line + 1}" if mark else ""
        raise InventoryError(f"{file}{where}: invalid YAML: {exc.problem}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{file}: cannot read: {exc}") from exc
    if not isinstance(document, dict):
        raise InventoryError(f"{file}: expected a mapping with a 'sites:' key at the top level")
    unknown = set(document) - {"version", "state_dir", "defaults", "sites"}
    if unknown:
        raise InventoryError(
            f"{file}: unknown top-level key {sorted(unknown)[0]!r}; "
            "expected version, state_dir, defaults, sites"
        )
    if document.get("version", 1) != 1:
        raise InventoryError(f"{file}: version: expected 1, got {document['version']!r}")
    return document


def _sites_of(file: Path, document: dict[str, Any]) -> list[Site]:
    raw_sites = document.get("sites")
    if not isinstance(raw_sites, dict) or not raw_sites:
        raise InventoryError(f"{file}: sites: expected a mapping of site name to site settings")
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise InventoryError(f"{file}: defaults: expected a mapping")
    return [_site_of(file, name, body, defaults) for name, body in raw_sites.items()]


def _site_of(file: Path, name: Any, body: Any, defaults: dict[str, Any]) -> Site:
    if not isinstance(name, str) or not SITE_NAME.match(name):
        raise InventoryError(
            f"{file}: sites: site name {name!r} is invalid; expected lower-case "
            "letters, digits, '-' or '_'"
        )
    if not isinstance(body, dict):
        raise InventoryError(f"{file}: sites.{name}: expected a mapping of site settings")
    merged = _expand_env(file, f"sites.{name}", {**defaults, **body})
    try:
        site = Site(name=name, source=str(file), **merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(["sites", name, *(str(part) for part in first["loc"])])
        raise InventoryError(
            f"{file}{line_of(file, key)}: {describe_validation_error(key, first)}"
        ) from exc
    return _with_resolved_paths(site, file.parent)


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
            f"{file}: {key}: environment variable {name} is not set "
            "(write ${" + name + ":-default} to give a default)"
        )

    return ENV_REF.sub(substitute, value)


def _with_resolved_paths(site: Site, base: Path) -> Site:
    environments = {
        name: env.model_copy(
            update={
                "root": str(_resolve(base, env.root)),
                "database": env.database.model_copy(
                    update={"path": str(_resolve(base, env.database.path))}
                ),
            }
        )
        for name, env in site.environments.items()
    }
    stack = site.stack.model_copy(update={"channel": str(_resolve(base, site.stack.channel))})
    store = site.store
    if store.startswith("file://") and not store.startswith("file:///"):
        store = "file://" + str(_resolve(base, store[len("file://") :]))
    return site.model_copy(update={"environments": environments, "stack": stack, "store": store})


def _resolve(base: Path, raw: str) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else (base / path).resolve()
