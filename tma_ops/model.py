"""The site model: what an inventory may say about a site, its environments and their parts."""

from __future__ import annotations

import posixpath
import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from tma_ops.errors import InventoryError
from tma_ops.model_audit import Declaration, PointId
from tma_ops.model_checks import HttpCheck, SmokeCheck, _http_by_default, first_http_check
from tma_ops.model_contract import ContractSpec
from tma_ops.model_monitor import ClientSpec, MonitorSpec
from tma_ops.model_sandbox import RestoreTestSpec, sandbox_conflict
from tma_ops.model_stacks import Stack

Tier = Literal["essentiel", "business", "critique"]
SemverClass = Literal["patch", "minor", "major"]
EXECUTOR_SCHEMES = ("local", "ssh", "docker")
STORE_SCHEMES = ("file", "s3", "mem")
AGE_RECIPIENT = re.compile(r"^(age1[02-9ac-hj-np-z]{58}|ssh-(ed25519|rsa) [A-Za-z0-9+/=]+( .*)?)$")


def _relative_path(value: str) -> str:
    if value.startswith("/") or ".." in PurePosixPath(value).parts:
        raise ValueError(f"expected a path relative to root without '..', got {value!r}")
    return value


RelativePath = Annotated[str, AfterValidator(_relative_path)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExecutorSpec(Strict):
    """How to reach an environment. In a file, a plain URL string is short for {url: ...}."""

    url: str
    identity_file: str | None = None  # SSH private key on this machine (else the SSH agent)
    known_hosts: str | None = None  # host keys to trust (default: ~/.ssh/known_hosts)
    host_key_policy: Literal["strict", "accept-new", "off"] = "strict"
    connect_timeout: float = Field(15, gt=0)
    command_timeout: float = Field(3600, gt=0)
    sudo: bool = False
    sudo_password: str | None = None
    docker_host: str | None = None  # Docker engine URL, e.g. unix:///run/docker.sock
    python: str | None = None  # interpreter on the environment (default: python3 on its PATH)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in EXECUTOR_SCHEMES:
            raise ValueError(
                "expected an executor URL like local://, ssh://user@host:port or "
                f"docker://container, got {value!r}"
            )
        if parts.scheme in ("ssh", "docker") and not parts.hostname:
            raise ValueError(f"expected a host or container name in {value!r}")
        return value

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    def secrets(self) -> list[str]:
        return [self.sudo_password] if self.sudo_password else []


class SqliteDatabase(Strict):
    engine: Literal["sqlite"]
    path: str


class ServerDatabase(Strict):
    """A MariaDB/MySQL or PostgreSQL database, reached by its client tools on the environment."""

    engine: Literal["mysql", "mariadb", "postgresql"]
    name: str
    user: str | None = None
    password: str | None = None
    password_file: str | None = None  # on this machine; read when the engine is opened
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    socket: str | None = None
    # Where the client tools run, when not on the environment itself: a Docker-based site's
    # database lives in its own container (docker://site-db) beside the files' volume.
    executor: ExecutorSpec | None = None

    @field_validator("executor", mode="before")
    @classmethod
    def _url_shorthand(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_password_source(self) -> ServerDatabase:
        if self.password is not None and self.password_file is not None:
            raise ValueError("expected password or password_file, not both")
        return self


Database = Annotated[SqliteDatabase | ServerDatabase, Field(discriminator="engine")]


WORDPRESS_MAINTENANCE = "<?php $upgrading = time(); ?>\n"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


class Releases(Strict):
    """Code kept as releases under root: releases/<id>, shared/, and `current` (the docroot's
    parent) switched atomically; a rollback of code is a switch back."""

    keep: int = Field(5, ge=2)
    shared: list[RelativePath] = []  # kept across releases: uploads, environment config files
    maintenance_file: RelativePath = ".maintenance"  # put in the release while migrations run
    maintenance_content: str = WORDPRESS_MAINTENANCE


class Environment(Strict):
    executor: ExecutorSpec
    root: str
    persistent: list[RelativePath] = []
    releases: Releases | None = None
    database: Database
    smoke: Annotated[list[SmokeCheck], Field(min_length=1)]
    production: bool = False  # marked production (the `production` environment always is)

    @field_validator("executor", mode="before")
    @classmethod
    def _url_shorthand(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("smoke", mode="before")
    @classmethod
    def _http_check_by_default(cls, value: Any) -> Any:
        return [_http_by_default(item) for item in value] if isinstance(value, list) else value

    def code(self) -> Environment:
        """This environment as its stack driver sees it: root is the live code tree, which is
        root/current when the code is kept as releases."""
        if self.releases is None:
            return self
        return self.in_tree(posixpath.join(self.root, "current"))

    def in_tree(self, path: str) -> Environment:
        """This environment with its code at `path` (a release being prepared)."""
        return self.model_copy(update={"root": path, "releases": None})

    @property
    def ready_check(self) -> HttpCheck:
        """The first plain HTTP check: where a restarted application is awaited."""
        check = first_http_check(self.smoke)
        if check is None:
            raise InventoryError(
                "smoke: expected a plain http check (a URL) to await the restarted application on"
            )
        return check

    @model_validator(mode="after")
    def _remote_paths_absolute(self) -> Environment:
        if self.executor.scheme == "local":
            return self
        paths = {"root": self.root}
        if isinstance(self.database, SqliteDatabase):
            paths["database.path"] = self.database.path
        for key, path in paths.items():
            if not path.startswith("/"):
                raise ValueError(
                    f"{key}: expected an absolute path on a {self.executor.scheme}:// "
                    f"environment, got {path!r}"
                )
        return self


class Retention(Strict):
    """restic's meaning: the last N snapshots, plus the newest one of each of the last N days,
    weeks (ISO), months and years that have snapshots. -1 means every period."""

    keep_last: int = Field(3, ge=1)
    keep_daily: int = Field(7, ge=-1)
    keep_weekly: int = Field(4, ge=-1)
    keep_monthly: int = Field(12, ge=-1)
    keep_yearly: int = Field(0, ge=-1)


class ObjectLock(Strict):
    """S3 Object Lock retention set on every object of a snapshot."""

    mode: Literal["governance", "compliance"] = "governance"
    days: int = Field(30, ge=1)


def _age_recipient(value: str) -> str:
    if not AGE_RECIPIENT.match(value.strip()):
        raise ValueError(
            f"expected an age public key (age1...) or an SSH public key, got {value!r}"
        )
    return value.strip()


AgeRecipient = Annotated[str, AfterValidator(_age_recipient)]


class Encryption(Strict):
    """age encryption of every part: public keys to encrypt, the private key only to restore."""

    recipients: list[AgeRecipient] = []
    recipients_file: str | None = None  # on this machine: one recipient a line, as `age -R`
    identity_file: str | None = None  # on this machine: age private key(s), as `age -i`

    @model_validator(mode="after")
    def _some_recipient(self) -> Encryption:
        if not self.recipients and not self.recipients_file:
            raise ValueError("expected recipients or recipients_file (the age public keys)")
        return self


class StoreSpec(Strict):
    """Where snapshots live. In a file, a plain URL string is short for {url: ...}."""

    url: str
    endpoint_url: str | None = None  # S3 API endpoint (OVHcloud, Scaleway, MinIO, Garage...)
    region: str | None = None
    profile: str | None = None  # a profile of ~/.aws/config and ~/.aws/credentials
    access_key_id: str | None = None
    secret_access_key: str | None = None
    secret_access_key_file: str | None = None  # on this machine; read when the store is opened
    ca_bundle: str | None = None  # CA certificates to trust for the endpoint's TLS
    object_lock: ObjectLock | None = None
    encryption: Encryption | None = None
    full_every: int = Field(7, ge=1)  # files: a full snapshot every N, increments in between

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in STORE_SCHEMES:
            raise ValueError(
                "expected a store URL like file:///path, s3://bucket/prefix or mem://name, "
                f"got {value!r}"
            )
        if parts.scheme == "s3" and not parts.hostname:
            raise ValueError(f"expected a bucket name in {value!r} (s3://bucket/prefix)")
        return value

    @model_validator(mode="after")
    def _one_secret_source(self) -> StoreSpec:
        if self.secret_access_key is not None and self.secret_access_key_file is not None:
            raise ValueError("expected secret_access_key or secret_access_key_file, not both")
        return self

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    def secrets(self) -> list[str]:
        return [self.secret_access_key] if self.secret_access_key else []


CooldownDays = Annotated[int, Field(ge=0, le=3650)]


class UpdatePolicy(Strict):
    """Which available updates a cycle plans; tma_ops.update_policy holds the rules.

    `allow` and `cooldown` left out take the site tier's defaults. A security fix named by the
    advisories is planned whatever allow, hold and cooldown say; a major needs an approval
    (`--approve COMPONENT` for one run, or `approve` here for a major line).
    """

    # Classes planned without a security reason. Not written: the tier's (essentiel: none, only
    # security fixes; business and critique: all three).
    allow: list[SemverClass] = ["patch", "minor", "major"]
    hold: dict[str, str] = {}  # component -> why it waits
    cooldown: dict[SemverClass, CooldownDays] = {}  # days since release per class, else tier's
    unknown_release: Literal["plan", "hold"] = "plan"  # a version with no known release date
    approve: dict[str, str] = {}  # component -> approved major line: "4" takes majors to 4.x
    advisories: list[str] = []  # OSV files or directories (from the inventory's dir), http(s)
    ecosystem: Literal["PyPI", "npm", "WordPress"] | None = None  # for components with none

    @field_validator("approve", mode="before")
    @classmethod
    def _whole_number_lines(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: str(v) if type(v) is int else v for k, v in value.items()}
        return value

    @field_validator("advisories")
    @classmethod
    def _path_or_http_url(cls, value: list[str]) -> list[str]:
        for source in value:
            scheme = urlsplit(source).scheme if "://" in source else ""
            if not source.strip() or scheme not in ("", "http", "https"):
                raise ValueError(
                    f"expected an OSV file or directory path, or an http(s) URL; got {source!r}"
                )
        return value


def _identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(
            f"expected a table or column name like orders or shop.orders, got {value!r}"
        )
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]


class UserDataTable(Strict):
    """A table visitors write to (orders, form entries): what a database rollback would lose."""

    table: Identifier
    since_column: Identifier | None = None  # creation time of a row; else counts are compared


class Site(Strict):
    name: str
    tier: Tier
    store: StoreSpec
    stack: Stack
    environments: dict[Literal["production", "staging", "sandbox"], Environment]
    retention: Retention = Retention()
    client: ClientSpec = ClientSpec()
    monitor: MonitorSpec = MonitorSpec()
    restore_test: RestoreTestSpec = RestoreTestSpec()
    updates: UpdatePolicy = UpdatePolicy()
    contract: ContractSpec = ContractSpec()
    user_data: list[UserDataTable] = []
    declarations: dict[PointId, Declaration] = {}
    source: str = ""

    @field_validator("store", mode="before")
    @classmethod
    def _url_shorthand(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("environments")
    @classmethod
    def _both_environments(cls, value: dict[str, Environment]) -> dict[str, Environment]:
        missing = {"production", "staging"} - set(value)
        if missing:
            raise ValueError(
                f"expected both production and staging; missing {', '.join(sorted(missing))}"
            )
        # Restore tests overwrite the sandbox: it must share nothing with the others.
        if "sandbox" in value:
            conflict = sandbox_conflict(value["sandbox"], value)
            if conflict:
                raise ValueError(conflict)
        return value

    @model_validator(mode="after")
    def _releases_everywhere_or_nowhere(self) -> Site:
        # Staging is refreshed from production's snapshot: both must have the same layout.
        with_releases = {name for name, env in self.environments.items() if env.releases}
        if with_releases and with_releases != set(self.environments):
            raise ValueError(
                "environments: expected releases on every environment or on none; only "
                f"{', '.join(sorted(with_releases))} declares them"
            )
        return self

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

    def secrets(self) -> list[str]:
        """Every credential the inventory gives for this site, to keep out of any output."""
        found: list[str] = self.store.secrets() + self.monitor.secrets()
        for env in self.environments.values():
            found += env.executor.secrets()
            if isinstance(env.database, ServerDatabase):
                found += [env.database.password] if env.database.password else []
                found += env.database.executor.secrets() if env.database.executor else []
        return found
