"""The sandbox's place of its own: which environments a restore test may overwrite."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tma_ops.model import Environment, Site
from tma_ops.model_sandbox import RestoreTestSpec, sandbox_conflict, trees_overlap

pytestmark = pytest.mark.unit

SMOKE = [{"url": "http://127.0.0.1:8080/"}]
MARIADB = {"engine": "mariadb", "name": "shop", "host": "127.0.0.1", "port": 3306}


def env(
    root: str, database: dict[str, Any], executor: str = "local://", **more: Any
) -> Environment:
    return Environment(executor=executor, root=root, database=database, smoke=SMOKE, **more)


def sqlite(path: str) -> dict[str, Any]:
    return {"engine": "sqlite", "path": path}


PRODUCTION = env("/srv/shop/prod", MARIADB)
STAGING = env("/srv/shop/staging", sqlite("/srv/shop/staging.sqlite"))
OTHERS = {"production": PRODUCTION, "staging": STAGING}


@pytest.mark.parametrize(
    ("sandbox", "conflict"),
    [
        # a place of its own
        (env("/srv/shop/sandbox", {**MARIADB, "name": "shop_sandbox"}), None),
        (env("/srv/shop/sandbox", sqlite("/srv/shop/sandbox.sqlite")), None),
        # the same name on another server is another database
        (env("/srv/shop/sandbox", {**MARIADB, "port": 3307}), None),
        (env("/srv/shop/sandbox", {**MARIADB, "host": "db2.internal"}), None),
        # the same root on another machine is another tree
        (env("/srv/shop/prod", sqlite("/x.sqlite"), "ssh://deploy@sandbox.internal"), None),
        # marked production
        (
            env("/srv/shop/sandbox", sqlite("/s.sqlite"), production=True),
            "sandbox.production",
        ),
        # production's or staging's files, or a tree inside or around them
        (env("/srv/shop/prod", sqlite("/s.sqlite")), "sandbox.root"),
        (env("/srv/shop/prod/", sqlite("/s.sqlite")), "sandbox.root"),
        (env("/srv/shop/prod/sandbox", sqlite("/s.sqlite")), "sandbox.root"),
        (env("/srv/shop", sqlite("/s.sqlite")), "sandbox.root"),
        (env("/srv/shop/staging", sqlite("/s.sqlite")), "sandbox.root"),
        # production's database, however its server is written
        (env("/srv/shop/sandbox", MARIADB), "sandbox.database"),
        (env("/srv/shop/sandbox", {**MARIADB, "engine": "mysql"}), "sandbox.database"),
        (env("/srv/shop/sandbox", {**MARIADB, "port": None}), "sandbox.database"),
        (env("/srv/shop/sandbox", {**MARIADB, "host": "localhost"}), "sandbox.database"),
        # staging's SQLite file, written another way
        (env("/srv/shop/sandbox", sqlite("/srv/shop/./staging.sqlite")), "sandbox.database"),
    ],
)
def test_a_sandbox_shares_nothing_with_the_other_environments(
    sandbox: Environment, conflict: str | None
) -> None:
    found = sandbox_conflict(sandbox, {**OTHERS, "sandbox": sandbox})
    if conflict is None:
        assert found is None
    else:
        assert found is not None and found.startswith(conflict + ":"), found


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("/a/b", "/a/b", True),
        ("/a/b", "/a/b/c", True),
        ("/a/b/c", "/a/b", True),
        ("/a/b", "/a/bc", False),
        ("/a/b", "/a/c", False),
        ("sites/blog/sandbox/www", "sites/blog/production/www", False),
        ("sites/blog/www", "./sites/blog/www/", True),
    ],
)
def test_trees_overlap_when_one_holds_the_other(first: str, second: str, overlap: bool) -> None:
    assert trees_overlap(first, second) is overlap


def site(**environments: Environment) -> dict[str, Any]:
    return {
        "name": "shop",
        "tier": "business",
        "store": "file:///tmp/store",
        "stack": {"kind": "archive", "channel": "/tmp/channel", "components_dir": "plugins"},
        "environments": environments,
    }


def test_the_site_model_refuses_a_sandbox_on_production_database() -> None:
    with pytest.raises(ValidationError, match=r"sandbox\.database: .*is also production's"):
        Site(**site(production=PRODUCTION, staging=STAGING, sandbox=env("/srv/sb", MARIADB)))


def test_the_sandbox_is_optional_and_restore_tests_have_defaults() -> None:
    plain = Site(**site(production=PRODUCTION, staging=STAGING))
    assert "sandbox" not in plain.environments
    assert plain.restore_test == RestoreTestSpec()
    assert (plain.restore_test.cadence_days, plain.restore_test.teardown) == (None, True)
    assert PRODUCTION.production is False


def test_a_cadence_must_be_a_positive_number_of_days() -> None:
    with pytest.raises(ValidationError):
        RestoreTestSpec(cadence_days=0)
