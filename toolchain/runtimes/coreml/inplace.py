"""Where the ML Program executor may skip work: rounding that changes nothing, copies no one needs.

* an fp16 program rounds each op's output to float16; ops that only move or select float16 values
  (:data:`VALUE_PRESERVING`) give float16 values already, so their rounding is skipped;
* ``relu`` / ``clip`` / ``add`` overwrite their input when it is a temporary (:data:`IN_PLACE`: the single
  reader of a value in memory of its own, :data:`FRESH`), so ResNet-style chains allocate no new arrays.

Both are bit-identical to the plain execution (tests compare them).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


#: ops whose outputs are values of their inputs (or of their constant bounds): on float16 values they give
#: float16 values, so rounding their outputs again would change nothing (it is skipped: it cost time per op)
VALUE_PRESERVING = frozenset({"relu", "relu6", "clip", "max_pool", "reshape", "transpose", "concat", "split",
                              "slice_by_index", "slice_by_size", "squeeze", "expand_dims", "identity", "maximum",
                              "minimum", "gather", "select", "upsample_nearest_neighbor"})


def is_fp16_exact(v: Any) -> bool:
    v = np.asarray(v)
    if v.dtype.kind != "f":
        return True
    with np.errstate(over="ignore"):
        return bool(np.array_equal(v.astype(np.float16).astype(v.dtype), v, equal_nan=True))


def _f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _writable_f32(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.writeable


def _relu_in_place(x: Any) -> np.ndarray:
    return np.maximum(x, np.float32(0), out=x) if _writable_f32(x) else np.maximum(_f32(x), 0)


def _clip_in_place(x: Any, alpha: Any = 0.0, beta: Any = 6.0) -> np.ndarray:
    return np.clip(x, float(alpha), float(beta), out=x) if _writable_f32(x) else np.clip(_f32(x), float(alpha),
                                                                                        float(beta))


def _add_in_place(x: Any, y: Any) -> np.ndarray:
    y = _f32(y)
    if _writable_f32(x) and np.broadcast_shapes(x.shape, y.shape) == x.shape:
        return np.add(x, y, out=x)
    return _f32(x) + y


#: ops that may overwrite their input ``x`` when it is a temporary (the single reader of a fresh value): ResNet's
#: conv -> relu and residual add -> relu chains then allocate no new arrays (fresh large arrays cost page faults)
IN_PLACE: dict[str, Callable[..., np.ndarray]] = {"relu": _relu_in_place, "relu6": _clip_in_place,
                                                  "clip": _clip_in_place, "add": _add_in_place}
#: ops whose outputs never share memory with another value (their own, or an in-place op's single-use input)
FRESH = frozenset({"conv", "add", "sub", "mul", "real_div", "batch_norm", "linear", "matmul", "avg_pool",
                   "max_pool", "cast", "relu", "relu6", "clip", "sigmoid", "silu"})


def same(v: Any) -> Any:
    return v


def preserves_fp16(refs: dict[str, Any], static: dict[str, Any], dtypes: dict[str, Any]) -> bool:
    """Every computed float input is a float16 value and every constant float input is float16-exact."""
    names = [r for r in refs.values() if isinstance(r, str)] + [x for r in refs.values() if not isinstance(r, str)
                                                                 for is_ref, x in r if is_ref]
    if any(np.dtype(dtypes.get(n) or np.float32).kind == "f" and dtypes.get(n) is not np.float16 for n in names):
        return False
    consts = [v for v in static.values() if not isinstance(v, (str, list))] + [
        x for v in static.values() if isinstance(v, list) for x in v]
    return all(is_fp16_exact(c) for c in consts)
