"""Pure decisions of the cycle: which steps apply, what a run's outcome is, how to resume."""

from __future__ import annotations

from typing import Any

from tma_ops.errors import EXIT_OK, EXIT_ROLLED_BACK, EXIT_WARNINGS

Outputs = dict[str, dict[str, Any]]

# Steps whose interruption may leave production half-changed: a resumed run first puts
# production back to the pre-promotion snapshot, then does the step again.
RESET_PRODUCTION_BEFORE_REDO = {"promote"}


def has_updates(outputs: Outputs) -> bool:
    return bool(outputs.get("plan", {}).get("updates"))


def staging_passed(outputs: Outputs) -> bool:
    return bool(outputs.get("smoke_staging", {}).get("ok"))


def production_passed(outputs: Outputs) -> bool:
    return bool(outputs.get("smoke_production", {}).get("ok"))


def staging_failed(outputs: Outputs) -> bool:
    return has_updates(outputs) and "smoke_staging" in outputs and not staging_passed(outputs)


def promotable(outputs: Outputs) -> list[str]:
    """The components production may get: the whole plan when staging passed, else what a
    bisect of the failed batch found passing together."""
    if staging_passed(outputs):
        return [u["component"] for u in outputs["plan"]["updates"]]
    return list(outputs.get("bisect", {}).get("promotable", []))


def culprits(outputs: Outputs) -> list[str]:
    return list(outputs.get("bisect", {}).get("culprits", []))


def step_applies(step: str, outputs: Outputs) -> bool:
    """Whether a step runs, given what earlier steps of the run produced."""
    if step in ("apply_staging", "smoke_staging"):
        return has_updates(outputs)
    if step in ("bisect", "reset_staging"):
        return staging_failed(outputs)
    if step in ("pre_promotion_snapshot", "promote", "smoke_production"):
        return has_updates(outputs) and bool(promotable(outputs))
    if step == "rollback":
        return (
            has_updates(outputs)
            and bool(promotable(outputs))
            and "smoke_production" in outputs
            and not production_passed(outputs)
        )
    return True


def run_outcome(outputs: Outputs) -> str:
    """up-to-date | promoted | partly-promoted | staging-failed | rolled-back."""
    if not has_updates(outputs):
        return "up-to-date"
    if not promotable(outputs):
        return "staging-failed"
    if not production_passed(outputs):
        return "rolled-back"
    return "partly-promoted" if culprits(outputs) else "promoted"


def outcome_exit_code(outcome: str) -> int:
    if outcome == "partly-promoted":  # the culprits still need someone's attention
        return EXIT_WARNINGS
    return EXIT_ROLLED_BACK if outcome in ("staging-failed", "rolled-back") else EXIT_OK


def production_state(outcome: str) -> str:
    return {
        "up-to-date": "unchanged",
        "promoted": "updated",
        "partly-promoted": "updated, without the updates that failed on staging",
        "staging-failed": "unchanged (never touched)",
        "rolled-back": "restored to its pre-promotion snapshot",
    }.get(outcome, "unknown")


def resume_action(interrupted_step: str | None) -> str:
    """What a rerun does first about the step a killed run was in the middle of."""
    if interrupted_step is None:
        return "continue"
    if interrupted_step in RESET_PRODUCTION_BEFORE_REDO:
        return "reset-production-then-redo"
    return "redo"
