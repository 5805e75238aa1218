"""The shape of ``model.json``: every field later code trusts, checked once, when a bundle is read.

A bundle's description flows into artifact names (file paths), manifests, reports and the apps, so a
field of the wrong type (``"input": {"size": "224"}``), a name with a path in it or a feature dimension
that the weights do not produce must stop at :func:`validate_meta` with one :class:`BundleError` listing
every problem — not surface later as a ``KeyError`` or, worse, as a wrong manifest.
"""

from __future__ import annotations

from typing import Any

from toolchain.bounds import INPUT_SIZE_PX  # one home of the input-size range
from toolchain.errors import BundleError

#: Names become artifact and folder names (Swift-identifier safe): no separators, no leading dot.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
#: The weights file sits in the bundle folder itself.
FILE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
MAX_INPUT_SIZE = INPUT_SIZE_PX[1]
MAX_FEATURE_DIM = 1 << 20

_INT = {"type": "integer"}
_POS = {"type": "integer", "minimum": 1}

META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["format", "format_version", "name", "architecture", "feature_dim", "input", "weights"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "card": {"type": ["string", "null"]},
        "description": {"type": ["string", "null"]},
        "architecture": {
            "type": "object",
            "required": ["source", "name"],
            "properties": {
                "source": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1},
                "layer_shapes": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["in", "out"],
                    "properties": {"in": {"type": "integer", "minimum": 1, "maximum": 1 << 16},
                                   "out": {"type": "integer", "minimum": 1, "maximum": 1 << 16}}}},
                "removed_blocks": {"type": "array", "items": {"type": "string"}},
                "num_classes": {"anyOf": [_POS, {"type": "null"}]},
                "code": {"type": "object", "required": ["file", "sha256"],
                         "properties": {"file": {"type": "string", "pattern": r"^code/[A-Za-z0-9_][A-Za-z0-9._-]*\.py$"},
                                        "sha256": {"type": "string", "pattern": r"^[0-9a-f]{64}$"}}},
                "output": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer", "minimum": 0},
                                     {"type": "null"}]},
            },
        },
        "feature_dim": {"type": "integer", "minimum": 1, "maximum": MAX_FEATURE_DIM},
        "input": {
            "type": "object",
            "required": ["size", "mean", "std"],
            "properties": {
                "size": {"type": "array", "minItems": 2, "maxItems": 2,
                         "items": {"type": "integer", "minimum": INPUT_SIZE_PX[0], "maximum": MAX_INPUT_SIZE}},
                "channels": {"enum": [1, 3]},
                "color": {"enum": ["rgb", "bgr", "gray"]},
                "scale": {"type": "number", "exclusiveMinimum": 0, "maximum": 65535},
                "rgb_to_gray": {"type": "boolean"},
                "mean": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "number"}},
                "std": {"type": "array", "minItems": 1, "maxItems": 3,
                        "items": {"type": "number", "exclusiveMinimum": 0}},
            },
        },
        "weights": {
            "type": "object",
            "required": ["file", "sha256"],
            "properties": {
                "file": {"type": "string", "pattern": FILE_PATTERN},
                "sha256": {"type": "string", "pattern": r"^[0-9a-f]{64}$"},
                "size_bytes": {"type": "integer", "minimum": 0},
                "num_tensors": _INT, "num_parameters": _INT, "deployed_parameters": _INT, "deployed_nonzero": _INT,
            },
        },
        "provenance": {"type": "object"},
    },
}


def meta_problems(meta: Any) -> list[str]:
    """Every way ``meta`` breaks :data:`META_SCHEMA`, as ``path: message`` lines (empty when it is fine)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    # 224.0 is not a pixel count: integers must be written as integers.
    checker = base.TYPE_CHECKER.redefine("integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool))
    validator = jsonschema.validators.extend(base, type_checker=checker)(META_SCHEMA)
    out = []
    for err in sorted(validator.iter_errors(meta), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        out.append(f"{where}: {err.message[:200]}")
    if not out:  # mean/std/color must agree with the channel count (3 when a bundle predates channels)
        inp = meta["input"]
        c = inp.get("channels", 3)
        for key in ("mean", "std"):
            if len(inp[key]) != c:
                out.append(f"input/{key}: {len(inp[key])} values for {c} channel(s)")
        color = inp.get("color")
        if color is not None and (color == "gray") != (c == 1):
            out.append(f"input/color: {color!r} does not fit {c} channel(s)")
    return out


def validate_meta(meta: Any, source: str) -> None:
    """Raise :class:`BundleError` naming ``source`` and every problem of a bundle description."""
    problems = meta_problems(meta)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... {len(problems) - 8} more" if len(problems) > 8 else "")
        raise BundleError(f"{source} is not a valid bundle description ({len(problems)} problem"
                          f"{'s' * (len(problems) > 1)}): {shown}; re-create the bundle or fix these fields")
