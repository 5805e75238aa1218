"""ML Programs (``.mlpackage``, their MIL read back from disk) run op by op on the numpy kernels.

fp16 programs are emulated: every fp16 tensor is rounded to float16 after each op, as the device stores it.
Compressed weights (``constexpr_*``: sparse, palettized, int8) are expanded here. An op with no entry in
``MIL_OPS`` raises :class:`~toolchain.runtimes.coreml.kernels.UnknownOpError`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import numpy as np

from toolchain.registry import Registry
from toolchain.runtimes.coreml import constexpr, inplace, milproto
from toolchain.runtimes.coreml.kernels import (Conv2d, UnknownOpError, batch_norm, concat, leaky_relu, linear,
                                               pool2d, prelu, round_to_fp16, same_padding, upsample_nearest)
from toolchain.runtimes.coreml.plan import Plan, Step

MilOp = Callable[..., np.ndarray]
MIL_OPS: Registry[MilOp] = Registry("MIL op")
_DTYPES = {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64, "int32": np.int32, "int64": np.int64,
           "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "bool": np.bool_}


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


MIL_OPS.add("cast", lambda x, dtype: np.asarray(x).astype(_DTYPES[str(dtype)]))
MIL_OPS.add("identity", lambda x: x)
MIL_OPS.add("relu", lambda x: np.maximum(_f32(x), 0))
MIL_OPS.add("relu6", lambda x: np.clip(_f32(x), 0, 6))
MIL_OPS.add("clip", lambda x, alpha, beta: np.clip(_f32(x), float(alpha), float(beta)))
MIL_OPS.add("sigmoid", lambda x: 1 / (1 + np.exp(-_f32(x))))
MIL_OPS.add("sigmoid_hard", lambda x, alpha=0.2, beta=0.5: np.clip(float(alpha) * _f32(x) + float(beta), 0, 1))
MIL_OPS.add("thresholded_relu", lambda x, alpha=1.0: np.where(_f32(x) > float(alpha), _f32(x), 0))
MIL_OPS.add("silu", lambda x: _f32(x) / (1 + np.exp(-_f32(x))))
MIL_OPS.add("add", lambda x, y: _f32(x) + _f32(y))
MIL_OPS.add("sub", lambda x, y: _f32(x) - _f32(y))
MIL_OPS.add("mul", lambda x, y: _f32(x) * _f32(y))
MIL_OPS.add("real_div", lambda x, y: _f32(x) / _f32(y))
MIL_OPS.add("equal", lambda x, y: np.equal(x, y))
MIL_OPS.add("not_equal", lambda x, y: np.not_equal(x, y))
MIL_OPS.add("select", lambda cond, a, b: np.where(np.asarray(cond, bool), a, b))  # Swin: masked_fill
MIL_OPS.add("maximum", lambda x, y: np.maximum(_f32(x), _f32(y)))
MIL_OPS.add("minimum", lambda x, y: np.minimum(_f32(x), _f32(y)))
MIL_OPS.add("reshape", lambda x, shape: np.reshape(x, tuple(int(s) for s in np.asarray(shape))))
MIL_OPS.add("squeeze", lambda x, axes=None: np.squeeze(x, axis=None if axes is None else tuple(int(a) for a in axes)))
MIL_OPS.add("linear", lambda x, weight, bias=None: linear(_f32(x), _f32(weight), None if bias is None else _f32(bias)))
MIL_OPS.add("concat", lambda values, axis, interleave=False: concat(values, int(axis), bool(interleave)))
MIL_OPS.add("batch_norm", lambda x, mean, variance, gamma=None, beta=None, epsilon=1e-5: batch_norm(
    _f32(x), _f32(mean), _f32(variance), None if gamma is None else _f32(gamma), None if beta is None else _f32(beta),
    float(epsilon)))


# comparisons and logic give bool tensors (``select`` and ``cast`` read them)
for _name, _fn in {"greater": np.greater, "greater_equal": np.greater_equal, "less": np.less,
                   "less_equal": np.less_equal, "logical_and": np.logical_and, "logical_or": np.logical_or,
                   "logical_xor": np.logical_xor}.items():
    MIL_OPS.add(_name, lambda x, y, _fn=_fn: _fn(np.asarray(x), np.asarray(y)))
MIL_OPS.add("logical_not", lambda x: np.logical_not(np.asarray(x)))
MIL_OPS.add("leaky_relu", lambda x, alpha=0.01: leaky_relu(_f32(x), float(alpha)))
MIL_OPS.add("prelu", lambda x, alpha: prelu(_f32(x), _f32(alpha)))
MIL_OPS.add("elu", lambda x, alpha=1.0: np.where(_f32(x) > 0, _f32(x), float(alpha) * (np.exp(_f32(x)) - 1)))
MIL_OPS.add("tanh", lambda x: np.tanh(_f32(x)))
MIL_OPS.add("abs", lambda x: np.abs(x))
MIL_OPS.add("exp", lambda x: np.exp(_f32(x)))
MIL_OPS.add("sqrt", lambda x: np.sqrt(_f32(x)))
MIL_OPS.add("rsqrt", lambda x, epsilon=1e-12: 1 / np.sqrt(_f32(x) + float(epsilon)))
MIL_OPS.add("pow", lambda x, y: np.power(_f32(x), _f32(y)))
MIL_OPS.add("upsample_nearest_neighbor", lambda x, scale_factor_height=1, scale_factor_width=1: upsample_nearest(
    np.asarray(x), float(scale_factor_height), float(scale_factor_width)))


def _axes(axes: Any) -> tuple[int, ...] | None:
    return None if axes is None else tuple(int(a) for a in np.atleast_1d(axes))


MIL_OPS.add("reduce_mean", lambda x, axes=None, keep_dims=False: _f32(x).mean(axis=_axes(axes), keepdims=bool(keep_dims)))
MIL_OPS.add("reduce_sum", lambda x, axes=None, keep_dims=False: _f32(x).sum(axis=_axes(axes), keepdims=bool(keep_dims)))
MIL_OPS.add("reduce_max", lambda x, axes=None, keep_dims=False: _f32(x).max(axis=_axes(axes), keepdims=bool(keep_dims)))


@MIL_OPS.register("split")
def _mil_split(x: np.ndarray, axis: int, num_splits: Any = None, split_sizes: Any = None) -> list[np.ndarray]:
    x = np.asarray(x)
    if split_sizes is not None:
        return np.split(x, np.cumsum([int(v) for v in np.atleast_1d(split_sizes)])[:-1], axis=int(axis))
    return np.split(x, int(num_splits), axis=int(axis))


@MIL_OPS.register("slice_by_index")
def _mil_slice_by_index(x: np.ndarray, begin: Any, end: Any, stride: Any = None, begin_mask: Any = None,
                        end_mask: Any = None, squeeze_mask: Any = None) -> np.ndarray:
    """MIL ``slice_by_index`` (iOS15 defs): per axis ``x[begin:end:stride]``; a set ``begin_mask`` /
    ``end_mask`` ignores that bound (the whole extent in the stride's direction); a set ``squeeze_mask``
    takes the single element at ``begin`` and drops the axis. Negative bounds count from the end.

    >>> _mil_slice_by_index(np.arange(12).reshape(3, 4), [0, 1], [0, 3], [1, 1], [True, False], [True, False],
    ...                     [False, False]).tolist()
    [[1, 2], [5, 6], [9, 10]]
    >>> _mil_slice_by_index(np.arange(12).reshape(3, 4), [-1, 0], [0, 0], None, None, [False, True],
    ...                     [True, False]).tolist()
    [8, 9, 10, 11]
    """
    x = np.asarray(x)
    n = x.ndim
    flags = [np.zeros(n, bool) if m is None else np.asarray(m, bool) for m in (begin_mask, end_mask, squeeze_mask)]
    stride = np.ones(n, int) if stride is None else np.asarray(stride, int)
    slices: list[slice | int] = []
    for i, (b, e) in enumerate(zip(np.asarray(begin, int), np.asarray(end, int))):
        if flags[2][i]:
            slices.append(int(b))
            continue
        slices.append(slice(None if flags[0][i] else int(b), None if flags[1][i] else int(e), int(stride[i])))
    return x[tuple(slices)]


MIL_OPS.add("expand_dims", lambda x, axes: np.expand_dims(np.asarray(x), tuple(int(a) for a in np.atleast_1d(axes))))


@MIL_OPS.register("gather")
def _mil_gather(x: np.ndarray, indices: np.ndarray, axis: int = 0, batch_dims: int = 0,
                validate_indices: bool = False) -> np.ndarray:
    """MIL ``gather`` along ``axis`` (Swin's shifted windows are rolls, lowered to gathers); negative indices
    count from the end. ``batch_dims`` other than 0 is a mode this executor does not implement."""
    if int(batch_dims) != 0:
        raise UnknownOpError(f"MIL op 'gather' with batch_dims={int(batch_dims)}")
    return np.take(np.asarray(x), np.asarray(indices).astype(np.int64), axis=int(axis))


@MIL_OPS.register("scatter")
def _mil_scatter(data: np.ndarray, indices: np.ndarray, updates: np.ndarray, axis: int = 0, mode: str = "update",
                 validate_indices: bool = False) -> np.ndarray:
    """MIL ``scatter`` (iOS15 defs): ``updates``' slice ``i`` along ``axis`` goes to ``data``'s slice
    ``indices[i]`` (``update``) or is combined with it (``add``, ``sub``, ``mul``, ``div``, ``max``, ``min``).
    Swin's window attention mask is built with it.

    >>> _mil_scatter(np.array([[1, 2, 3], [4, 5, 6]]), np.array([1, 0]), np.array([[5, 6, 7], [8, 9, 10]]),
    ...              0, "add").tolist()
    [[9, 11, 13], [9, 11, 13]]
    """
    ops = {"update": lambda a, b: b, "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
           "max": np.maximum, "min": np.minimum}
    if str(mode) not in ops:
        raise UnknownOpError(f"MIL op 'scatter' mode {mode!r}")
    out = np.array(data, copy=True)
    ax = int(axis) % out.ndim
    for i, j in enumerate(np.asarray(indices).astype(np.int64).ravel()):
        dst = (slice(None),) * ax + (int(j),)
        out[dst] = ops[str(mode)](out[dst], np.take(np.asarray(updates), i, axis=ax))
    return out


@MIL_OPS.register("scaled_dot_product_attention")
def _mil_sdpa(query: np.ndarray, key: np.ndarray, value: np.ndarray, attn_mask: Any = None) -> np.ndarray:
    """iOS18 ``scaled_dot_product_attention``: ``softmax(Q K^T / sqrt(d) + mask) V`` over the last two axes;
    a boolean mask keeps the True positions (the others get -inf), a float mask is added."""
    q, k, v = _f32(query), _f32(key), _f32(value)
    scores = q @ np.swapaxes(k, -1, -2) / np.float32(np.sqrt(q.shape[-1]))
    if attn_mask is not None:
        m = np.asarray(attn_mask)
        scores = np.where(m, scores, -np.inf) if m.dtype == bool else scores + _f32(m)
    return _mil_softmax(scores, -1) @ v


MIL_OPS.add("slice_by_size", lambda x, begin, size: np.asarray(x)[tuple(
    slice(int(b), None if int(s) == -1 else int(b) + int(s)) for b, s in zip(np.asarray(begin), np.asarray(size)))])
MIL_OPS.add("transpose", lambda x, perm: np.transpose(np.asarray(x), [int(p) for p in np.asarray(perm)]))


@MIL_OPS.register("softmax")
def _mil_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = _f32(x)
    e = np.exp(x - x.max(axis=int(axis), keepdims=True))
    return e / e.sum(axis=int(axis), keepdims=True)


@MIL_OPS.register("gelu")
def _mil_gelu(x: np.ndarray, mode: str = "EXACT") -> np.ndarray:
    """GELU: EXACT ``x * Phi(x)`` (erf), or the tanh / sigmoid approximations MIL defines."""
    x = _f32(x)
    if str(mode) == "EXACT":
        from scipy.special import erf

        return (0.5 * x * (1 + erf(x / np.sqrt(2)))).astype(np.float32)
    if str(mode) == "TANH_APPROXIMATION":
        return (0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))).astype(np.float32)
    if str(mode) == "SIGMOID_APPROXIMATION":
        return (x / (1 + np.exp(-1.702 * x))).astype(np.float32)
    raise UnknownOpError(f"gelu mode {mode!r}")


@MIL_OPS.register("layer_norm")
def _mil_layer_norm(x: np.ndarray, axes: Any, gamma: Any = None, beta: Any = None, epsilon: float = 1e-5) -> np.ndarray:
    x = _f32(x)
    ax = tuple(int(a) for a in np.atleast_1d(axes))
    mean = x.mean(axis=ax, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=ax, keepdims=True)
    y = (x - mean) / np.sqrt(var + float(epsilon))
    if gamma is not None:
        y = y * _f32(gamma)
    if beta is not None:
        y = y + _f32(beta)
    return y.astype(np.float32)


@MIL_OPS.register("matmul")
def _mil_matmul(x: np.ndarray, y: np.ndarray, transpose_x: bool = False, transpose_y: bool = False) -> np.ndarray:
    x, y = _f32(x), _f32(y)
    return np.matmul(np.swapaxes(x, -1, -2) if transpose_x else x, np.swapaxes(y, -1, -2) if transpose_y else y)


def _mil_pads(x: np.ndarray, pad_type: str, pad: Any, kernel: tuple[int, int], strides: tuple[int, int],
              dilations: tuple[int, int], op: str) -> tuple[int, int, int, int]:
    if pad_type == "valid":
        return (0, 0, 0, 0)
    if pad_type == "custom":
        p = [int(v) for v in np.asarray(pad)]
        return (p[0], p[1], p[2], p[3])
    if pad_type in ("same", "same_lower"):
        return same_padding(x.shape[2:], kernel, strides, dilations, top_left_heavy=pad_type == "same_lower")
    raise UnknownOpError(f"{op} pad_type {pad_type!r}")


@MIL_OPS.register("conv")
def _mil_conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, strides: Any = None,
              pad_type: str = "valid", pad: Any = None, dilations: Any = None, groups: int = 1,
              prepared: Conv2d | None = None) -> np.ndarray:
    """MIL ``conv``; ``prepared``: the same weights already in matrix form (a compiled program's)."""
    x = _f32(x)
    if x.ndim != 4:
        raise UnknownOpError(f"conv on a rank-{x.ndim} input (only 2-D convolution)")
    conv = prepared or Conv2d(_f32(weight), None if bias is None else _f32(bias), int(groups))
    strides = tuple(int(s) for s in strides) if strides is not None else (1, 1)
    dil = tuple(int(s) for s in dilations) if dilations is not None else (1, 1)
    pads = _mil_pads(x, str(pad_type), pad, (conv.kh, conv.kw), strides, dil, "conv")
    return conv(x, strides, pads, dil)


def _mil_pool(kind: str) -> MilOp:
    def pool(x: np.ndarray, kernel_sizes: Any, strides: Any = None, pad_type: str = "valid", pad: Any = None,
             ceil_mode: bool = False, exclude_padding_from_average: bool = False) -> np.ndarray:
        x = _f32(x)
        kernel = tuple(int(k) for k in kernel_sizes)
        strides = tuple(int(s) for s in strides) if strides is not None else (1, 1)
        if len(kernel) != 2:
            raise UnknownOpError(f"{kind}_pool over {len(kernel)} axes")
        pads = _mil_pads(x, str(pad_type), pad, kernel, strides, (1, 1), f"{kind}_pool")
        return pool2d(x, kind, kernel, strides, pads, exclude_padding=bool(exclude_padding_from_average),
                        ceil_mode=bool(ceil_mode))
    return pool


MIL_OPS.add("max_pool", _mil_pool("max"))
MIL_OPS.add("avg_pool", _mil_pool("avg"))


constexpr.register(MIL_OPS, _DTYPES)
unpack_bits = constexpr.unpack_bits  # the bit layout coremltools writes (tests check it)



def _finisher(dtype: Any) -> Callable[[Any], Any]:
    """What the device stores an op's output as: fp16 tensors rounded to half precision (kept as float32
    values, so the next op needs no conversion; :func:`~.kernels.round_to_fp16`), other dtypes cast."""
    if dtype is np.float16:
        return round_to_fp16
    if dtype is None:
        return np.asarray
    return lambda v: np.asarray(v).astype(dtype, copy=False)


def _const(v: Any) -> Any:
    """A constant as the plan holds it: float16 as float32 values, read-only (ops round their outputs in
    place; a view of a constant is never one of them)."""
    v = np.array(v, np.float32) if np.asarray(v).dtype == np.float16 else np.array(v)
    v.flags.writeable = False
    return v


def compile_mil(program: Any, function: str = "main") -> Plan:
    """A MIL program's ``function`` as a :class:`~toolchain.runtimes.coreml.plan.Plan`, built once per artifact.

    ``program``: functions read from the file (:func:`~.milproto.read_mlpackage`, no coremltools needed), or a
    coremltools PyMIL ``Program`` (converted with :func:`~.milproto.from_pymil`). Constants and every op whose
    inputs are all constants (the ``constexpr_*`` weight decoding included) are computed here; a conv with
    constant weights holds them prepared (:class:`~.kernels.Conv2d`). An op with no entry in ``MIL_OPS``
    raises UnknownOpError.
    """
    func = program[function] if isinstance(program, dict) else milproto.from_pymil(program, function)
    consts: dict[str, Any] = {}
    dynamic = set(func.inputs)
    steps: list[Step] = []
    dtypes = dict(func.inputs)  # value name -> dtype (None: not a tensor the program types)
    uses = Counter(r.name for op in func.ops for v in op.inputs.values() for r in (v if isinstance(v, list) else [v])
                   if isinstance(r, milproto.Ref)) + Counter(func.outputs)
    fresh: set[str] = set()  # values in memory of their own (no view of another value)

    def resolve(v: Any) -> tuple[bool, Any]:  # (is computed at run time, name or constant value)
        if not isinstance(v, milproto.Ref):
            return False, _const(v)
        if v.name in dynamic:
            return True, v.name
        if v.name in consts:
            return False, consts[v.name]
        raise UnknownOpError(f"MIL value {v.name!r} is neither computed nor constant")

    for op in func.ops:
        finish = [_finisher(dtype) for _, dtype in op.outputs]
        names = [name for name, _ in op.outputs]
        if op.type == "const":
            consts[names[0]] = _const(op.inputs["val"])
            continue
        if op.type not in MIL_OPS:
            raise UnknownOpError(f"MIL op {op.type!r} (op {op.name!r})")
        static: dict[str, Any] = {}
        refs: dict[str, Any] = {}
        for key, v in op.inputs.items():
            if isinstance(v, list):
                items = [resolve(x) for x in v]
                if any(r for r, _ in items):
                    refs[key] = items
                else:
                    static[key] = [x for _, x in items]
            else:
                is_ref, val = resolve(v)
                (refs if is_ref else static)[key] = val
        fn = MIL_OPS.get(op.type)
        if not refs:  # constants only: computed once, here
            out = fn(**static)
            for name, val, f in zip(names, out if isinstance(out, (list, tuple)) else [out], finish):
                consts[name] = _const(f(val))
            continue
        if op.type == "conv" and "weight" in static and "bias" not in refs:
            b = static.get("bias")
            static["prepared"] = Conv2d(_f32(static["weight"]), None if b is None else _f32(b),
                                        int(static.get("groups", 1)))
        if op.type in inplace.VALUE_PRESERVING and inplace.preserves_fp16(refs, static, dtypes):
            finish = [f if d is not np.float16 else inplace.same for f, (_, d) in zip(finish, op.outputs)]
        x = refs.get("x")
        if op.type in inplace.IN_PLACE and isinstance(x, str) and x in fresh and uses[x] == 1:
            fn = inplace.IN_PLACE[op.type]  # its input is a temporary no other op reads: overwritten, not copied
        if op.type in inplace.FRESH:
            fresh.update(names)
        reshape_of = x if op.type == "reshape" and isinstance(x, str) else None
        steps.append(Step(op.type, op.name, _bind(fn, static, refs), names, finish, reshape_of))
        dynamic.update(names)
        dtypes.update(op.outputs)
    inputs = {name: _input(dtype or np.float32) for name, dtype in func.inputs.items()}
    out_dtypes = {name: dtype for op in func.ops for name, dtype in op.outputs}
    final = {n: (lambda a: np.asarray(a).astype(np.float16)) for n in func.outputs if out_dtypes.get(n) is np.float16}
    return Plan(consts, steps, inputs, list(func.outputs), final)


def _input(dtype: Any) -> Callable[[Any], Any]:
    finish = _finisher(dtype)
    return (lambda v: finish(np.array(v, np.float32))) if dtype is np.float16 else finish  # never the caller's array


def _bind(fn: MilOp, static: dict[str, Any], refs: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
    def run(env: dict[str, Any]) -> Any:
        kwargs = dict(static)
        for key, ref in refs.items():
            kwargs[key] = env[ref] if isinstance(ref, str) else [env[x] if r else x for r, x in ref]
        return fn(**kwargs)
    return run


def run_mil(program: Any, inputs: dict[str, np.ndarray], function: str = "main") -> dict[str, np.ndarray]:
    """Run a MIL program's ``function`` once (compiling it first: use :func:`compile_mil` to run it often)."""
    return compile_mil(program, function).run(inputs)
