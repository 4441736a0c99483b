"""The update policy: which available updates a cycle plans, and why every other one waits.

Pure: candidates, installed components, the site's tier and `updates:` settings, advisories,
approvals and `now` in; one entry per candidate (planned or held, with the reason) and the list
of components still vulnerable out. No I/O.

Each candidate is judged by these rules, in this order; the first that applies decides:

1. class: `versions.classify(update.scheme, from, to)` fills `semver_class`. A pair that does not
   parse is held: everything below depends on the class, and a guess could let a major through.
2. no known hole: a candidate whose target is affected by an advisory that does not affect the
   installed version is held, even when it fixes another one: trading a known hole for a new
   one is a human decision.
3. approval: a major is planned only when approved, by `--approve COMPONENT` (or `all`) for
   this run or by `updates.approve: {COMPONENT: LINE}` for a major line ("4" approves the
   majors that land on 4.x). Security fixes too: a major changes APIs by definition, the site
   usually needs work to follow (code, settings, data), and a blind one fails the smoke test
   and takes the run's other fixes back out with it. Such a held fix is listed with the still
   vulnerable components, so the approval it waits for is in plain sight.
4. security: a candidate that fixes an advisory (the installed version is affected, the target
   is not) is planned whatever hold, allow and cooldown say. A published hole is the larger
   risk: the guide asks for security updates within 72 h (A2), and a cooldown only guards
   against a release going bad in its first days.
5. hold: `updates.hold[COMPONENT]` holds it, with the reason written there.
6. allow: the class must be allowed (`updates.allow` when written, else the tier's).
7. cooldown: the version must have been released `cooldown[class]` days or more before `now`.
   When the source gives no release date, `updates.unknown_release` decides: "plan" (default)
   because private archive channels and WordPress plugins carry no per-version date and holding
   them would stop their updates for good (the guide's critical "updates never done" signal);
   "hold" for sites that must see a date.

At most one update per component is planned: among its candidates that passed, the one whose
target has the fewest known advisories, then the highest version. The others are held as
superseded.

Tier defaults (allow when `updates.allow` is not written; cooldown per class unless
`updates.cooldown` names it). The guide gives essentiel urgent security updates only, business
quarterly and critique monthly preventive updates; the more critical the site, the longer a
release proves itself elsewhere first:

    tier        allow                  cooldown days: patch / minor / major
    essentiel   none (security only)   3 / 7 / 14
    business    patch, minor, major    3 / 7 / 14
    critique    patch, minor, major    7 / 14 / 30

Still vulnerable: every installed component whose version after the plan (the planned target,
else the installed one) is affected by an advisory, with why: no fixed version published, a fix
that no candidate reaches, or the candidate that fixes it held (and why).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tma_ops.advisories import Advisory, AdvisoryIndex
from tma_ops.model import UpdatePolicy
from tma_ops.stacks import Component, Update
from tma_ops.versions import CLASSES, Parsed, classify, parse

APPROVE_ALL = "*"  # in approvals: every component
LOWEST = Parsed((0, 0, 0), ())


def approvals(names: Sequence[str] | None) -> frozenset[str]:
    """Approvals as given on the command line (--approve NAME, --approve all)."""
    return frozenset(APPROVE_ALL if name == "all" else name for name in names or ())


@dataclass(frozen=True)
class Rules:
    allow: tuple[str, ...]
    cooldown: Mapping[str, int]  # days per class
    unknown_release: str  # plan | hold
    allow_source: str  # where `allow` comes from, for reasons


TIER_ALLOW: dict[str, tuple[str, ...]] = {
    "essentiel": (),
    "business": ("patch", "minor", "major"),
    "critique": ("patch", "minor", "major"),
}
TIER_COOLDOWN: dict[str, dict[str, int]] = {
    "essentiel": {"patch": 3, "minor": 7, "major": 14},
    "business": {"patch": 3, "minor": 7, "major": 14},
    "critique": {"patch": 7, "minor": 14, "major": 30},
}


def rules_for(tier: str, policy: UpdatePolicy) -> Rules:
    """The rules of a site: its tier's defaults, overridden by what its policy writes."""
    allow: tuple[str, ...] = TIER_ALLOW[tier]
    source = f"the {tier} tier"
    if "allow" in policy.model_fields_set:
        allow, source = tuple(c for c in CLASSES if c in policy.allow), "updates.allow"
    cooldown = dict(TIER_COOLDOWN[tier])
    for cls, days in policy.cooldown.items():
        cooldown[cls] = days
    return Rules(allow, cooldown, policy.unknown_release, source)


