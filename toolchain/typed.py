"""Dataclasses as validated data: build one from parsed JSON/TOML listing *every* problem, and its JSON Schema.

The manifest (``artifact/manifest.py``) and the pipeline's stage configs (``pipeline/config.py``) are dataclasses;
this module turns a parsed dict into one, checking types, unknown keys and missing keys all at once, so a bad
file gets one error naming each problem instead of the first one (or a traceback hours later). It also derives
a JSON Schema (draft 2020-12) from the same type hints, so the committed schema cannot drift from the code.

Supported field types: ``str``, ``int``, ``float`` (an int is accepted), ``bool``, ``None``, ``X | None``,
``list[X]``, ``dict[str, X]``, ``Any``, ``Literal[...]`` and nested dataclasses. A field's ``metadata`` may carry
``minimum`` / ``exclusive_minimum`` / ``maximum`` (numbers) and ``doc`` (the schema's description).

>>> from dataclasses import dataclass, field
>>> @dataclass
... class Point:
...     x: int
...     y: int = field(default=0, metadata={"minimum": 0})
>>> build(Point, {"x": 1, "y": 2})
Point(x=1, y=2)
>>> for p in problems(Point, {"x": "one", "y": -1, "z": 3}): print(p)
x: expected an integer, got a string ('one')
y: -1 is below the minimum 0
unknown key z (known: x, y)
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, TypeVar, Union

from toolchain.errors import ToolchainError

T = TypeVar("T")

_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null",
          list: "a list", dict: "a table/object"}


def _describe(v: Any) -> str:
    kind = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "a list",
            dict: "a table/object", type(None): "null"}.get(type(v), type(v).__name__)
    text = repr(v)
    return f"{kind} ({text[:40]}{'...' if len(text) > 40 else ''})" if not isinstance(v, (list, dict)) else kind


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _check(tp: Any, v: Any, path: str, out: list[str]) -> Any:
    """Check ``v`` against ``tp``; append problems to ``out``; return the value converted (nested dataclasses built)."""
    if tp is Any:
        return v
    if _is_union(tp):
        args = typing.get_args(tp)
        if v is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        for a in rest:  # the first member it fits without problems
            trial: list[str] = []
            got = _check(a, v, path, trial)
            if not trial:
                return got
        if len(rest) == 1:
            return _check(rest[0], v, path, out)
        out.append(f"{path}: expected {' or '.join(_expected(a) for a in args)}, got {_describe(v)}")
        return v
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if v not in choices:
            out.append(f"{path}: {v!r} is not one of {', '.join(map(repr, choices))}")
        return v
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if not isinstance(v, list):
            out.append(f"{path}: expected a list, got {_describe(v)}")
            return v
        return [_check(item, x, f"{path}[{i}]", out) for i, x in enumerate(v)]
    if origin is tuple:  # tuple[X, ...]: a list or tuple in the data, a tuple built
        item = (typing.get_args(tp) or (Any,))[0]
        if not isinstance(v, (list, tuple)):
            out.append(f"{path}: expected a list, got {_describe(v)}")
            return v
        return tuple(_check(item, x, f"{path}[{i}]", out) for i, x in enumerate(v))
    if origin is dict:
        _, item = typing.get_args(tp) or (str, Any)
        if not isinstance(v, dict):
            out.append(f"{path}: expected a table/object, got {_describe(v)}")
            return v
        return {str(k): _check(item, x, f"{path}.{k}", out) for k, x in v.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(v, dict):
            out.append(f"{path}: expected a table/object, got {_describe(v)}")
            return v
        return _build(tp, v, f"{path}.", out)
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            out.append(f"{path}: expected a number, got {_describe(v)}")
            return v
        if not math.isfinite(float(v)):  # NaN passes every comparison check; Inf passes every minimum
            out.append(f"{path}: expected a finite number, got {v}")
            return v
        return float(v)
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            out.append(f"{path}: expected an integer, got {_describe(v)}")
        return v
    if tp is bool:
        if not isinstance(v, bool):
            out.append(f"{path}: expected true or false, got {_describe(v)}")
        return v
    if tp is str:
        if not isinstance(v, str):
            out.append(f"{path}: expected a string, got {_describe(v)}")
        return v
    if tp is type(None):
        if v is not None:
            out.append(f"{path}: expected null, got {_describe(v)}")
        return v
    raise TypeError(f"typed: unsupported field type {tp!r} at {path}")  # a programming error, not user input


def _expected(tp: Any) -> str:
    if typing.get_origin(tp) is list:
        return "a list"
    if dataclasses.is_dataclass(tp) or typing.get_origin(tp) is dict:
        return "a table/object"
    return _NAMES.get(tp, str(tp))


def _bounds(f: dataclasses.Field, v: Any, path: str, out: list[str]) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return
    lo, xlo = f.metadata.get("minimum"), f.metadata.get("exclusive_minimum")
    hi = f.metadata.get("maximum")
    if lo is not None and v < lo:
        out.append(f"{path}: {v} is below the minimum {lo}")
    if xlo is not None and not v > xlo:
        out.append(f"{path}: {v} must be greater than {xlo}")
    if hi is not None and not v <= hi:
        out.append(f"{path}: {v} is above the maximum {hi}")


def _build(cls: type, data: dict[str, Any], prefix: str, out: list[str]) -> Any:
    hints = _hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    kwargs: dict[str, Any] = {}
    for f in fields:
        path = f"{prefix}{f.name}"
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                out.append(f"{path}: missing (required)")
            continue
        before = len(out)
        kwargs[f.name] = _check(hints[f.name], data[f.name], path, out)
        if len(out) == before:
            _bounds(f, kwargs[f.name], path, out)
    known = {f.name for f in fields}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        where = f" in {prefix[:-1]}" if prefix else ""
        out.append(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}{where} "
                   f"(known: {', '.join(sorted(known))})")
    if any(f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
           for f in fields):
        return data  # cannot construct; the problems say why
    try:
        return cls(**kwargs)
    except ToolchainError as e:  # the class's own __post_init__ rule
        out.append(f"{prefix[:-1] or cls.__name__}: {e}")
        return data


def problems(cls: type, data: Any, prefix: str = "") -> list[str]:
    """Every problem of ``data`` as a ``cls`` (empty when it builds)."""
    out: list[str] = []
    if not isinstance(data, dict):
        return [f"{prefix or cls.__name__}: expected a table/object, got {_describe(data)}"]
    _build(cls, data, f"{prefix}." if prefix else "", out)
    return out


def build(cls: type[T], data: Any, *, error: type[ToolchainError] = ToolchainError, source: str = "",
          prefix: str = "") -> T:
    """``cls`` from parsed data, or one ``error`` listing every problem (``source`` names the file)."""
    out: list[str] = []
    if not isinstance(data, dict):
        raise error(f"{source or cls.__name__}: expected a table/object, got {_describe(data)}")
    obj = _build(cls, data, f"{prefix}." if prefix else "", out)
    if out:
        raise error(problem_text(source or cls.__name__, out))
    return obj


def problem_text(source: str, found: list[str]) -> str:
    """``source has 2 problems:\\n  - a\\n  - b`` (one line when there is one)."""
    if len(found) == 1:
        return f"{source}: {found[0]}"
    return f"{source} has {len(found)} problems:\n" + "\n".join(f"  - {p}" for p in found)


def to_data(obj: Any) -> Any:
    """A dataclass (recursively) as plain dicts/lists, fields in declaration order."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [to_data(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_data(v) for k, v in obj.items()}
    return obj


