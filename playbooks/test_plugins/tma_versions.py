"""Jinja tests for the playbooks: `a is same_version(b)` compares versions as tma-ops does.

The playbooks run through ansible-runner on the controller, in the interpreter tma-ops is
installed in, so the comparison is the package's own (one definition, no copy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tma_ops.updates import same_version


def _same_version(found: Any, expected: Any) -> bool:
    return same_version(str(found), str(expected))


class TestModule:
    def tests(self) -> dict[str, Callable[..., bool]]:
        return {"same_version": _same_version}
