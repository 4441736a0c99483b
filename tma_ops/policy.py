"""Pure decisions of the cycle: which steps apply, what a run's outcome is, how to resume."""

from __future__ import annotations

from typing import Any

from tma_ops.errors import EXIT_OK, EXIT_ROLLED_BACK

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


def step_applies(step: str, outputs: Outputs) -> bool:
    """Whether a step runs, given what earlier steps of the run produced."""
    if step in ("apply_staging", "smoke_staging"):
        return has_updates(outputs)
    if step == "reset_staging":
        return has_updates(outputs) and "smoke_staging" in outputs and not staging_passed(outputs)
    if step in ("pre_promotion_snapshot", "promote", "smoke_production"):
        return has_updates(outputs) and staging_passed(outputs)
    if step == "rollback":
        return (
            has_updates(outputs)
            and staging_passed(outputs)
            and "smoke_production" in outputs
            and not production_passed(outputs)
        )
    return True


def run_outcome(outputs: Outputs) -> str:
    """up-to-date | promoted | staging-failed | rolled-back, from a run's completed steps."""
    if not has_updates(outputs):
        return "up-to-date"
    if not staging_passed(outputs):
        return "staging-failed"
    if not production_passed(outputs):
        return "rolled-back"
    return "promoted"


def outcome_exit_code(outcome: str) -> int:
    return EXIT_ROLLED_BACK if outcome in ("staging-failed", "rolled-back") else EXIT_OK


def production_state(outcome: str) -> str:
    return {
        "up-to-date": "unchanged",
        "promoted": "updated",
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
