"""The plan step: the updates the stack offers, judged by the site's update policy.

The driver says what is installed and what is available; the advisories come from the site's
`updates.advisories` sources; tma_ops.update_policy decides. The step records every candidate
with its decision and reason, and the components still vulnerable after the plan; the cycle
applies `updates` (the pinned plan) on staging, then the same on production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from tma_ops.advisories import AdvisoryIndex, display_url, load_advisories
from tma_ops.config import Site
from tma_ops.stacks.registry import driver_for
from tma_ops.steps import RunContext
from tma_ops.update_policy import Plan, decide


def _silent(_line: str) -> None:
    return None


def compute_plan(
    site: Site,
    env_name: str,
    *,
    approved: frozenset[str] = frozenset(),
    now: datetime | None = None,
    say: Callable[[str], None] = _silent,
) -> Plan:
    """The plan for the components installed on `env_name` of `site`, as of `now`."""
    env = site.environment(env_name).code()
    driver = driver_for(site.stack)
    say(f"reading the components installed on {env_name}")
    installed = driver.inventory(env)
    say(f"{len(installed)} component(s); asking the {site.stack.kind} stack for updates")
    candidates = driver.available(env, installed)
    advisories = site_advisories(site, say)
    return decide(
        candidates,
        installed,
        tier=site.tier,
        policy=site.updates,
        advisories=advisories,
        approved=approved,
        now=now or datetime.now(UTC),
    )


def site_advisories(site: Site, say: Callable[[str], None] = _silent) -> AdvisoryIndex:
    sources = site.updates.advisories
    if not sources:
        return AdvisoryIndex()
    shown = ", ".join(display_url(s) if "://" in s else s for s in sources)
    say(f"reading advisories from {shown}")
    index = load_advisories(sources)
    say(f"{len(index)} advisory record(s) read")
    return index


def plan_record(plan: Plan, approved: frozenset[str]) -> dict[str, Any]:
    """What the journal keeps of a plan; `updates` is the pinned plan the cycle applies."""
    return {
        "updates": [asdict(u) for u in plan.planned],
        "held": [{**asdict(u), "reason": reason} for u, reason in plan.held],
        "entries": [e.as_dict() for e in plan.entries],
        "vulnerable": [v.as_dict() for v in plan.vulnerable],
        "approved": sorted(approved),
    }


def plan_updates(ctx: RunContext) -> dict[str, Any]:
    plan = compute_plan(ctx.site, "staging", approved=ctx.approved, say=ctx.tell)
    for approval in plan.unmatched_approvals:
        ctx.tell(f"--approve {approval}: no such component; nothing approved by it")
    for entry in plan.entries:
        verb = "plan" if entry.decision == "planned" else "held back"
        ctx.tell(f"{verb}: {entry.update.describe()}: {entry.reason}")
    for item in plan.vulnerable:
        ctx.tell(
            f"still vulnerable: {item.component} {item.version}: {item.advisory}: {item.reason}"
        )
    if not plan.planned:
        ctx.tell("nothing to update")
    return plan_record(plan, ctx.approved)
