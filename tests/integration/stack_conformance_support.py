"""What each stack driver's test support gives the shared driver conformance suite.

A support module of a stack (tests/integration/<kind>_stack_support.py) provides a fixture that
builds a real site of that stack and returns a DriverCase; test_stack_conformance.py runs the same
tests against every case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tma_ops.ansible import PlaybookContext
from tma_ops.model import Environment
from tma_ops.stacks import StackDriver


@dataclass
class DriverCase:
    kind: str
    driver: StackDriver
    env: Environment
    # The component the case updates and the version it must be offered and reach.
    component: str
    to_version: str
    # What the running site shows about that component (e.g. a marker in a page): called after
    # apply, it must return a value that differs from the one it returned before.
    served: Callable[[], str]
    # Whether the case's update brings a database schema change (pending migrations after it).
    migrates: bool = False


CONTEXT = PlaybookContext(journal=None, run_id="conformance", site="conformance", step="apply")