def json_schema(tp: Any, defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON Schema of a type; dataclasses become closed objects under ``$defs`` (pass ``defs`` to collect them)."""
    defs = {} if defs is None else defs
    if tp is Any:
        return {}
    if _is_union(tp):
        return {"anyOf": [json_schema(a, defs) for a in typing.get_args(tp)]}
    origin = typing.get_origin(tp)
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return {"type": "array", "items": json_schema(item, defs)}
    if origin is tuple:
        return {"type": "array", "items": json_schema((typing.get_args(tp) or (Any,))[0], defs)}
    if origin is dict:
        _, item = typing.get_args(tp) or (str, Any)
        return {"type": "object", "additionalProperties": json_schema(item, defs)}
    if dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            hints = _hints(tp)
            props: dict[str, Any] = {}
            required = []
            for f in dataclasses.fields(tp):
                s = json_schema(hints[f.name], defs)
                for key, meta in (("minimum", "minimum"), ("exclusiveMinimum", "exclusive_minimum"),
                                  ("maximum", "maximum")):
                    if f.metadata.get(meta) is not None:
                        s = {**s, key: f.metadata[meta]}
                if f.metadata.get("doc"):
                    s = {"description": f.metadata["doc"], **s}
                props[f.name] = s
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                    required.append(f.name)
            doc = (tp.__doc__ or "").strip().splitlines()[0] if tp.__doc__ else ""
            defs[name] = {"type": "object", **({"description": doc} if doc else {}), "properties": props,
                          "required": required, "additionalProperties": False}
        return {"$ref": f"#/$defs/{name}"}
    simple = {str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"},
              bool: {"type": "boolean"}, type(None): {"type": "null"}}
    if tp in simple:
        return simple[tp]
    raise TypeError(f"typed: unsupported field type {tp!r}")
