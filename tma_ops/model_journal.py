"""Where the journal lives: the inventory's top-level `journal:` key.

```yaml
journal:
  url: postgresql://tma@db.example.net:5432/tma_journal   # default: SQLite in the state dir
  password_file: secrets/journal-password                 # never a password inside the URL
  signing_key: keys/journal-signing-key.pem               # default: in the state dir
  former_public_keys: [keys/journal-2025.pub]             # keys that signed older heads
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator

from tma_ops.errors import InventoryError
from tma_ops.inventory_errors import describe_validation_error, error_key, first_error, line_of
from tma_ops.model import Strict

JOURNAL_FILE = "journal.sqlite"
SIGNING_KEY_FILE = "journal-signing-key.pem"
POSTGRES_SCHEMES = ("postgresql", "postgres")
# Set by the loader from password_file; a password is never written in the inventory itself.
LOADER_KEYS = ("password",)


class JournalSettings(Strict):
    url: str | None = None  # None: SQLite at <state_dir>/journal.sqlite
    password_file: Path | None = None
    signing_key: Path | None = None  # None: <state_dir>/journal-signing-key.pem
    # Public halves of keys replaced since: the heads they signed stay trusted.
    former_public_keys: list[Path] = Field(default_factory=list)
    password: str | None = Field(None, repr=False, exclude=True)

    @field_validator("url")
    @classmethod
    def _known_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme == "sqlite":
            if parts.netloc or not parts.path.startswith("/"):
                raise ValueError(
                    "expected sqlite:///absolute/path/journal.sqlite (three slashes), "
                    f"got {value!r}"
                )
            return value
        if parts.scheme not in POSTGRES_SCHEMES:
            raise ValueError(
                "expected postgresql://user@host:port/dbname or sqlite:///absolute/path, "
                f"got a {parts.scheme or 'scheme-less'} URL"
            )
        if parts.password is not None:
            # Never echo the URL here: it holds the password.
            raise ValueError(
                "a password inside the URL is refused; put it in a file named by "
                "journal.password_file"
            )
        if not parts.path.strip("/"):
            raise ValueError(f"expected a database name after the host, as in {value}/dbname")
        return value

    @model_validator(mode="after")
    def _password_for_postgres_only(self) -> JournalSettings:
        if self.password_file is not None and self.backend != "postgresql":
            raise ValueError("password_file is only used with a postgresql:// url")
        return self

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        if self.url and urlsplit(self.url).scheme in POSTGRES_SCHEMES:
            return "postgresql"
        return "sqlite"

    def sqlite_path(self, state_dir: Path) -> Path:
        """The SQLite file: the URL's path, else the one in `state_dir`."""
        if self.url and self.backend == "sqlite":
            return Path(unquote(urlsplit(self.url).path))
        return state_dir / JOURNAL_FILE

    def signing_key_path(self, state_dir: Path) -> Path:
        return self.signing_key or state_dir / SIGNING_KEY_FILE

    def secrets(self) -> list[str]:
        return [self.password] if self.password else []


def journal_settings_of(file: Path, raw: Any) -> JournalSettings:
    """The `journal:` mapping of one inventory file; relative paths are taken from its directory."""
    if not isinstance(raw, dict):
        raise InventoryError(
            f"{file}{line_of(file, 'journal')}: journal: expected a mapping with keys url, "
            f"password_file, signing_key, former_public_keys; got {raw!r}"
        )
    hidden = [key for key in LOADER_KEYS if key in raw]
    if hidden:
        _raise_error(file, {"type": "extra_forbidden", "loc": (hidden[0],), "input": ""})
    try:
        settings = JournalSettings.model_validate(raw)
    except ValidationError as exc:
        _raise_error(file, first_error(exc, JournalSettings))
    return _with_resolved_paths(settings, file.parent)


def _raise_error(file: Path, error: Any) -> NoReturn:
    key = error_key("journal", error["loc"])
    message = describe_validation_error(key, error, JournalSettings, hidden=LOADER_KEYS)
    raise InventoryError(f"{file}{line_of(file, key)}: {message}")


def _with_resolved_paths(settings: JournalSettings, base: Path) -> JournalSettings:
    update: dict[str, Any] = {}
    if settings.signing_key is not None:
        update["signing_key"] = _resolve(base, settings.signing_key)
    if settings.former_public_keys:
        update["former_public_keys"] = [_resolve(base, k) for k in settings.former_public_keys]
    if settings.password_file is not None:
        path = _resolve(base, settings.password_file)
        update["password_file"] = path
        update["password"] = _read_password(path)
    return settings.model_copy(update=update)


def _read_password(path: Path) -> str:
    try:
        password = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InventoryError(
            f"journal.password_file: cannot read {path}: {why}; "
            "expected a file holding the password"
        ) from exc
    if not password:
        raise InventoryError(
            f"journal.password_file: {path} is empty; expected a file holding the password"
        )
    return password


def _resolve(base: Path, raw: Path) -> Path:
    path = raw.expanduser()
    return path if path.is_absolute() else (base / path).resolve()