@dataclass(frozen=True)
class PlanEntry:
    update: Update  # semver_class filled in
    advisories: tuple[str, ...]  # ids of the advisories it fixes
    decision: str  # planned | held
    reason: str

    @property
    def security(self) -> bool:
        return bool(self.advisories)

    def as_dict(self) -> dict[str, Any]:
        u = self.update
        return {
            "component": u.component,
            "from": u.from_version,
            "to": u.to_version,
            "class": u.semver_class,
            "advisories": list(self.advisories),
            "security": self.security,
            "decision": self.decision,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Vulnerable:
    component: str
    version: str  # the version it will have after the plan
    advisory: str
    aliases: tuple[str, ...]  # the same hole under other ids (CVE...)
    summary: str
    severity: str
    fixed_in: tuple[str, ...]  # fixed versions above `version` the advisory names
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "version": self.version,
            "advisory": self.advisory,
            "aliases": list(self.aliases),
            "summary": self.summary,
            "severity": self.severity,
            "fixed_in": list(self.fixed_in),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Plan:
    entries: tuple[PlanEntry, ...]
    vulnerable: tuple[Vulnerable, ...]
    unmatched_approvals: tuple[str, ...] = ()  # approvals naming no component

    @property
    def planned(self) -> list[Update]:
        return [e.update for e in self.entries if e.decision == "planned"]

    @property
    def held(self) -> list[tuple[Update, str]]:
        return [(e.update, e.reason) for e in self.entries if e.decision == "held"]


@dataclass(frozen=True)
class _Judge:
    rules: Rules
    policy: UpdatePolicy
    advisories: AdvisoryIndex
    approved: frozenset[str]
    now: datetime
    ecosystems: Mapping[str, str]  # installed component -> its OSV ecosystem ("" when none)
    fallback: str  # updates.ecosystem: for components whose stack names none

    def ecosystem(self, update: Update) -> str:
        return update.ecosystem or self.ecosystems.get(update.component) or self.fallback


def decide(
    candidates: Sequence[Update],
    installed: Sequence[Component],
    *,
    tier: str,
    policy: UpdatePolicy,
    advisories: AdvisoryIndex,
    approved: frozenset[str] = frozenset(),
    now: datetime,
) -> Plan:
    """Judge every candidate (see the module docstring) and plan at most one per component."""
    fallback = policy.ecosystem or ""
    judge = _Judge(
        rules_for(tier, policy),
        policy,
        advisories,
        approved,
        now if now.tzinfo else now.replace(tzinfo=UTC),
        {c.name: c.ecosystem or fallback for c in installed},
        fallback,
    )
    entries: list[PlanEntry] = []
    for group in _by_component(candidates):
        entries += _one_per_component([_judged(u, judge) for u in group], judge)
    names = {c.name for c in installed} | {u.component for u in candidates}
    unmatched = tuple(sorted(a for a in approved if a != APPROVE_ALL and a not in names))
    vulnerable = tuple(v for c in installed for v in _still_vulnerable(c, entries, judge))
    return Plan(tuple(entries), vulnerable, unmatched)


def _by_component(candidates: Sequence[Update]) -> list[list[Update]]:
    groups: dict[str, list[Update]] = {}
    for update in candidates:
        groups.setdefault(update.component, []).append(update)
    return list(groups.values())


def _judged(update: Update, judge: _Judge) -> PlanEntry:
    cls = classify(update.scheme, update.from_version, update.to_version)
    update = replace(update, semver_class=cls or "")
    if cls is None:
        return _held(
            update,
            (),
            f"cannot compare {update.from_version!r} and {update.to_version!r} "
            f"as {update.scheme} versions",
        )
    eco = judge.ecosystem(update)
    fixed = tuple(a.id for a in judge.advisories.fixed_by(eco, update.component, *_pair(update)))
    introduced = _introduced(update, eco, judge.advisories)
    if introduced:
        return _held(update, fixed, f"{update.to_version} is affected by {', '.join(introduced)}")
    approval = _approval(update, judge) if cls == "major" else ""
    if cls == "major" and not approval:
        why = f"major update: needs approval (--approve {update.component})"
        return _held(update, fixed, why + (f"; it fixes {', '.join(fixed)}" if fixed else ""))
    waits = _routine_hold(update, judge)
    if fixed:
        why = f"security fix ({', '.join(fixed)})" + (f", despite {waits}" if waits else "")
        return PlanEntry(update, fixed, "planned", _joined(approval, why))
    if waits:
        return _held(update, fixed, waits)
    return PlanEntry(update, fixed, "planned", _joined(approval, _routine_ok(update, judge)))


def _held(update: Update, fixed: tuple[str, ...], reason: str) -> PlanEntry:
    return PlanEntry(update, fixed, "held", reason)


def _pair(update: Update) -> tuple[str, str]:
    return update.from_version, update.to_version


def _joined(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _introduced(update: Update, ecosystem: str, advisories: AdvisoryIndex) -> list[str]:
    """Advisories affecting the target that do not affect the installed version."""
    before = {a.id for a in advisories.affecting(ecosystem, update.component, update.from_version)}
    after = advisories.affecting(ecosystem, update.component, update.to_version)
    return [a.id for a in after if a.id not in before]


def _approval(update: Update, judge: _Judge) -> str:
    """What approves this major ("" when nothing does)."""
    if APPROVE_ALL in judge.approved:
        return "major approved (--approve all)"
    if update.component in judge.approved:
        return f"major approved (--approve {update.component})"
    line = judge.policy.approve.get(update.component)
    if line is not None and classify(update.scheme, line, update.to_version) in ("patch", "minor"):
        return f"major approved (updates.approve: line {line})"
    return ""


def _routine_hold(update: Update, judge: _Judge) -> str:
    """Why hold, allow or cooldown keep this update back ("" when none does)."""
    rules, cls = judge.rules, update.semver_class
    if update.component in judge.policy.hold:
        return f"on hold: {judge.policy.hold[update.component]}"
    if cls not in rules.allow:
        allowed = ", ".join(rules.allow) or "none"
        return f"{cls} updates not allowed ({rules.allow_source} allows: {allowed})"
    days = rules.cooldown.get(cls, 0)
    released = released_at(update.released)
    if released is None:
        if days and rules.unknown_release == "hold":
            return f"release date unknown; the {cls} cooldown of {days} days needs one"
        return ""
    if judge.now - released < timedelta(days=days):
        ready = (released + timedelta(days=days)).date().isoformat()
        return (
            f"{_released_phrase(judge.now, released)}; the {cls} cooldown is {days} days "
            f"(plannable from {ready})"
        )
    return ""


def _routine_ok(update: Update, judge: _Judge) -> str:
    cls = update.semver_class
    days = judge.rules.cooldown.get(cls, 0)
    released = released_at(update.released)
    if released is None:
        age = "release date unknown, cooldown not checked" if days else ""
    else:
        age = f"{_released_phrase(judge.now, released)} (cooldown {days})"
    return _joined(f"{cls} allowed", age)


def released_at(text: str) -> datetime | None:
    """The release time of an ISO 8601 text (UTC when it names no zone); None when unknown."""
    if not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _released_phrase(now: datetime, released: datetime) -> str:
    if released > now:
        return f"released in the future ({released.date().isoformat()})"
    return f"released {(now - released) // timedelta(days=1)} day(s) ago"


def _one_per_component(entries: list[PlanEntry], judge: _Judge) -> list[PlanEntry]:
    passed = [e for e in entries if e.decision == "planned"]
    if len(passed) < 2:
        return entries
    chosen = max(passed, key=lambda e: _preference(e, judge))
    superseded = f"superseded by {chosen.update.to_version} (planned)"
    return [
        e if e is chosen or e.decision == "held" else _held(e.update, e.advisories, superseded)
        for e in entries
    ]


def _preference(entry: PlanEntry, judge: _Judge) -> tuple[int, Parsed]:
    """Fewest known advisories at the target first, then the highest version."""
    u = entry.update
    holes = len(judge.advisories.affecting(judge.ecosystem(u), u.component, u.to_version))
    return -holes, parse(u.scheme, u.to_version) or LOWEST


def _still_vulnerable(
    component: Component, entries: Sequence[PlanEntry], judge: _Judge
) -> list[Vulnerable]:
    eco = judge.ecosystems.get(component.name, "")
    mine = [e for e in entries if e.update.component == component.name]
    planned = next((e.update.to_version for e in mine if e.decision == "planned"), None)
    version = planned or component.version
    found = []
    for advisory in judge.advisories.affecting(eco, component.name, version):
        fixed_in = tuple(judge.advisories.fixes_above(advisory, eco, component.name, version))
        reason = _why_unfixed(advisory, fixed_in, mine)
        found.append(
            Vulnerable(
                component.name,
                version,
                advisory.id,
                advisory.aliases,
                advisory.summary,
                advisory.severity,
                fixed_in,
                reason,
            )
        )
    return found


def _why_unfixed(advisory: Advisory, fixed_in: tuple[str, ...], mine: list[PlanEntry]) -> str:
    if not fixed_in:
        return "no fixed version published"
    held = next((e for e in mine if e.decision == "held" and advisory.id in e.advisories), None)
    if held is not None:
        return f"the fix {held.update.to_version} is held: {held.reason}"
    return f"fixed in {', '.join(fixed_in)}, which no available update reaches"
