"""The update policy as a table: one row per rule, tier, cooldown edge, approval and override."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tma_ops.advisories import AdvisoryIndex, records_of
from tma_ops.model import UpdatePolicy
from tma_ops.stacks import Component, Update
from tma_ops.update_policy import (
    Plan,
    approvals,
    decide,
    released_at,
    rules_for,
)

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat()


def upd(
    name: str,
    old: str,
    new: str,
    released: str = "",
    scheme: str = "pep440",
    ecosystem: str = "PyPI",
) -> Update:
    return Update(name, old, new, released=released, scheme=scheme, ecosystem=ecosystem)


def osv(ident: str, name: str, *events: dict[str, str], ecosystem: str = "PyPI") -> Any:
    return {
        "id": ident,
        "summary": f"hole in {name}",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": list(events)}],
            }
        ],
    }


ADVISORIES = AdvisoryIndex(
    records_of(
        json.dumps(
            [
                osv("SEC-1", "forms", {"introduced": "0"}, {"fixed": "1.0.1"}),
                osv("SEC-2", "shop", {"introduced": "0"}, {"fixed": "2.0.0"}),
                osv("SEC-3", "blog", {"introduced": "1.1.0"}, {"fixed": "1.1.5"}),
                osv(
                    "SEC-4",
                    "gallery",
                    {"introduced": "0"},
                    {"fixed": "1.0.1"},
                    {"introduced": "1.1.0"},
                    {"fixed": "1.1.2"},
                ),
                osv("SEC-5", "legacy", {"introduced": "0"}),
                osv("SEC-8", "forms", {"introduced": "1.1.0"}),
                osv(
                    "SEC-6",
                    "wordpress",
                    {"introduced": "6.4"},
                    {"fixed": "6.4.3"},
                    ecosystem="WordPress",
                ),
                osv(
                    "SEC-7",
                    "premium-seo",
                    {"introduced": "0"},
                    {"fixed": "3.1"},
                    ecosystem="WordPress",
                ),
            ]
        ).encode(),
        "table.json",
    )
)


def policy(**settings: Any) -> UpdatePolicy:
    return UpdatePolicy.model_validate(settings)


def row(
    ident: str,
    tier: str,
    candidates: list[Update],
    expected: list[tuple[str, str, str]],
    *,
    settings: dict[str, Any] | None = None,
    approved: tuple[str, ...] = (),
) -> Any:
    return pytest.param(
        tier, policy(**(settings or {})), candidates, frozenset(approved), expected, id=ident
    )


# One row per case: id, tier, candidates, expected entries (to, decision, reason fragment),
# then the site's `updates:` settings and the run's approvals when the case needs them.
# fmt: off
TABLE = [
    # tiers and cooldowns
    row("business-patch-after-cooldown", "business", [upd("x", "1.0.0", "1.0.1", ago(10))],
        [("1.0.1", "planned", "patch allowed; released 10 day(s) ago (cooldown 3)")]),
    row("business-patch-in-cooldown", "business", [upd("x", "1.0.0", "1.0.1", ago(2))],
        [("1.0.1", "held", "released 2 day(s) ago; the patch cooldown is 3 days "
          "(plannable from 2025-06-02)")]),
    row("cooldown-edge-exactly-reached", "business", [upd("x", "1.0.0", "1.0.1", ago(3))],
        [("1.0.1", "planned", "released 3 day(s) ago")]),
    row("cooldown-edge-one-second-short", "business",
        [upd("x", "1.0.0", "1.0.1", (NOW - timedelta(days=3, seconds=-1)).isoformat())],
        [("1.0.1", "held", "the patch cooldown is 3 days")]),
    row("business-minor-cooldown-7", "business", [upd("x", "1.0.0", "1.1.0", ago(6))],
        [("1.1.0", "held", "the minor cooldown is 7 days")]),
    row("critique-minor-cooldown-14", "critique", [upd("x", "1.0.0", "1.1.0", ago(10))],
        [("1.1.0", "held", "the minor cooldown is 14 days")]),
    row("critique-patch-cooldown-7", "critique", [upd("x", "1.0.0", "1.0.1", ago(8))],
        [("1.0.1", "planned", "cooldown 7")]),
    row("critique-major-approved-cooldown-30", "critique", [upd("x", "1.0", "2.0", ago(29))],
        [("2.0", "held", "the major cooldown is 30 days")], approved=("x",)),
    row("release-in-the-future", "business", [upd("x", "1.0.0", "1.0.1", ago(-1))],
        [("1.0.1", "held", "released in the future (2025-06-02); the patch cooldown is 3 days")]),
    row("site-cooldown-overrides-tier", "critique", [upd("x", "1.0.0", "1.0.1", ago(0))],
        [("1.0.1", "planned", "patch allowed")], settings={"cooldown": {"patch": 0}}),
    row("site-cooldown-keeps-other-classes", "critique", [upd("x", "1.0.0", "1.1.0", ago(13))],
        [("1.1.0", "held", "the minor cooldown is 14 days")], settings={"cooldown": {"patch": 0}}),
    row("naive-release-time-is-utc", "business",
        [upd("x", "1.0.0", "1.0.1", (NOW - timedelta(days=4)).replace(tzinfo=None).isoformat())],
        [("1.0.1", "planned", "released 4 day(s) ago")]),
    row("release-time-with-z", "business", [upd("x", "1.0.0", "1.0.1", "2025-05-01T00:00:00Z")],
        [("1.0.1", "planned", "released 31 day(s) ago")]),
    # unknown release dates
    row("unknown-release-planned-by-default", "critique", [upd("x", "1.0.0", "1.0.1")],
        [("1.0.1", "planned", "patch allowed; release date unknown, cooldown not checked")]),
    row("unreadable-release-is-unknown", "critique", [upd("x", "1.0.0", "1.0.1", "last tuesday")],
        [("1.0.1", "planned", "release date unknown")]),
    row("unknown-release-held-when-asked", "business", [upd("x", "1.0.0", "1.0.1")],
        [("1.0.1", "held", "release date unknown; the patch cooldown of 3 days needs one")],
        settings={"unknown_release": "hold"}),
    row("unknown-release-no-cooldown-to-check", "business", [upd("x", "1.0.0", "1.0.1")],
        [("1.0.1", "planned", "patch allowed")],
        settings={"unknown_release": "hold", "cooldown": {"patch": 0}}),
    # allowed classes
    row("essentiel-plans-no-routine-update", "essentiel", [upd("x", "1.0.0", "1.0.1", ago(90))],
        [("1.0.1", "held", "patch updates not allowed (the essentiel tier allows: none)")]),
    row("essentiel-plans-security-fixes", "essentiel", [upd("forms", "1.0.0", "1.0.1", ago(0))],
        [("1.0.1", "planned", "security fix (SEC-1), despite patch updates not allowed")]),
    row("site-allow-overrides-tier", "essentiel", [upd("x", "1.0.0", "1.0.1", ago(90))],
        [("1.0.1", "planned", "patch allowed")], settings={"allow": ["patch"]}),
    row("site-allow-narrows", "business", [upd("x", "1.0.0", "1.1.0", ago(90))],
        [("1.1.0", "held", "minor updates not allowed (updates.allow allows: patch)")],
        settings={"allow": ["patch"]}),
    row("allow-empty-list", "business", [upd("x", "1.0.0", "1.0.1", ago(90))],
        [("1.0.1", "held", "(updates.allow allows: none)")], settings={"allow": []}),
    # holds
    row("hold", "business", [upd("x", "1.0.0", "1.0.1", ago(90))],
        [("1.0.1", "held", "on hold: client freeze until March")],
        settings={"hold": {"x": "client freeze until March"}}),
    row("hold-other-component", "business", [upd("x", "1.0.0", "1.0.1", ago(90))],
        [("1.0.1", "planned", "patch allowed")], settings={"hold": {"y": "not this one"}}),
    # security overrides, and what no fix may do
    row("security-despite-hold", "business", [upd("forms", "1.0.0", "1.0.1", ago(90))],
        [("1.0.1", "planned", "security fix (SEC-1), despite on hold: client freeze")],
        settings={"hold": {"forms": "client freeze"}}),
    row("security-despite-cooldown", "critique", [upd("forms", "1.0.0", "1.0.1", ago(0))],
        [("1.0.1", "planned", "security fix (SEC-1), despite released 0 day(s) ago")]),
    row("security-despite-allow", "business", [upd("forms", "1.0.0", "1.0.1", ago(90))],
        [("1.0.1", "planned", "despite patch updates not allowed (updates.allow allows: none)")],
        settings={"allow": []}),
    row("security-fix-that-is-routine-too", "business", [upd("forms", "1.0.0", "1.0.1", ago(90))],
        [("1.0.1", "planned", "security fix (SEC-1)")]),
    row("update-into-a-known-hole", "business", [upd("blog", "1.0.9", "1.1.0", ago(90))],
        [("1.1.0", "held", "1.1.0 is affected by SEC-3")]),
    row("fix-that-opens-another-hole", "business", [upd("forms", "1.0.0", "1.1.0", ago(90))],
        [("1.1.0", "held", "1.1.0 is affected by SEC-8")]),
    row("same-hole-on-both-sides-is-no-fix", "business",
        [upd("gallery", "1.0.0", "1.1.0", ago(90))], [("1.1.0", "planned", "minor allowed")]),
    # approvals
    row("major-needs-approval", "business", [upd("x", "1.4", "2.0", ago(90))],
        [("2.0", "held", "major update: needs approval (--approve x)")]),
    row("major-approved-by-name", "business", [upd("x", "1.4", "2.0", ago(90))],
        [("2.0", "planned", "major approved (--approve x); major allowed")], approved=("x",)),
    row("major-approved-all", "business", [upd("x", "1.4", "2.0", ago(90))],
        [("2.0", "planned", "major approved (--approve all)")], approved=("*",)),
    row("approval-of-another-component", "business", [upd("x", "1.4", "2.0", ago(90))],
        [("2.0", "held", "needs approval")], approved=("y",)),
    row("major-approved-by-inventory-line", "business", [upd("x", "3.1.0", "4.0.0", ago(90))],
        [("4.0.0", "planned", "major approved (updates.approve: line 4)")],
        settings={"approve": {"x": 4}}),
    row("inventory-line-is-one-major", "business", [upd("x", "3.1.0", "5.0.0", ago(90))],
        [("5.0.0", "held", "needs approval")], settings={"approve": {"x": "4"}}),
    row("major-security-still-needs-approval", "business", [upd("shop", "1.9", "2.0.0", ago(90))],
        [("2.0.0", "held", "major update: needs approval (--approve shop); it fixes SEC-2")]),
    row("major-security-approved", "business", [upd("shop", "1.9", "2.0.0", ago(0))],
        [("2.0.0", "planned", "major approved (--approve shop); security fix (SEC-2)")],
        approved=("shop",)),
    row("approved-major-not-allowed", "business", [upd("x", "1.4", "2.0", ago(90))],
        [("2.0", "held", "major updates not allowed (updates.allow allows: patch, minor)")],
        settings={"allow": ["patch", "minor"]}, approved=("x",)),
    row("approved-major-on-hold", "business", [upd("x", "1.4", "2.0", ago(90))],
        [("2.0", "held", "on hold: waits for the redesign")],
        settings={"hold": {"x": "waits for the redesign"}}, approved=("x",)),
    # several candidates for one component
    row("highest-allowed-wins", "business",
        [upd("x", "1.0.0", "1.0.3", ago(90)), upd("x", "1.0.0", "1.2.0", ago(90)),
         upd("x", "1.0.0", "2.0.0", ago(90))],
        [("1.0.3", "held", "superseded by 1.2.0 (planned)"), ("1.2.0", "planned", "minor allowed"),
         ("2.0.0", "held", "needs approval")]),
    row("approved-major-supersedes", "business",
        [upd("x", "1.0.0", "1.0.3", ago(90)), upd("x", "1.0.0", "2.0.0", ago(90))],
        [("1.0.3", "held", "superseded by 2.0.0"), ("2.0.0", "planned", "major approved")],
        approved=("x",)),
    row("lower-when-higher-cools-down", "business",
        [upd("x", "1.0.0", "1.0.3", ago(90)), upd("x", "1.0.0", "1.2.0", ago(1))],
        [("1.0.3", "planned", "patch allowed"), ("1.2.0", "held", "the minor cooldown")]),
    row("fix-preferred-over-higher-hole", "business",
        [upd("gallery", "1.0.0", "1.0.1", ago(90)), upd("gallery", "1.0.0", "1.1.1", ago(90))],
        [("1.0.1", "planned", "security fix (SEC-4)"), ("1.1.1", "held", "superseded by 1.0.1")]),
    # version schemes
    row("unparsable-versions-held", "business", [upd("x", "1.0", "nightly", ago(90))],
        [("nightly", "held", "cannot compare '1.0' and 'nightly' as pep440 versions")]),
    row("pep440-post-release-is-patch", "business", [upd("x", "1.2.3", "1.2.3.post1", ago(90))],
        [("1.2.3.post1", "planned", "patch allowed")]),
    row("pep440-epoch-is-major", "business", [upd("x", "2024.1", "1!1.0", ago(90))],
        [("1!1.0", "held", "major update: needs approval")]),
    row("wordpress-security-release", "critique",
        [upd("wordpress", "6.4.2", "6.4.3", ago(1), "wordpress", "WordPress")],
        [("6.4.3", "planned", "security fix (SEC-6)")]),
    row("wordpress-x.y-is-major", "business",
        [upd("wordpress", "6.4.3", "6.5", ago(90), "wordpress", "WordPress")],
        [("6.5", "held", "major update: needs approval (--approve wordpress)")]),
    row("wordpress-inventory-line", "business",
        [upd("wordpress", "6.4.3", "6.5.2", ago(90), "wordpress", "WordPress")],
        [("6.5.2", "planned", "line 6.5")], settings={"approve": {"wordpress": "6.5"}}),
    row("semver-npm-minor", "business",
        [upd("lodash", "4.16.0", "4.17.21", ago(90), "semver", "npm")],
        [("4.17.21", "planned", "minor allowed")]),
    row("ecosystem-from-the-policy", "business",
        [upd("premium-seo", "3.0", "3.1", ago(0), ecosystem="")],
        [("3.1", "planned", "security fix (SEC-7)")], settings={"ecosystem": "WordPress"}),
    row("no-ecosystem-no-advisory", "business",
        [upd("premium-seo", "3.0", "3.1", ago(0), ecosystem="")],
        [("3.1", "held", "the minor cooldown")]),
]
# fmt: on


@pytest.mark.parametrize(("tier", "site_policy", "candidates", "approved", "expected"), TABLE)
def test_decide(
    tier: str,
    site_policy: UpdatePolicy,
    candidates: list[Update],
    approved: frozenset[str],
    expected: list[tuple[str, str, str]],
) -> None:
    installed = [Component(u.component, u.from_version, ecosystem=u.ecosystem) for u in candidates]
    plan = decide(
        candidates,
        installed,
        tier=tier,
        policy=site_policy,
        advisories=ADVISORIES,
        approved=approved,
        now=NOW,
    )
    got = [(e.update.to_version, e.decision, e.reason) for e in plan.entries]
    assert [(to, decision) for to, decision, _ in got] == [(t, d) for t, d, _ in expected], got
    for (_, _, reason), (_, _, fragment) in zip(got, expected, strict=True):
        assert fragment in reason
    assert len(plan.planned) <= len({u.component for u in candidates})


def plan_of(candidates: list[Update], installed: list[Component], **kwargs: Any) -> Plan:
    return decide(
        candidates,
        installed,
        tier=kwargs.pop("tier", "business"),
        policy=kwargs.pop("policy", UpdatePolicy()),
        advisories=ADVISORIES,
        now=NOW,
        **kwargs,
    )


def test_entries_fill_the_class_and_list_the_fixed_advisories() -> None:
    plan = plan_of(
        [upd("forms", "1.0.0", "1.0.1", ago(90))], [Component("forms", "1.0.0", ecosystem="PyPI")]
    )
    (entry,) = plan.entries
    assert entry.update.semver_class == "patch"
    assert entry.as_dict() == {
        "component": "forms",
        "from": "1.0.0",
        "to": "1.0.1",
        "class": "patch",
        "advisories": ["SEC-1"],
        "security": True,
        "decision": "planned",
        "reason": "security fix (SEC-1)",
    }
    assert plan.planned == [entry.update]
    assert plan.held == []
    assert plan.vulnerable == ()


@pytest.mark.parametrize(
    ("candidates", "installed", "approved", "expected"),
    [
        pytest.param(
            [],
            [Component("legacy", "1.0", ecosystem="PyPI")],
            (),
            [("legacy", "1.0", "SEC-5", (), "no fixed version published")],
            id="no-fix-published",
        ),
        pytest.param(
            [],
            [Component("forms", "1.0.0", ecosystem="PyPI")],
            (),
            [
                (
                    "forms",
                    "1.0.0",
                    "SEC-1",
                    ("1.0.1",),
                    "fixed in 1.0.1, which no available update reaches",
                )
            ],
            id="fix-not-offered",
        ),
        pytest.param(
            [upd("shop", "1.9", "2.0.0", ago(90))],
            [Component("shop", "1.9", ecosystem="PyPI")],
            (),
            [
                (
                    "shop",
                    "1.9",
                    "SEC-2",
                    ("2.0.0",),
                    "the fix 2.0.0 is held: major update: needs approval (--approve shop); "
                    "it fixes SEC-2",
                )
            ],
            id="fix-held-for-approval",
        ),
        pytest.param(
            [upd("shop", "1.9", "2.0.0", ago(90))],
            [Component("shop", "1.9", ecosystem="PyPI")],
            ("shop",),
            [],
            id="fix-planned",
        ),
        pytest.param(
            [upd("blog", "1.1.1", "1.1.3", ago(90))],
            [Component("blog", "1.1.1", ecosystem="PyPI")],
            (),
            [
                (
                    "blog",
                    "1.1.3",
                    "SEC-3",
                    ("1.1.5",),
                    "fixed in 1.1.5, which no available update reaches",
                )
            ],
            id="planned-update-not-far-enough",
        ),
        pytest.param(
            [],
            [Component("legacy", "1.0")],
            (),
            [],
            id="no-ecosystem-nothing-known",
        ),
    ],
)
def test_still_vulnerable(
    candidates: list[Update],
    installed: list[Component],
    approved: tuple[str, ...],
    expected: list[tuple[str, str, str, tuple[str, ...], str]],
) -> None:
    plan = plan_of(candidates, installed, approved=frozenset(approved))
    got = [(v.component, v.version, v.advisory, v.fixed_in, v.reason) for v in plan.vulnerable]
    assert got == expected


def test_vulnerable_entry_as_dict() -> None:
    plan = plan_of([], [Component("legacy", "1.0", ecosystem="PyPI")])
    assert plan.vulnerable[0].as_dict() == {
        "component": "legacy",
        "version": "1.0",
        "advisory": "SEC-5",
        "aliases": [],
        "summary": "hole in legacy",
        "severity": "",
        "fixed_in": [],
        "reason": "no fixed version published",
    }


def test_approvals_naming_no_component_are_reported() -> None:
    plan = plan_of(
        [upd("x", "1.0", "2.0", ago(90))],
        [Component("x", "1.0"), Component("y", "1.0")],
        approved=frozenset({"x", "y", "typo", "*"}),
    )
    assert plan.unmatched_approvals == ("typo",)


def test_components_are_kept_in_the_order_the_driver_gave() -> None:
    candidates = [upd("b", "1.0", "1.0.1", ago(90)), upd("a", "1.0", "1.0.1", ago(90))]
    plan = plan_of(candidates, [Component("a", "1.0"), Component("b", "1.0")])
    assert [e.update.component for e in plan.entries] == ["b", "a"]


@pytest.mark.parametrize(
    ("tier", "settings", "allow", "cooldown"),
    [
        pytest.param("essentiel", {}, (), {"patch": 3, "minor": 7, "major": 14}, id="essentiel"),
        pytest.param(
            "business",
            {},
            ("patch", "minor", "major"),
            {"patch": 3, "minor": 7, "major": 14},
            id="business",
        ),
        pytest.param(
            "critique",
            {},
            ("patch", "minor", "major"),
            {"patch": 7, "minor": 14, "major": 30},
            id="critique",
        ),
        pytest.param(
            "critique",
            {"allow": ["major", "patch"], "cooldown": {"minor": 1}},
            ("patch", "major"),
            {"patch": 7, "minor": 1, "major": 30},
            id="site-overrides",
        ),
        pytest.param(
            "essentiel",
            {"allow": ["patch", "minor", "major"]},
            ("patch", "minor", "major"),
            {"patch": 3, "minor": 7, "major": 14},
            id="written-default-is-still-written",
        ),
    ],
)
def test_rules_for(
    tier: str, settings: dict[str, Any], allow: tuple[str, ...], cooldown: dict[str, int]
) -> None:
    rules = rules_for(tier, policy(**settings))
    assert (rules.allow, dict(rules.cooldown)) == (allow, cooldown)


def test_cli_approvals() -> None:
    assert approvals(["seo", "all"]) == frozenset({"seo", "*"})
    assert approvals(None) == frozenset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("  ", None),
        ("garbage", None),
        ("2025-05-01T10:00:00Z", datetime(2025, 5, 1, 10, tzinfo=UTC)),
        ("2025-05-01T10:00:00", datetime(2025, 5, 1, 10, tzinfo=UTC)),
        ("2025-05-01T12:00:00+02:00", datetime(2025, 5, 1, 10, tzinfo=UTC)),
    ],
)
def test_released_at(text: str, expected: datetime | None) -> None:
    assert released_at(text) == expected
