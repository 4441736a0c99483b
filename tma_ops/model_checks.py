"""The smoke checks an inventory may declare for an environment, one class per `check` kind.

smoke:
  - url: https://example.org/            # `check: http` is the default
  - check: journey                        # requests sharing cookies
    name: contact form
    steps:
      - {url: https://example.org/contact, extract: {nonce: 'name="nonce" value="([^"]+)"'}}
      - {url: https://example.org/contact, method: POST,
         form: {email: a@b.fr, message: Bonjour, nonce: "{nonce}"}, contains: [Merci]}
  - check: logscan
    paths: [/var/log/php/error.log]
  - check: host
    services: [php8.2-fpm]
    ports: ["tcp://0.0.0.0:443"]
    disk_free: {/srv: 2G}
    tls: [{host: example.org, min_days: 14}]
  - check: visual
    pages: [{url: https://example.org/, ignore: ["#rotating-banner"]}]
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

# What a page must never show, whatever the check says it must: a PHP error, a Python or Java
# stack trace, a framework's debug page.
DEFAULT_FORBIDDEN = (
    "Fatal error",
    "Parse error",
    "Uncaught Exception",
    "Traceback (most recent call last)",
    "There has been a critical error on this website",
)
# Regular expressions over log lines: a match of `fatal` fails the check, `warning` is reported.
DEFAULT_LOG_FATAL = (
    r"PHP (Fatal|Parse) error",
    r"Traceback \(most recent call last\)",
    r"\b(CRITICAL|FATAL|EMERGENCY)\b",
    r"\bERROR\b",
)
DEFAULT_LOG_WARNING = (r"PHP (Warning|Deprecated|Notice)", r"\bWARNING\b")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"expected a regular expression, got {value!r} ({exc})") from exc
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
Regex = Annotated[str, AfterValidator(_regex)]
Status = Annotated[int, Field(ge=100, le=599)]
LatencyMs = Annotated[int, Field(gt=0)]


class HttpCheck(Strict):
    """One GET: expected status, a marker the body must contain, markers it must not."""

    check: Literal["http"] = "http"
    url: HttpUrl
    status: Status = 200
    contains: str | None = None
    forbidden: list[str] = list(DEFAULT_FORBIDDEN)
    max_latency_ms: LatencyMs = 3000


class JourneyStep(Strict):
    """One request of a journey. `{name}` in url and form values is replaced by a value an
    earlier step extracted (a form's nonce or CSRF token)."""

    url: str
    method: Literal["GET", "POST"] = "GET"
    form: dict[str, str] = {}  # sent url-encoded as the body of a POST
    status: Status = 200
    contains: list[str] = []
    forbidden: list[str] = list(DEFAULT_FORBIDDEN)
    max_latency_ms: LatencyMs = 3000
    extract: dict[str, Regex] = {}  # name -> regex with one group, searched in the body

    @field_validator("contains", mode="before")
    @classmethod
    def _one_marker(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("extract")
    @classmethod
    def _one_group(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not re.fullmatch(r"\w+", name):
                raise ValueError(f"extract: expected a name of letters, digits or _, got {name!r}")
            if re.compile(pattern).groups != 1:
                raise ValueError(
                    f"extract.{name}: expected a regex with one group, got {pattern!r}"
                )
        return value


class JourneyCheck(Strict):
    """Requests made in order by one visitor: cookies are kept from one step to the next."""

    check: Literal["journey"]
    name: str
    steps: Annotated[list[JourneyStep], Field(min_length=1)]

    @field_validator("steps")
    @classmethod
    def _urls_and_values_known(cls, steps: list[JourneyStep]) -> list[JourneyStep]:
        extracted: set[str] = set()
        for number, step in enumerate(steps, 1):
            where = f"step {number}"
            if number == 1 or not step.url.startswith(("/", "{")):
                _journey_url(step.url, where)
            if step.form and step.method != "POST":
                raise ValueError(f"{where}: form is sent only by a POST step (method: POST)")
            for template in [step.url, *step.form.values()]:
                unknown = [name for name in placeholders(template) if name not in extracted]
                if unknown:
                    raise ValueError(
                        f"{where}: {{{unknown[0]}}} is not extracted by an earlier step "
                        "(write {{ and }} for literal braces)"
                    )
            extracted |= set(step.extract)
        return steps


PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(\w+)\}")


def placeholders(template: str) -> list[str]:
    """Names written `{name}` in a journey step's url or form value (`{{`, `}}`: literal)."""
    return [match.group(1) for match in PLACEHOLDER.finditer(template) if match.group(1)]


def _journey_url(url: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        first = "" if where == "step 1" else ", or a path starting with / on the previous host"
        raise ValueError(f"{where}: expected an http:// or https:// URL{first}, got {url!r}")


class LogScanCheck(Strict):
    """Lines added to log files on the environment since the change started."""

    check: Literal["logscan"]
    name: str = "logs"
    paths: Annotated[list[str], Field(min_length=1)]  # absolute, or relative to the root
    fatal: list[Regex] = list(DEFAULT_LOG_FATAL)
    warning: list[Regex] = list(DEFAULT_LOG_WARNING)
    fail_on_warning: bool = False
    ignore: list[Regex] = []  # lines matching one of these are never counted


class TlsTarget(Strict):
    host: str
    port: int = Field(443, ge=1, le=65535)
    server_name: str | None = None  # SNI name when it differs from host
    min_days: int = Field(14, ge=0)


class HostCheck(Strict):
    """The environment's host seen through testinfra, over the environment's own executor."""

    check: Literal["host"]
    name: str = "host"
    services: list[str] = []  # running (systemd, else the init scripts)
    processes: list[str] = []  # a process with this command name (first 15 bytes) is running
    # listening: "tcp://0.0.0.0:443", "tcp://127.0.0.1:3306", "unix:///run/php/fpm.sock" or
    # "8080" (tcp, on any address)
    ports: list[str] = []
    # path (absolute, or relative to the root) -> minimum free space: "2G", "500M" or "10%"
    disk_free: dict[str, str] = {}
    tls: list[TlsTarget] = []  # certificate served at host:port, days before it expires

    @field_validator("ports")
    @classmethod
    def _port_syntax(cls, value: list[str]) -> list[str]:
        from tma_ops.checks.host import parse_port_spec  # here: that module imports this one

        for port in value:
            parse_port_spec(port)
        return value

    @field_validator("disk_free")
    @classmethod
    def _size_syntax(cls, value: dict[str, str]) -> dict[str, str]:
        from tma_ops.checks.host import parse_min_free  # here: that module imports this one

        for path, minimum in value.items():
            try:
                parse_min_free(minimum)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _something_to_check(self) -> HostCheck:
        if not (self.services or self.processes or self.ports or self.disk_free or self.tls):
            raise ValueError("expected at least one of services, processes, ports, disk_free, tls")
        return self


class IgnoreRect(Strict):
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)


PAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
Selector = Annotated[str, Field(min_length=1)]


def _ignore_kind(value: Any) -> str:
    return "rectangle" if isinstance(value, dict | IgnoreRect) else "selector"


# A CSS selector (matching elements are masked in both shots) or a rectangle of the page.
IgnoreRegion = Annotated[
    Annotated[Selector, Tag("selector")] | Annotated[IgnoreRect, Tag("rectangle")],
    Discriminator(_ignore_kind),
]


def _page_name(value: str) -> str:
    if not PAGE_NAME.fullmatch(value):
        raise ValueError(
            "expected a name of letters, digits, '.', '_' or '-' (it names the screenshot"
            f" files), got {value!r}"
        )
    return value


class VisualPage(Strict):
    url: HttpUrl
    name: Annotated[str, AfterValidator(_page_name)] | None = None  # default: from the URL
    ignore: list[IgnoreRegion] = []  # left out of the comparison

    @property
    def label(self) -> str:
        """The page's name in results and screenshot files: `name`, or one made from the URL's
        path and query (https://example.org/ -> home, /a-propos/?lang=fr -> a-propos-lang-fr)."""
        if self.name:
            return self.name
        parts = urlsplit(self.url)
        slug = re.sub(r"[^a-z0-9]+", "-", f"{parts.path}?{parts.query}".lower()).strip("-")
        return slug[:80].strip("-") or "home"


class Viewport(Strict):
    width: int = Field(1280, ge=200, le=4000)
    height: int = Field(800, ge=200, le=4000)


class VisualCheck(Strict):
    """Screenshots of pages before and after the change, compared pixel by pixel."""

    check: Literal["visual"]
    name: str = "visual"
    pages: Annotated[list[VisualPage], Field(min_length=1)]
    threshold: float = Field(0.01, ge=0, le=1)  # share of pixels that may differ
    pixel_tolerance: int = Field(16, ge=0, le=255)  # per channel: antialiasing is not a change
    viewport: Viewport = Viewport()
    full_page: bool = True
    wait_ms: int = Field(0, ge=0, le=30000)  # extra settle time after the page loaded

    @field_validator("pages")
    @classmethod
    def _distinct_names(cls, pages: list[VisualPage]) -> list[VisualPage]:
        seen: set[str] = set()
        for page in pages:
            if page.label in seen:
                raise ValueError(
                    f"expected pages of distinct names (they name the screenshot files);"
                    f" {page.label!r} is used twice: give one a `name`"
                )
            seen.add(page.label)
        return pages


def _http_by_default(value: Any) -> Any:
    if isinstance(value, dict) and "check" not in value:
        return {**value, "check": "http"}
    return value


SmokeCheck = Annotated[
    HttpCheck | JourneyCheck | LogScanCheck | HostCheck | VisualCheck,
    Field(discriminator="check"),
]


def first_http_check(smoke: list[Any]) -> HttpCheck | None:
    """The first plain HTTP check: the URL a restarted application is awaited on."""
    return next((check for check in smoke if isinstance(check, HttpCheck)), None)
