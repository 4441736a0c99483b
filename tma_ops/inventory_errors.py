"""Turning validation failures into one line naming the key and what was expected."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

_EXPECTED_BY_TYPE = {
    "missing": "this key is required",
    "extra_forbidden": "unknown key",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "bool_type": "expected true or false",
    "too_short": "expected at least one entry",
}


def describe_validation_error(key: str, error: Any) -> str:
    kind = error["type"]
    got = error.get("input")
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{key}: expected one of {expected.replace(' or ', ', ')}; got {got!r}"
    if kind in ("greater_than", "greater_than_equal", "less_than_equal"):
        return f"{key}: {error['msg'].lower()}; got {got!r}"
    if kind == "value_error":
        return f"{key}: {error['msg'].removeprefix('Value error, ')}"
    expected = _EXPECTED_BY_TYPE.get(kind, error["msg"])
    if kind in ("missing", "extra_forbidden"):
        return f"{key}: {expected}"
    return f"{key}: {expected}; got {got!r}"


def line_of(file: Path, dotted_key: str) -> str:
    """':LINE' of the deepest existing node on the key's path in file, or '' when unknown."""
    try:
        lines = _key_lines(str(file), file.stat().st_mtime_ns)
    except (OSError, yaml.YAMLError):
        return ""
    parts = dotted_key.split(".")
    while parts:
        line = lines.get(".".join(parts))
        if line is not None:
            return f":{line}"
        parts.pop()
    return ""


@lru_cache(maxsize=16)
def _key_lines(file: str, _mtime: int) -> dict[str, int]:
    with open(file, encoding="utf-8") as handle:
        root = yaml.compose(handle)
    found: dict[str, int] = {}
    _walk(root, "", found)
    return found


def _walk(node: yaml.Node | None, prefix: str, found: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            found[key] = key_node.start_mark.line + 1
            _walk(value_node, key, found)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = f"{prefix}.{index}"
            found[key] = item.start_mark.line + 1
            _walk(item, key, found)
