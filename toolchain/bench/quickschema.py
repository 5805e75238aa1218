"""A yes/no JSON Schema check for the keywords this tool's own schemas use, ~10x faster than ``jsonschema``.

Why: ``collect dir`` validates every results file, and ``jsonschema`` spends ~1 ms on one (it builds a validator
object per keyword it descends into), a third of the time of collecting 10,000 files. Almost every file is
valid, so :func:`is_valid` answers first and ``jsonschema`` runs only on a "no", to give its messages.

It must never say "yes" where ``jsonschema`` says "no": each keyword follows the JSON Schema 2020-12 text as
``jsonschema`` implements it (``integer`` as this tool redefines it: a Python ``int``, not ``bool`` or a float
like 6500000.0; ``enum``/``const`` telling ``true`` from ``1``). A schema holding any other keyword makes
:func:`supports` false and the caller uses ``jsonschema`` alone. ``tests/bench/test_quickschema.py`` compares
the two on every fixture and on thousands of mutated results and plans.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

#: Keywords that only name or annotate (no effect on validity).
_ANNOTATIONS = frozenset({"$schema", "$id", "$anchor", "$comment", "$defs", "title", "description", "examples",
                          "default"})
_CHECKED = frozenset({"type", "properties", "required", "additionalProperties", "items", "minimum", "maximum",
                      "exclusiveMinimum", "exclusiveMaximum", "enum", "const", "pattern", "minLength", "maxLength",
                      "minItems", "maxItems", "anyOf", "if", "then", "propertyNames"})

_TYPES = {
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
    "string": lambda v: type(v) is str,
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}


def supports(schema: Any) -> bool:
    """True when every keyword anywhere in ``schema`` is one :func:`is_valid` checks or ignores safely."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict):
        return False
    for key, sub in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key not in _CHECKED:
            return False
        if key == "properties" and not all(supports(s) for s in sub.values()):
            return False
        if key == "anyOf" and not all(supports(s) for s in sub):
            return False
        if key in ("items", "additionalProperties", "if", "then", "propertyNames") and not supports(sub):
            return False
        if key == "type" and not all(t in _TYPES for t in ([sub] if isinstance(sub, str) else sub)):
            return False
    return True


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``, containers compared item by item."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return False
    return a == b


@lru_cache(maxsize=256)
def _pattern(p: str) -> re.Pattern[str]:
    return re.compile(p)


def is_valid(obj: Any, schema: Any) -> bool:
    """Whether ``obj`` satisfies ``schema`` (one that :func:`supports` accepts)."""
    if schema is True:
        return True
    if schema is False:
        return False
    t = schema.get("type")
    if t is not None and not (_TYPES[t](obj) if isinstance(t, str) else any(_TYPES[x](obj) for x in t)):
        return False
    if "enum" in schema and not any(_equal(obj, e) for e in schema["enum"]):
        return False
    if "const" in schema and not _equal(obj, schema["const"]):
        return False
    if type(obj) in (int, float):
        if "minimum" in schema and obj < schema["minimum"]:
            return False
        if "maximum" in schema and obj > schema["maximum"]:
            return False
        if "exclusiveMinimum" in schema and obj <= schema["exclusiveMinimum"]:
            return False
        if "exclusiveMaximum" in schema and obj >= schema["exclusiveMaximum"]:
            return False
    elif type(obj) is str:
        if "minLength" in schema and len(obj) < schema["minLength"]:
            return False
        if "maxLength" in schema and len(obj) > schema["maxLength"]:
            return False
        if "pattern" in schema and not _pattern(schema["pattern"]).search(obj):
            return False
    elif type(obj) is list:
        if "maxItems" in schema and len(obj) > schema["maxItems"]:
            return False
        if "minItems" in schema and len(obj) < schema["minItems"]:
            return False
        items = schema.get("items")
        if items is not None and not all(is_valid(x, items) for x in obj):
            return False
    elif type(obj) is dict:
        if any(k not in obj for k in schema.get("required", ())):
            return False
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in obj.items():
            if k in props:
                if not is_valid(v, props[k]):
                    return False
            elif extra is not None and not is_valid(v, extra):
                return False
        names = schema.get("propertyNames")
        if names is not None and not all(is_valid(k, names) for k in obj):
            return False
    if "anyOf" in schema and not any(is_valid(obj, s) for s in schema["anyOf"]):
        return False
    if "if" in schema and "then" in schema and is_valid(obj, schema["if"]) and not is_valid(obj, schema["then"]):
        return False
    return True
