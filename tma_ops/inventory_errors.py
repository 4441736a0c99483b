"""Turning validation failures into one line naming the key and what was expected.

Pydantic's own wording ("Input should be ...", "[key]" locations) is never shown: each error kind
is rephrased as "KEY: expected ...; got VALUE", using the model to list the allowed keys, values
and bounds.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Collection, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

_EXPECTED_BY_TYPE = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "too_short": "expected at least one entry",
}
_BOUND_KINDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
_BOUND_WORDS = {"gt": "greater than", "ge": "of at least", "lt": "less than", "le": "of at most"}


def first_error(exc: ValidationError, model: type[BaseModel] | None = None) -> Any:
    """The error to report: an unknown key first (a typo also makes its right key missing)."""
    errors = [_without_union_tags(e, model) for e in exc.errors()]
    unknown = [e for e in errors if e["type"] == "extra_forbidden" or "[key]" in e["loc"]]
    return (unknown or errors)[0]


def _without_union_tags(error: Any, model: type[BaseModel] | None) -> Any:
    """Drop the tag pydantic adds to locations inside a tagged union (database.sqlite.path ->
    database.path) and turn an unknown tag into an error on the tag key itself."""
    loc: list[Any] = []
    current: Any = model
    parts = list(error["loc"])
    while parts:
        part = parts.pop(0)
        loc.append(part)
        current = _step(current, part)
        if _models_of(current) and parts and not _field_of_union(current, parts[0]):
            parts.pop(0)
    error = {**error, "loc": tuple(loc)}
    if error["type"] == "union_tag_invalid":
        ctx = error.get("ctx", {})
        error = {
            **error,
            "type": "literal_error",
            "loc": (*loc, str(ctx.get("discriminator", "")).strip("'")),
            "input": ctx.get("tag"),
            "ctx": {"expected": ctx.get("expected_tags", "")},
        }
    return error


def _step(current: Any, part: Any) -> Any:
    if _is_model(current):
        field = current.model_fields.get(str(part))
        return _unwrap(field.annotation) if field else None
    models = _models_of(current)
    if models:
        field = _field_of_union(current, part)
        return _unwrap(field.annotation) if field else None
    args = get_args(current)
    return _unwrap(args[-1]) if args else None


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    if get_origin(annotation) not in (Union, types.UnionType):
        return []
    return [a for a in get_args(annotation) if _is_model(a)]


def _field_of_union(annotation: Any, name: Any) -> FieldInfo | None:
    for option in _models_of(annotation):
        if str(name) in option.model_fields:
            return option.model_fields[str(name)]
    return None


def error_key(prefix: str, loc: Sequence[Any]) -> str:
    """Dotted key path of an error location, without pydantic's '[key]' marker."""
    return ".".join([prefix, *(str(part) for part in loc if part != "[key]")])


def describe_validation_error(
    key: str, error: Any, model: type[BaseModel] | None = None, hidden: Collection[str] = ()
) -> str:
    """'KEY: expected ...; got ...' for one pydantic error found while validating model."""
    kind, got, loc = error["type"], error.get("input"), tuple(error.get("loc", ()))
    if kind == "extra_forbidden" or (kind == "literal_error" and "[key]" in loc):
        return f"{key}: unknown key; {_expected_keys(model, loc, got, hidden)}"
    if kind == "missing":
        field = _field_at(model, loc)
        what = _phrase(field.annotation, hidden) if field else None
        return f"{key}: this key is required" + (f"; expected {what}" if what else "")
    if kind == "literal_error":
        return f"{key}: expected {_choices(error.get('ctx', {}).get('expected', ''))}; got {got!r}"
    if kind in _BOUND_KINDS:
        return (
            f"{key}: expected {_bounded(_field_at(model, loc), error.get('ctx', {}))}; got {got!r}"
        )
    if kind == "value_error":
        return f"{key}: {error['msg'].removeprefix('Value error, ')}"
    if kind in _EXPECTED_BY_TYPE:
        return f"{key}: {_EXPECTED_BY_TYPE[kind]}; got {got!r}"
    msg = str(error.get("msg", "invalid value"))
    return f"{key}: invalid value ({msg[:1].lower()}{msg[1:]}); got {got!r}"


def _expected_keys(model: Any, loc: tuple[Any, ...], got: Any, hidden: Collection[str]) -> str:
    if loc and loc[-1] == "[key]":
        field = _field_at(model, loc[:-2])
        args = get_args(_unwrap(field.annotation)) if field else ()
        allowed = [str(a) for a in get_args(_unwrap(args[0]))] if args else []
        name = str(loc[-2])
    else:
        parent = _model_at(model, loc[:-1])
        allowed = [f for f in parent.model_fields if f not in hidden] if parent else []
        name = str(loc[-1]) if loc else str(got)
    if not allowed:
        return "check its spelling"
    guess = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    return f"expected one of {', '.join(allowed)}{hint}"


def _choices(expected: str) -> str:
    options = expected.replace(" or ", ", ").split(", ")
    return options[0] if len(options) == 1 else f"one of {', '.join(options)}"


def _bounded(field: FieldInfo | None, ctx: dict[str, Any]) -> str:
    limits = {
        name: getattr(item, name)
        for item in (field.metadata if field else [])
        for name in _BOUND_WORDS
        if getattr(item, name, None) is not None
    } or {name: value for name, value in ctx.items() if name in _BOUND_WORDS}
    noun = "an integer" if field is None or _unwrap(field.annotation) is int else "a number"
    if "ge" in limits and "le" in limits:
        return f"{noun} from {limits['ge']} to {limits['le']}"
    return f"{noun} " + " and ".join(f"{_BOUND_WORDS[k]} {v}" for k, v in limits.items())


def _phrase(annotation: Any, hidden: Collection[str]) -> str | None:
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        return _choices(", ".join(repr(a) for a in get_args(annotation)))
    if _is_model(annotation):
        keys = [f for f in annotation.model_fields if f not in hidden]
        return f"a mapping with keys {', '.join(keys)}"
    names = {str: "a string", int: "an integer", list: "a list", dict: "a mapping"}
    return names.get(origin or annotation)


def _field_at(model: Any, loc: Sequence[Any]) -> FieldInfo | None:
    if not loc:
        return None
    parent: Any = model
    for part in loc[:-1]:
        if parent is None or part == "[key]":
            return None
        parent = _step(parent, part)
    if _is_model(parent):
        return parent.model_fields.get(str(loc[-1]))
    return _field_of_union(parent, loc[-1])


def _model_at(model: Any, loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model class validating the value at loc under model, or None."""
    current = model
    for part in loc:
        if current is None or part == "[key]":
            return None
        current = _step(current, part)
    return current if _is_model(current) else None


def _unwrap(annotation: Any) -> Any:
    """The type under Annotated[...] and X | None."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def line_of(file: Path, dotted_key: str) -> str:
    """':LINE' of the deepest existing node on the key's path in file, or '' when unknown."""
    try:
        lines = _key_lines(str(file), file.stat().st_mtime_ns)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
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
        root = yaml.compose(handle, Loader=yaml.SafeLoader)
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
