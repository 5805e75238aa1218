"""The one reader of JSON that came from outside this process: bounded size and depth, finite numbers, typed errors.

Every file a user, a device or an earlier run hands us (results, manifests, model.json, plans, protocols,
checkpoint state) is read here, so no content can crash a command: a 5,000-deep nesting, ``1e999``, ``NaN``,
a 400-digit integer, a FIFO named ``*.json`` or invalid UTF-8 each become one :class:`JsonInputError` (or
the caller's own :class:`~toolchain.errors.ToolchainError` subclass) naming the source and the problem.

>>> loads(b'{"a": [1, 2.5]}', "x.json")
{'a': [1, 2.5]}
>>> loads(b'[' * 100 + b']' * 100, "deep.json")
Traceback (most recent call last):
...
toolchain.errors.JsonInputError: deep.json: JSON nested deeper than 64 levels ...
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

from toolchain.errors import JsonInputError, ToolchainError

#: No file this tool reads nests deeper than ~8 levels; 64 leaves room and stays far below Python's recursion limit.
MAX_DEPTH = 64
#: Integers must fit a signed 64-bit value (nanoseconds, byte counts, seeds): larger ones overflow numpy/float.
MAX_ABS_INT = (1 << 63) - 1
DEFAULT_MAX_BYTES = 8 << 20

# Strings (skipped whole, possessively: linear time) and brackets; numbers and literals are not matched at all.
_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')


def nesting_depth(data: bytes, stop_at: int | None = None) -> int:
    """Deepest ``[``/``{`` nesting outside strings (stops counting once past ``stop_at``).

    >>> nesting_depth(b'{"a": [[1], "[[["]}')
    3
    """
    depth = deepest = 0
    for m in _TOKENS.finditer(data):
        c = m.group()[:1]
        if c in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_at is not None and deepest > stop_at:
                    return deepest
        elif c in (b"]", b"}"):
            depth -= 1
    return deepest


def _number_problem(obj: Any) -> str | None:
    """The first out-of-range number in a parsed value (iterative: depth is already bounded), or None."""
    stack = [obj]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):  # long sample arrays: type checks and min/max run at C speed
            types = set(map(type, v))
            if types == {int}:
                if v and (max(v) > MAX_ABS_INT or min(v) < -MAX_ABS_INT):
                    bad = next(x for x in v if abs(x) > MAX_ABS_INT)
                    return f"integer {str(bad)[:24]}{'...' * (len(str(bad)) > 24)} is out of range (at most 64-bit)"
            elif types == {float}:
                if not all(map(math.isfinite, v)):
                    return "a number is out of range (not a finite double)"
            elif types == {list}:  # pair lists [[i, j], ...]: one flattened pass instead of a stack entry each
                stack.append(list(itertools.chain.from_iterable(v)))
            else:
                stack.extend(v)
        elif type(v) is int and abs(v) > MAX_ABS_INT:
            return f"integer {str(v)[:24]}{'...' if len(str(v)) > 24 else ''} is out of range (at most 64-bit)"
        elif type(v) is float and not math.isfinite(v):
            return "a number is out of range (not a finite double)"
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (write a finite number or null)")


def loads(data: bytes | str, source: str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = MAX_DEPTH,
          error: type[ToolchainError] = JsonInputError, what: str = "JSON") -> Any:
    """Parse ``data`` (UTF-8) under the limits; any problem raises ``error`` naming ``source``.

    Args:
        data: the bytes (or text) as received.
        source: where they came from, for the message (a path, a zip member, a device path).
        max_bytes: refuse larger inputs before parsing (default 8 MiB).
        max_depth: refuse deeper nesting before parsing (default 64).
        error: the :class:`ToolchainError` subclass to raise (e.g. ``SchemaError`` for results files).
        what: what the file should be, for the message ("results file", "manifest", ...).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise error(f"{source}: {len(raw)} bytes is too large, larger than the {max_bytes}-byte limit of a {what}")
    if not raw.strip():
        raise error(f"{source}: empty file (expected a {what})")
    depth = nesting_depth(raw, stop_at=max_depth)
    if depth > max_depth:
        raise error(f"{source}: JSON nested deeper than {max_depth} levels: not a {what}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        hint = " (truncated?)" if e.pos >= len(text.rstrip()) - 1 else ""
        raise error(f"{source}: not valid JSON{hint}: {e.msg} at line {e.lineno} column {e.colno}") from None
    except (ValueError, RecursionError) as e:  # NaN/Infinity, Python's 4300-digit int limit; depth is bounded above
        raise error(f"{source}: {e}") from None
    problem = _number_problem(obj)
    if problem:
        raise error(f"{source}: {problem}")
    return obj


def read_bytes(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, error: type[ToolchainError] = JsonInputError,
               what: str = "JSON file") -> bytes:
    """A regular file's bytes, at most ``max_bytes`` (a FIFO, device or folder is refused without opening it)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise error(f"{path}: {kind}, expected a {what}")
    if st.st_size > max_bytes:
        raise error(f"{path}: {st.st_size} bytes is too large, larger than the {max_bytes}-byte limit of a {what}")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from None
    if len(data) > max_bytes:
        raise error(f"{path}: too large, larger than the {max_bytes}-byte limit of a {what}")
    return data


def read(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = MAX_DEPTH,
         error: type[ToolchainError] = JsonInputError, what: str = "JSON file") -> Any:
    """Read and parse one JSON file under the limits of :func:`loads`."""
    data = read_bytes(path, max_bytes=max_bytes, error=error, what=what)
    return loads(data, str(path), max_bytes=max_bytes, max_depth=max_depth, error=error, what=what)


def read_object(path: str | Path, **kw: Any) -> dict[str, Any]:
    """:func:`read`, and the top level must be an object."""
    obj = read(path, **kw)
    if not isinstance(obj, dict):
        err = kw.get("error", JsonInputError)
        raise err(f"{path}: expected a JSON object at the top level, got {type(obj).__name__}")
    return obj


def finite(obj: Any) -> tuple[Any, list[str]]:
    """``obj`` with every NaN/Inf float replaced by ``None``, and the paths that were replaced.

    Why: ``json.dumps`` writes ``NaN``/``Infinity`` literals by default, which no JSON parser (this module's
    :func:`loads` included) accepts, so a file the tool wrote could not be read back by the tool.
    """
    where: list[str] = []

    def walk(v: Any, path: str) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            where.append(path or "(top level)")
            return None
        if isinstance(v, dict):
            return {k: walk(x, f"{path}/{k}" if path else str(k)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x, f"{path}/{i}") for i, x in enumerate(v)]
        return v

    stack_safe = nesting_ok(obj)
    return (walk(obj, "") if stack_safe else obj), where


def nesting_ok(obj: Any, limit: int = 200) -> bool:
    """True when ``obj`` nests at most ``limit`` deep (what this tool writes nests under ten)."""
    stack = [(obj, 0)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            return False
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend((x, d + 1) for x in v)
    return True


def dumps(obj: Any, **kw: Any) -> str:
    """``json.dumps`` that never writes a NaN/Inf literal: such numbers become ``null`` (writers that can meet
    them, e.g. a failed parity's cosine, also say why in a reason field)."""
    try:  # the C encoder (no indent) checks finiteness in one fast pass; the walk below is for the rare NaN
        compact = json.dumps(obj, allow_nan=False, **{k: v for k, v in kw.items() if k != "indent"})
    except (ValueError, RecursionError):
        clean, _ = finite(obj)
        return json.dumps(clean, allow_nan=False, **kw)
    return compact if kw.get("indent") is None else json.dumps(obj, allow_nan=False, **kw)
