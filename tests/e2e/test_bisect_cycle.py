"""A batch of six updates of which one breaks staging: bisect names it, the five others ship."""

from __future__ import annotations

import json

import pytest
from e2e_support import Workspace, installed_versions

from tma_ops.demo.workspace import build_component_archive, install_component
from tma_ops.errors import EXIT_WARNINGS

pytestmark = pytest.mark.e2e

QUIET = "def render(page, context):\n    return None\n"
BROKEN = "def render(page, context):\n    raise RuntimeError('gamma 1.0.1 lost its template')\n"
EXTRA = ("alpha", "beta", "delta", "gamma")  # beside the demo blog's seo and gallery updates


def add_components(workspace: Workspace) -> None:
    for env in ("production", "staging"):
        plugins = workspace.root / f"sites/blog/{env}/www/plugins"
        for name in EXTRA:
            install_component(plugins, name, "1.0.0", QUIET)
    for name in EXTRA:
        source = BROKEN if name == "gamma" else QUIET
        build_component_archive(workspace.root / "channel", name, "1.0.1", source, "zip")


def test_bisect_promotes_the_five_good_updates_and_names_the_culprit(
    workspace: Workspace,
) -> None:
    add_components(workspace)
    workspace.cli_timeout = 1200  # about 30 archive updates: the batch, the rounds, the promotion
    result = workspace.cli("cycle", "blog", "--json")

    assert result.returncode == EXIT_WARNINGS, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["outcome"] == "partly-promoted"
    assert summary["culprits"] == ["gamma"]
    production = installed_versions(workspace.root / "sites/blog/production/www")
    assert production == {
        "alpha": "1.0.1",
        "beta": "1.0.1",
        "delta": "1.0.1",
        "gallery": "2.0.1",
        "gamma": "1.0.0",
        "seo": "1.1.0",
    }
    events = workspace.journal().events(site="blog")
    rounds = [e.data for e in events if (e.step, e.status) == ("bisect", "round")]
    assert 1 <= len(rounds) <= 4
    bisect = next(e.data for e in events if (e.step, e.status) == ("bisect", "done"))
    assert bisect["culprits"] == ["gamma"]
    assert bisect["promotable"] == ["alpha", "beta", "delta", "gallery", "seo"]
    # Only a set that passed staging together is promoted.
    assert any(r["ok"] and r["updates"] == bisect["promotable"] for r in rounds)
    promote = next(e.data for e in events if (e.step, e.status) == ("promote", "done"))
    assert promote["applied"] == bisect["promotable"]
    assert workspace.cli("journal", "verify").returncode == 0
