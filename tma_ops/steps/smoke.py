"""Smoke steps: run an environment's checks and record every result."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tma_ops.checks import CheckResult
from tma_ops.checks.http import HttpSmokeCheck
from tma_ops.config import Site
from tma_ops.steps import RunContext


def run_checks(site: Site, env_name: str) -> list[CheckResult]:
    return [HttpSmokeCheck(spec).check() for spec in site.environment(env_name).smoke]


def smoke_staging(ctx: RunContext) -> dict[str, Any]:
    return _smoke(ctx, "staging")


def smoke_production(ctx: RunContext) -> dict[str, Any]:
    return _smoke(ctx, "production")


def _smoke(ctx: RunContext, env_name: str) -> dict[str, Any]:
    results = run_checks(ctx.site, env_name)
    for result in results:
        mark = "ok" if result.ok else "FAILED"
        ctx.tell(f"smoke {env_name}: {mark} {result.name}: {result.detail}")
    return {"ok": all(r.ok for r in results), "results": [asdict(r) for r in results]}
