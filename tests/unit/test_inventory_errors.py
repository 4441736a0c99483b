"""Bad inventories give one clear line: file[:line], key path, what was expected; no traceback."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tma_ops.cli import main

pytestmark = pytest.mark.unit

DEMO = Path(__file__).parents[2] / "inventories" / "demo" / "tma.yaml"
UNDEFINED = "TMA_OPS_TEST_UNDEFINED_VAR"
PYDANTIC_WORDING = ("Input should", "[key]", "pydantic", "validation error", "Value error")

Build = Callable[[Path], Path]
Mutation = Callable[[dict[str, Any]], None]


def demo() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    return document


def blog(document: dict[str, Any]) -> dict[str, Any]:
    site: dict[str, Any] = document["sites"]["blog"]
    return site


def prod(document: dict[str, Any]) -> dict[str, Any]:
    env: dict[str, Any] = blog(document)["environments"]["production"]
    return env


def mutated(mutation: Mutation) -> Build:
    """The demo inventory with one thing changed, written to tma.yaml."""

    def build(tmp_path: Path) -> Path:
        document = demo()
        mutation(document)
        path = tmp_path / "tma.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return path

    return build


def raw(text: str) -> Build:
    def build(tmp_path: Path) -> Path:
        path = tmp_path / "tma.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return build


def demo_text(old: str, new: str) -> str:
    text = DEMO.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


def same_site_in_two_files(tmp_path: Path) -> Path:
    directory = tmp_path / "inv"
    directory.mkdir()
    shutil.copy(DEMO, directory / "a.yaml")
    shutil.copy(DEMO, directory / "b.yml")
    return directory


def empty_directory(tmp_path: Path) -> Path:
    directory = tmp_path / "inv"
    directory.mkdir()
    (directory / "README.txt").write_text("not an inventory\n", encoding="utf-8")
    return directory


def missing_file(tmp_path: Path) -> Path:
    return tmp_path / "nowhere.yaml"


def setitem(path: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any) -> Mutation:
    def mutation(document: dict[str, Any]) -> None:
        path(document)[key] = value

    return mutation


def top(document: dict[str, Any]) -> dict[str, Any]:
    return document


def defaults(document: dict[str, Any]) -> dict[str, Any]:
    mapping: dict[str, Any] = document["defaults"]
    return mapping


def smoke0(document: dict[str, Any]) -> dict[str, Any]:
    check: dict[str, Any] = prod(document)["smoke"][0]
    return check


def rename(path: Callable[[dict[str, Any]], dict[str, Any]], old: str, new: Any) -> Mutation:
    def mutation(document: dict[str, Any]) -> None:
        mapping = path(document)
        mapping[new] = mapping.pop(old)

    return mutation


def delete(path: Callable[[dict[str, Any]], dict[str, Any]], key: str) -> Mutation:
    def mutation(document: dict[str, Any]) -> None:
        del path(document)[key]

    return mutation


def envs(document: dict[str, Any]) -> dict[str, Any]:
    mapping: dict[str, Any] = blog(document)["environments"]
    return mapping


def sites(document: dict[str, Any]) -> dict[str, Any]:
    mapping: dict[str, Any] = document["sites"]
    return mapping


def database(document: dict[str, Any]) -> dict[str, Any]:
    mapping: dict[str, Any] = prod(document)["database"]
    return mapping


P = "sites.blog.environments.production"

CASES = [
    pytest.param(
        raw("version: 1\nsites:\n  blog:\n    tier: business\n   store: x\n"),
        "tma.yaml:5",
        "invalid YAML",
        "expected <block end>",
        id="invalid-yaml-syntax",
    ),
    pytest.param(
        raw(demo_text("    tier: business\n", "    tier: business\n    tier: critique\n")),
        "tma.yaml:16",
        "invalid YAML",
        "found duplicate key 'tier'; expected each key once in a mapping",
        id="duplicate-yaml-key",
    ),
    pytest.param(
        raw("- blog\n- shop\n"),
        "tma.yaml",
        "top level",
        "expected a mapping with a 'sites:' key at the top level; got a list",
        id="top-level-not-a-mapping",
    ),
    pytest.param(
        raw(""),
        "tma.yaml",
        "top level",
        "expected a mapping with a 'sites:' key at the top level; got an empty file",
        id="empty-file",
    ),
    pytest.param(
        mutated(rename(top, "sites", "site")),
        "tma.yaml",
        "top-level key 'site'",
        "expected one of version, state_dir, defaults, sites",
        id="unknown-top-level-key",
    ),
    pytest.param(
        mutated(delete(top, "sites")),
        "tma.yaml",
        "sites: this key is required",
        "expected a mapping of site name to settings",
        id="missing-sites",
    ),
    pytest.param(
        mutated(setitem(top, "sites", [])),
        "tma.yaml",
        "sites:",
        "expected a mapping of site name to site settings; got []",
        id="sites-not-a-mapping",
    ),
    pytest.param(
        mutated(setitem(top, "version", 2)),
        "tma.yaml",
        "version:",
        "expected 1, got 2",
        id="unknown-version",
    ),
    pytest.param(
        mutated(setitem(top, "state_dir", ["state"])),
        "tma.yaml",
        "state_dir:",
        "expected a directory path; got ['state']",
        id="state-dir-not-a-path",
    ),
    pytest.param(
        mutated(setitem(top, "defaults", ["store"])),
        "tma.yaml",
        "defaults:",
        "expected a mapping; got ['store']",
        id="defaults-not-a-mapping",
    ),
    pytest.param(
        mutated(rename(sites, "blog", "Blog Site")),
        "tma.yaml",
        "sites: site name 'Blog Site'",
        "expected lower-case letters, digits, '-' or '_'",
        id="bad-site-name",
    ),
    pytest.param(
        mutated(setitem(sites, "blog", None)),
        "tma.yaml",
        "sites.blog:",
        "expected a mapping of site settings; got None",
        id="site-not-a-mapping",
    ),
    pytest.param(
        mutated(setitem(blog, "tier", "gold")),
        "tma.yaml",
        "sites.blog.tier:",
        "expected one of 'essentiel', 'business', 'critique'; got 'gold'",
        id="unknown-tier",
    ),
    pytest.param(
        mutated(delete(blog, "tier")),
        "tma.yaml",
        "sites.blog.tier:",
        "this key is required; expected one of 'essentiel', 'business', 'critique'",
        id="missing-tier",
    ),
    pytest.param(
        mutated(setitem(blog, "name", "other")),
        "tma.yaml",
        "sites.blog.name:",
        "unknown key; expected one of tier, store, stack, environments, retention, client, "
        "monitor, restore_test, updates, contract, user_data, declarations",
        id="site-name-written-in-body",
    ),
    pytest.param(
        mutated(delete(envs, "staging")),
        "tma.yaml",
        "sites.blog.environments:",
        "expected both production and staging; missing staging",
        id="missing-staging",
    ),
    pytest.param(
        mutated(rename(envs, "staging", "preprod")),
        "tma.yaml",
        "sites.blog.environments.preprod:",
        "unknown key; expected one of production, staging",
        id="unknown-environment",
    ),
    pytest.param(
        mutated(setitem(prod, "executor", "ftp://deploy@host")),
        "tma.yaml",
        f"{P}.executor.url:",
        "expected an executor URL like local://, ssh://user@host:port or docker://container, "
        "got 'ftp://deploy@host'",
        id="unknown-executor-scheme",
    ),
    pytest.param(
        mutated(setitem(blog, "store", "sftp://backup/x")),
        "tma.yaml",
        "sites.blog.store.url:",
        "expected a store URL like file:///path, s3://bucket/prefix or mem://name, "
        "got 'sftp://backup/x'",
        id="store-unknown-scheme",
    ),
    pytest.param(
        mutated(setitem(blog, "store", {"url": "s3:///prefix"})),
        "tma.yaml",
        "sites.blog.store.url:",
        "expected a bucket name in 's3:///prefix' (s3://bucket/prefix)",
        id="store-s3-without-bucket",
    ),
    pytest.param(
        mutated(
            setitem(
                blog,
                "store",
                {"url": "s3://b/p", "encryption": {"recipients": ["age1nothing"]}},
            )
        ),
        "tma.yaml",
        "sites.blog.store.encryption.recipients.0:",
        "expected an age public key (age1...) or an SSH public key, got 'age1nothing'",
        id="store-bad-age-recipient",
    ),
    pytest.param(
        mutated(setitem(blog, "store", {"url": "s3://b/p", "encryption": {}})),
        "tma.yaml",
        "sites.blog.store.encryption:",
        "expected recipients or recipients_file (the age public keys)",
        id="store-encryption-without-recipients",
    ),
    pytest.param(
        mutated(setitem(blog, "store", {"url": "s3://b/p", "object_lock": {"mode": "strict"}})),
        "tma.yaml",
        "sites.blog.store.object_lock.mode:",
        "",
        id="store-bad-lock-mode",
    ),
    pytest.param(
        mutated(setitem(defaults, "store", "ftp://backup")),
        "tma.yaml",
        "sites.blog.store.url (from defaults.store.url):",
        "expected a store URL like file:///path, s3://bucket/prefix or mem://name, "
        "got 'ftp://backup'",
        id="store-unknown-scheme-in-defaults",
    ),
    pytest.param(
        mutated(setitem(smoke0, "url", "ftp://127.0.0.1/blog/")),
        "tma.yaml",
        f"{P}.smoke.0.url:",
        "expected an http:// or https:// URL, got 'ftp://127.0.0.1/blog/'",
        id="smoke-url-not-http",
    ),
    pytest.param(
        mutated(setitem(prod, "smoke", [])),
        "tma.yaml",
        f"{P}.smoke:",
        "expected at least one entry; got []",
        id="smoke-list-empty",
    ),
    pytest.param(
        mutated(setitem(prod, "smoke", "http://127.0.0.1/")),
        "tma.yaml",
        f"{P}.smoke:",
        "expected a list; got 'http://127.0.0.1/'",
        id="smoke-string-not-list",
    ),
    pytest.param(
        mutated(setitem(smoke0, "max_latency_ms", 0)),
        "tma.yaml",
        f"{P}.smoke.0.max_latency_ms:",
        "expected an integer greater than 0; got 0",
        id="max-latency-zero",
    ),
    pytest.param(
        mutated(setitem(smoke0, "max_latency_ms", -250)),
        "tma.yaml",
        f"{P}.smoke.0.max_latency_ms:",
        "expected an integer greater than 0; got -250",
        id="max-latency-negative",
    ),
    pytest.param(
        mutated(setitem(smoke0, "max_latency_ms", 1.5)),
        "tma.yaml",
        f"{P}.smoke.0.max_latency_ms:",
        "expected a whole number; got 1.5",
        id="max-latency-fractional",
    ),
    pytest.param(
        mutated(setitem(smoke0, "status", 700)),
        "tma.yaml",
        f"{P}.smoke.0.status:",
        "expected an integer from 100 to 599; got 700",
        id="status-too-high",
    ),
    pytest.param(
        mutated(setitem(smoke0, "status", 42)),
        "tma.yaml",
        f"{P}.smoke.0.status:",
        "expected an integer from 100 to 599; got 42",
        id="status-too-low",
    ),
    pytest.param(
        mutated(setitem(smoke0, "status", "ok")),
        "tma.yaml",
        f"{P}.smoke.0.status:",
        "expected an integer; got 'ok'",
        id="status-not-integer",
    ),
    pytest.param(
        mutated(rename(prod, "database", "databse")),
        "tma.yaml",
        f"{P}.databse:",
        "unknown key; expected one of executor, root, persistent, releases, database, smoke, "
        "production (did you mean 'database'?)",
        id="typo-in-environment-key",
    ),
    pytest.param(
        mutated(setitem(database, "engine", "oracle")),
        "tma.yaml",
        f"{P}.database.engine:",
        "expected one of 'sqlite', 'mysql', 'mariadb', 'postgresql'; got 'oracle'",
        id="database-engine-unsupported",
    ),
    pytest.param(
        mutated(delete(database, "path")),
        "tma.yaml",
        f"{P}.database.path:",
        "this key is required; expected a string",
        id="database-path-missing",
    ),
    pytest.param(
        mutated(setitem(prod, "persistent", ["uploads", "../x"])),
        "tma.yaml",
        f"{P}.persistent.1:",
        "expected a path relative to root without '..', got '../x'",
        id="persistent-escapes-root",
    ),
    pytest.param(
        mutated(setitem(prod, "persistent", ["/etc"])),
        "tma.yaml",
        f"{P}.persistent.0:",
        "expected a path relative to root without '..', got '/etc'",
        id="persistent-absolute",
    ),
    pytest.param(
        mutated(setitem(prod, "persistent", "uploads")),
        "tma.yaml",
        f"{P}.persistent:",
        "expected a list; got 'uploads'",
        id="persistent-string-not-list",
    ),
    pytest.param(
        mutated(
            setitem(blog, "stack", {"kind": "wordpress", "channel": "c", "components_dir": "p"})
        ),
        "tma.yaml",
        "sites.blog.stack.components_dir:",
        "unknown key",
        id="key-of-another-stack-kind",
    ),
    pytest.param(
        mutated(lambda d: defaults(d)["stack"].update(kind="drupal")),
        "tma.yaml",
        "sites.blog.stack.kind (from defaults.stack.kind):",
        "expected one of 'archive', 'wordpress', 'python', 'node', 'docker'; got 'drupal'",
        id="unknown-stack-kind-in-defaults",
    ),
    pytest.param(
        mutated(setitem(blog, "retention", {"keep_last": 0})),
        "tma.yaml",
        "sites.blog.retention.keep_last:",
        "expected an integer of at least 1; got 0",
        id="retention-keep-last-zero",
    ),
    pytest.param(
        mutated(setitem(blog, "updates", {"allow": ["patch", "huge"]})),
        "tma.yaml",
        "sites.blog.updates.allow.1:",
        "expected one of 'patch', 'minor', 'major'; got 'huge'",
        id="updates-allow-bad-class",
    ),
    pytest.param(
        mutated(setitem(prod, "root", "${" + UNDEFINED + "}/www")),
        "tma.yaml",
        f"{P}.root:",
        f"environment variable {UNDEFINED} is not set; expected it set, or a default written "
        "${" + UNDEFINED + ":-default}",
        id="undefined-env-var",
    ),
    pytest.param(
        same_site_in_two_files,
        "inv/b.yml",
        "sites.blog:",
        "site 'blog' is already defined in",
        id="duplicate-site-across-files",
    ),
    pytest.param(
        empty_directory,
        "inv",
        "no inventory in this directory",
        "expected at least one .yaml or .yml file",
        id="empty-directory",
    ),
    pytest.param(
        missing_file,
        "nowhere.yaml",
        "inventory not found",
        "expected a YAML file or a directory of them",
        id="missing-path",
    ),
]


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["inventory", "check", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(("build", "reported", "key", "expected"), CASES)
def test_bad_inventory_gives_one_clear_line(
    build: Build,
    reported: str,
    key: str,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(UNDEFINED, raising=False)
    code, out, err = check(build(tmp_path), capsys)
    assert code == 3, err
    assert out == ""
    assert err.endswith("\n") and len(err.splitlines()) == 1, err
    assert err.startswith(f"tma-ops: error: {tmp_path / reported}"), err
    assert key in err
    assert expected in err
    assert "Traceback" not in err
    assert not [w for w in PYDANTIC_WORDING if w in err], err


def test_table_covers_enough_distinct_cases() -> None:
    ids = [case.id for case in CASES]
    assert len(set(ids)) == len(ids) >= 14


def line_containing(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("tier: business", "tier: gold", id="tier"),
        pytest.param("executor: local://", "executor: ftp://host", id="executor"),
        pytest.param("database: {engine: sqlite", "databse: {engine: sqlite", id="typo"),
        pytest.param("persistent: [uploads]", "persistent: [../x]", id="persistent"),
        pytest.param('contains: "Contact form"', "status: 999", id="status-in-list"),
        pytest.param("keep_last: 3", "keep_last: 0", id="defaults-flow-mapping"),
        pytest.param("root: sites/blog/production/www", "root: ${" + UNDEFINED + "}", id="env"),
    ],
)
def test_line_number_points_at_the_offending_key(
    old: str,
    new: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(UNDEFINED, raising=False)
    text = demo_text(old, new)
    path = tmp_path / "tma.yaml"
    path.write_text(text, encoding="utf-8")
    code, _out, err = check(path, capsys)
    assert code == 3
    assert err.startswith(f"tma-ops: error: {path}:{line_containing(text, new)}: "), err


def test_yaml_syntax_error_reports_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = demo_text("    tier: critique\n", "    tier: [critique\n")
    path = tmp_path / "tma.yaml"
    path.write_text(text, encoding="utf-8")
    code, _out, err = check(path, capsys)
    assert code == 3
    assert err.startswith(f"tma-ops: error: {path}:"), err
    line = int(err.removeprefix(f"tma-ops: error: {path}:").split(":")[0])
    assert line_containing(text, "tier: [critique") <= line <= len(text.splitlines()) + 1


def test_demo_inventory_checks_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(DEMO, capsys)
    assert (code, err) == (0, "")
    assert out == f"ok: 2 site(s) in {DEMO}: blog, shop\n"


def test_unmutated_round_trip_checks_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The table's bad inventories differ from a valid one by their mutation only."""
    code, out, err = check(mutated(lambda _document: None)(tmp_path), capsys)
    assert (code, err) == (0, "")
    assert "blog, shop" in out


def test_directory_inventory_checks_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "inv"
    directory.mkdir()
    document = demo()
    shop = {"sites": {"shop": document["sites"].pop("shop")}, "defaults": document["defaults"]}
    (directory / "blog.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    (directory / "shop.yml").write_text(yaml.safe_dump(shop), encoding="utf-8")
    code, out, err = check(directory, capsys)
    assert (code, err) == (0, "")
    assert out.endswith(": blog, shop\n")
