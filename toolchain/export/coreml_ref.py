"""A numpy reference executor for Core ML models, so Core ML parity is checked on Linux.

Apple's runtime only predicts on macOS. This module runs the *saved* artifact instead:
NeuralNetwork specs (spec 3..5, ``.mlmodel``) layer by layer, and ML Programs
(``.mlpackage``, loaded back from their MIL protobuf and weight file) op by op, including
fp16 programs (every fp16 tensor is rounded to float16, as the device stores it) and
compressed weights (``constexpr_*`` ops: sparse, palettized, int8). Every layer and op
that the model cards produce is here; anything else raises :class:`UnknownOpError`
naming it, which the exporter records as parity *skipped* (never passed).

Kernels compute in float32 (NCHW). Example: a 1x1 convolution with weight 2 and bias 1
maps ``[[[[3.0]]]]`` to ``[[[[7.0]]]]`` (see :func:`conv2d`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from toolchain.errors import ToolchainError
from toolchain.registry import Registry


class UnknownOpError(ToolchainError):
    """The executor has no implementation for a layer/op (or one of its modes)."""


# ---------------------------------------------------------------- kernels (float32, NCHW)

def same_padding(hw: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                 dilation: tuple[int, ...] = (1, 1), top_left_heavy: bool = False) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) for 'same' padding: output = ceil(input / stride).

    >>> same_padding((4, 4), (3, 3), (2, 2))   # 4 -> 2 outputs, needs 1 pixel: at the end
    (0, 1, 0, 1)
    """
    out: list[int] = []
    for n, k, s, d in zip(hw, kernel, stride, dilation):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        out += [big, small] if top_left_heavy else [small, big]
    return (out[0], out[1], out[2], out[3])


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, stride: tuple[int, ...],
           pads: tuple[int, int, int, int], dilation: tuple[int, ...] = (1, 1), groups: int = 1) -> np.ndarray:
    """2-D cross-correlation as PyTorch's ``conv2d``; ``pads`` = (top, bottom, left, right).

    >>> conv2d(np.full((1, 1, 1, 1), 3.0, np.float32), np.full((1, 1, 1, 1), 2.0, np.float32),
    ...        np.ones(1, np.float32), (1, 1), (0, 0, 0, 0)).ravel().tolist()
    [7.0]
    """
    n, c, _, _ = x.shape
    o, cg, kh, kw = w.shape
    if c != cg * groups:
        raise UnknownOpError(f"conv: input has {c} channels, weights expect {cg} x {groups} groups")
    pt, pb, pl, pr = pads
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    (sh, sw), (dh, dw) = stride, dilation
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    oh, ow = (x.shape[2] - eh) // sh + 1, (x.shape[3] - ew) // sw + 1
    win = sliding_window_view(x, (eh, ew), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :oh, :ow]
    if groups == 1:
        out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    else:
        win = win.reshape(n, groups, cg, oh, ow, kh, kw)
        out = np.einsum("ngchwij,gocij->ngohw", win, w.reshape(groups, o // groups, cg, kh, kw), optimize=True)
        out = out.reshape(n, o, oh, ow)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return np.ascontiguousarray(out, dtype=np.float32)


def pool2d(x: np.ndarray, kind: str, kernel: tuple[int, ...], stride: tuple[int, ...],
           pads: tuple[int, int, int, int], exclude_padding: bool = True, ceil_mode: bool = False) -> np.ndarray:
    """Max or average pooling, PyTorch's semantics; ``pads`` = (top, bottom, left, right).

    Padded cells never win a max and, with ``exclude_padding``, never count in an average. ``ceil_mode``
    adds cells at the end so a partial last window still gives an output (one that starts inside the input
    or the start padding, as PyTorch and NeuralNetwork ``includeLastPixel`` define it); those cells never
    count, even when the padding does.
    """
    pt, pb, pl, pr = pads
    (kh, kw), (sh, sw) = kernel, stride
    eb = er = 0
    if ceil_mode:
        eb = include_last_pixel_pads(x.shape[2:3], (kh,), (sh,), (pt,))[1] - pb if pt == pb else 0
        er = include_last_pixel_pads(x.shape[3:4], (kw,), (sw,), (pl,))[1] - pr if pl == pr else 0
        if pt != pb or pl != pr:  # asymmetric: the general rule for the bottom/right end
            h, w = x.shape[2] + pt + pb, x.shape[3] + pl + pr
            eb, er = ((-(h - kh) % sh) if h > kh else 0), ((-(w - kw) % sw) if w > kw else 0)
        eb, er = max(eb, 0), max(er, 0)
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb + eb), (pl, pr + er)), constant_values=fill)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    if kind == "max":
        return win.max(axis=(4, 5)).astype(np.float32)
    total = win.sum(axis=(4, 5))
    counted = np.ones((1, 1) + x.shape[2:], np.float32)
    if not exclude_padding:
        counted = np.pad(counted, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=1.0)
        counted = np.pad(counted, ((0, 0), (0, 0), (0, eb), (0, er)))
    else:
        counted = np.pad(counted, ((0, 0), (0, 0), (pt, pb + eb), (pl, pr + er)))
    count = sliding_window_view(counted, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw].sum(axis=(4, 5))
    return (total / count).astype(np.float32)


def batch_norm(x: np.ndarray, mean: np.ndarray, var: np.ndarray, gamma: np.ndarray | None,
               beta: np.ndarray | None, eps: float) -> np.ndarray:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y.astype(np.float32)


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``x @ w.T + b`` over the last axis (w is (out, in))."""
    y = x @ w.T
    return (y + b if b is not None else y).astype(np.float32)


def concat(values: list[np.ndarray], axis: int, interleave: bool = False) -> np.ndarray:
    """``np.concatenate``; with ``interleave`` the slices alternate (a0, b0, a1, b1, ...), as ShuffleNet's
    channel shuffle is lowered by coremltools.

    >>> concat([np.array([1, 2]), np.array([3, 4])], 0, interleave=True).tolist()
    [1, 3, 2, 4]
    """
    values = [np.asarray(v) for v in values]
    if not interleave:
        return np.concatenate(values, axis=axis)
    axis = axis % values[0].ndim
    if len({v.shape for v in values}) != 1:
        raise UnknownOpError("concat with interleave=True over inputs of different shapes")
    stacked = np.stack(values, axis=axis + 1)
    shape = list(values[0].shape)
    shape[axis] *= len(values)
    return stacked.reshape(shape)


def channel_shape(p: np.ndarray, x: np.ndarray) -> tuple[int, ...]:
    """Broadcast a (C,) / (C, H, W) / (1,) parameter against an (N, C, H, W) blob."""
    return (1,) + p.shape + (1,) * (x.ndim - 1 - p.ndim) if p.ndim == 1 and p.size > 1 else (1,) + p.shape


def repeat_blocks(p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Expand a per-block parameter (same rank, each dim dividing ``shape``) to ``shape``."""
    for axis, (n, b) in enumerate(zip(shape, p.shape)):
        if b != n:
            p = np.repeat(p, n // b, axis=axis)
    return p


# ---------------------------------------------------------------- NeuralNetwork specs

NNLayer = Callable[[Any, list[np.ndarray]], np.ndarray]
NN_LAYERS: Registry[NNLayer] = Registry("NeuralNetwork layer")


def nn_weights(wp: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A ``WeightParams`` as float32: ``floatValue`` or ``float16Value`` (little-endian bytes)."""
    if len(wp.floatValue):
        arr = np.asarray(wp.floatValue, dtype=np.float32)
    elif len(wp.float16Value):
        arr = np.frombuffer(wp.float16Value, dtype="<f2").astype(np.float32)
    elif len(wp.rawValue) or wp.HasField("quantization"):
        raise UnknownOpError("quantized NeuralNetwork weights (rawValue/quantization)")
    else:
        arr = np.zeros(0, np.float32)
    return arr.reshape(shape) if shape is not None else arr


def _nn_padding(p: Any, x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                dilation: tuple[int, int] = (1, 1)) -> tuple[int, int, int, int]:
    kind = p.WhichOneof("ConvolutionPaddingType" if p.DESCRIPTOR.name == "ConvolutionLayerParams" else "PoolingPaddingType")
    if kind == "valid":
        b = p.valid.paddingAmounts.borderAmounts
        if not len(b):
            return (0, 0, 0, 0)
        return (b[0].startEdgeSize, b[0].endEdgeSize, b[1].startEdgeSize, b[1].endEdgeSize)
    if kind == "same":
        top_heavy = p.same.asymmetryMode == 1  # TOP_LEFT_HEAVY
        return same_padding(x.shape[2:], kernel, stride, dilation, top_left_heavy=top_heavy)
    raise UnknownOpError(f"{p.DESCRIPTOR.name} padding {kind!r}")


@NN_LAYERS.register("convolution")
def _nn_conv(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    p = layer.convolution
    if p.isDeconvolution or len(xs) != 1:
        raise UnknownOpError("convolution (deconvolution or weights as input)")
    kh, kw = p.kernelSize
    stride = tuple(p.stride) or (1, 1)
    dil = tuple(p.dilationFactor) or (1, 1)
    w = nn_weights(p.weights, (p.outputChannels, p.kernelChannels, kh, kw))
    b = nn_weights(p.bias) if p.hasBias else None
    pads = _nn_padding(p, xs[0], (kh, kw), stride, dil)
    return conv2d(xs[0], w, b, stride, pads, dil, p.nGroups or 1)


@NN_LAYERS.register("batchnorm")
def _nn_batchnorm(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    p = layer.batchnorm
    if p.computeMeanVar or p.instanceNormalization:
        raise UnknownOpError("batchnorm (computeMeanVar / instanceNormalization)")
    return batch_norm(xs[0], nn_weights(p.mean), nn_weights(p.variance), nn_weights(p.gamma), nn_weights(p.beta),
                        p.epsilon)


_ACTIVATIONS: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    "ReLU": lambda x, a: np.maximum(x, 0),
    "linear": lambda x, a: a.alpha * x + a.beta,
    "leakyReLU": lambda x, a: np.where(x >= 0, x, a.alpha * x),
    "sigmoid": lambda x, a: 1 / (1 + np.exp(-x)),
    "tanh": lambda x, a: np.tanh(x),
    "sigmoidHard": lambda x, a: np.clip(a.alpha * x + a.beta, 0, 1),
    "thresholdedReLU": lambda x, a: np.where(x > a.alpha, x, 0),
}


@NN_LAYERS.register("activation")
def _nn_activation(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    kind = layer.activation.WhichOneof("NonlinearityType")
    if kind not in _ACTIVATIONS:
        raise UnknownOpError(f"activation {kind!r}")
    return _ACTIVATIONS[kind](xs[0], getattr(layer.activation, kind)).astype(np.float32)


_UNARY = {0: ("SQRT", lambda x, p: np.sqrt(x)), 1: ("RSQRT", lambda x, p: 1 / np.sqrt(x + p.epsilon)),
          2: ("INVERSE", lambda x, p: 1 / (x + p.epsilon)), 3: ("POWER", lambda x, p: x ** p.alpha),
          4: ("EXP", lambda x, p: np.exp(x)), 5: ("LOG", lambda x, p: np.log(x + p.epsilon)),
          6: ("ABS", lambda x, p: np.abs(x)), 7: ("THRESHOLD", lambda x, p: np.maximum(x, p.alpha))}


@NN_LAYERS.register("unary")
def _nn_unary(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """``y = f(scale * x + shift)``; THRESHOLD is ``max(., alpha)``."""
    p = layer.unary
    if p.type not in _UNARY:
        raise UnknownOpError(f"unary type {p.type}")
    return _UNARY[p.type][1](p.scale * xs[0] + p.shift, p).astype(np.float32)


@NN_LAYERS.register("clip")
def _nn_clip(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    return np.clip(xs[0], layer.clip.minVal, layer.clip.maxVal)


@NN_LAYERS.register("pooling")
def _nn_pooling(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    p = layer.pooling
    kind = {0: "max", 1: "avg"}.get(p.type)
    if kind is None:
        raise UnknownOpError("pooling type L2")
    x = xs[0]
    if p.globalPooling:
        return x.max(axis=(2, 3), keepdims=True) if kind == "max" else x.mean(axis=(2, 3), keepdims=True)
    kernel, stride = tuple(p.kernelSize), tuple(p.stride)
    if p.WhichOneof("PoolingPaddingType") == "includeLastPixel":
        a = tuple(p.includeLastPixel.paddingAmounts) or (0, 0)
        return pool2d(x, kind, kernel, stride, (a[0], a[0], a[1], a[1]), exclude_padding=p.avgPoolExcludePadding,
                      ceil_mode=True)
    pads = _nn_padding(p, x, kernel, stride)
    return pool2d(x, kind, kernel, stride, pads, exclude_padding=p.avgPoolExcludePadding)


def include_last_pixel_pads(hw: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                            amounts: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of NeuralNetwork.proto's ``includeLastPixel`` pooling (PyTorch ceil_mode).

    ``out = ceil((n + 2p - k) / s) + 1``, one less when p > 0 and the last window would start at or past
    ``n + p``; the start is padded by p, the end by whatever the last window needs.

    >>> include_last_pixel_pads((6, 6), (3, 3), (2, 2), (0, 0))   # 6 -> 3 outputs, last window needs 1 more
    (0, 1, 0, 1)
    """
    out: list[int] = []
    for n, k, s, p in zip(hw, kernel, stride, amounts):
        o = -(-(n + 2 * p - k) // s) + 1
        if p > 0 and (o - 1) * s >= n + p:
            o -= 1
        out += [p, max((o - 1) * s + k - n - p, 0)]
    return tuple(out)  # type: ignore[return-value]  # (start, end) per axis


@NN_LAYERS.register("concatND")
def _nn_concat_nd(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """Spec 4/5 ``concatND`` (``interleave`` is spec 5: ShuffleNet's channel shuffle)."""
    return concat(xs, int(layer.concatND.axis), bool(layer.concatND.interleave))


@NN_LAYERS.register("splitND")
def _nn_split_nd(layer: Any, xs: list[np.ndarray]) -> list[np.ndarray]:
    p = layer.splitND
    if len(p.splitSizes):
        return np.split(xs[0], np.cumsum(list(p.splitSizes))[:-1], axis=int(p.axis))
    return np.split(xs[0], int(p.numSplits), axis=int(p.axis))


@NN_LAYERS.register("split")
def _nn_split(layer: Any, xs: list[np.ndarray]) -> list[np.ndarray]:
    """Spec 1: ``nOutputs`` equal parts along the channel axis."""
    return np.split(xs[0], int(layer.split.nOutputs), axis=1)


@NN_LAYERS.register("reduceMean")
def _nn_reduce_mean(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """Spec 4 ``reduceMean``; spatial means keep rank 4 ((N, C, 1, 1)) so later layers see one layout."""
    p = layer.reduceMean
    if p.reduceAll:
        return np.asarray(xs[0].mean(), np.float32).reshape(1, 1, 1, 1)
    axes = tuple(int(a) % xs[0].ndim for a in p.axes)
    return xs[0].mean(axis=axes, keepdims=True).astype(np.float32)


@NN_LAYERS.register("add")
def _nn_add(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    return xs[0] + layer.add.alpha if len(xs) == 1 else sum(xs[1:], xs[0])


@NN_LAYERS.register("multiply")
def _nn_multiply(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    if len(xs) == 1:
        return xs[0] * layer.multiply.alpha
    out = xs[0]
    for x in xs[1:]:
        out = out * x  # shapes (N,C,H,W) with (N,C,1,1) / (N,1,H,W): the broadcasts spec 1 allows
    return out


@NN_LAYERS.register("scale")
def _nn_scale(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    p = layer.scale
    s = nn_weights(p.scale).reshape(tuple(p.shapeScale) or (1,))
    out = xs[0] * s.reshape(channel_shape(s, xs[0]))
    if p.hasBias:
        bias = nn_weights(p.bias).reshape(tuple(p.shapeBias) or (1,))
        out = out + bias.reshape(channel_shape(bias, xs[0]))
    return out


@NN_LAYERS.register("flatten")
def _nn_flatten(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """Rank-5 semantics: (C, H, W) -> (C*H*W, 1, 1); mode 0 is CHANNEL_FIRST."""
    x = xs[0] if layer.flatten.mode == 0 else xs[0].transpose(0, 2, 3, 1)
    return x.reshape(len(x), -1, 1, 1)


@NN_LAYERS.register("reshapeStatic")
def _nn_reshape_static(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    return xs[0].reshape(tuple(layer.reshapeStatic.targetShape))


@NN_LAYERS.register("innerProduct")
def _nn_inner_product(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    p = layer.innerProduct
    if p.int8DynamicQuantize:
        raise UnknownOpError("innerProduct with int8DynamicQuantize")
    w = nn_weights(p.weights, (p.outputChannels, p.inputChannels))
    b = nn_weights(p.bias) if p.hasBias else None
    x = xs[0]
    if x.ndim == 4 and x.shape[2:] == (1, 1):  # rank-5 blob (C, 1, 1)
        return linear(x[:, :, 0, 0], w, b)[:, :, None, None]
    return linear(x, w, b)


@NN_LAYERS.register("concat")
def _nn_concat(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    if layer.concat.sequenceConcat:
        raise UnknownOpError("concat along the sequence axis")
    return np.concatenate(xs, axis=1)


@NN_LAYERS.register("loadConstant")
def _nn_load_constant(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """Spec 1: a (C, H, W) constant blob."""
    return nn_weights(layer.loadConstant.data, (1,) + tuple(layer.loadConstant.shape))


@NN_LAYERS.register("loadConstantND")
def _nn_load_constant_nd(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """Spec 4: a constant of exactly the given shape (what NN uses for `x * const`)."""
    return nn_weights(layer.loadConstantND.data, tuple(layer.loadConstantND.shape))


@NN_LAYERS.register("softmax")
def _nn_softmax(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    e = np.exp(xs[0] - xs[0].max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def run_neuralnetwork(spec: Any, inputs: dict[str, np.ndarray], blobs: dict[str, np.ndarray] | None = None
                      ) -> dict[str, np.ndarray]:
    """Run a NeuralNetwork spec on one sample (a blob per input name). Returns every model output.

    A spec-3 (rank-5 mapped) input of shape (C, H, W) gets a batch axis, so every blob here
    is (N, C, H, W) or 2-D after a reshape. ``blobs``, when given, receives every intermediate blob
    (the spec-3 lowering reads channel counts from it).
    """
    if spec.WhichOneof("Type") != "neuralNetwork":
        raise UnknownOpError(f"model type {spec.WhichOneof('Type')!r} (only plain neuralNetwork)")
    env: dict[str, np.ndarray] = {}
    for d in spec.description.input:
        x = np.asarray(inputs[d.name], np.float32)
        env[d.name] = x[None] if x.ndim == 3 else x
    for layer in spec.neuralNetwork.layers:
        kind = layer.WhichOneof("layer")
        if kind not in NN_LAYERS:
            raise UnknownOpError(f"NeuralNetwork layer {kind!r} (layer {layer.name!r})")
        out = NN_LAYERS.get(kind)(layer, [env[name] for name in layer.input])
        outs = out if isinstance(out, (list, tuple)) else [out]
        for name, val in zip(layer.output, outs):
            env[name] = np.asarray(val, np.float32)
    if blobs is not None:
        blobs.update(env)
    return {d.name: env[d.name] for d in spec.description.output}


# ---------------------------------------------------------------- ML Programs (MIL)

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
              pad_type: str = "valid", pad: Any = None, dilations: Any = None, groups: int = 1) -> np.ndarray:
    x, w = _f32(x), _f32(weight)
    if x.ndim != 4:
        raise UnknownOpError(f"conv on a rank-{x.ndim} input (only 2-D convolution)")
    strides = tuple(int(s) for s in strides) if strides is not None else (1, 1)
    dil = tuple(int(s) for s in dilations) if dilations is not None else (1, 1)
    pads = _mil_pads(x, str(pad_type), pad, w.shape[2:], strides, dil, "conv")
    return conv2d(x, w, None if bias is None else _f32(bias), strides, pads, dil, int(groups))


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


# Compressed weights. iOS16 and iOS18 ops share names; their inputs tell them apart.

def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """Unsigned ``nbits`` integers packed LSB first, as coremltools writes them.

    >>> unpack_bits(np.array([0b00100001], np.uint8), 4, 2).tolist()   # low nibble first
    [1, 2]
    """
    bits = np.unpackbits(np.asarray(packed).astype(np.uint8), bitorder="little")[: count * nbits]
    return (bits.reshape(count, nbits).astype(np.uint32) << np.arange(nbits, dtype=np.uint32)).sum(axis=1)


@MIL_OPS.register("constexpr_sparse_to_dense")
def _mil_sparse(nonzero_data: np.ndarray, mask: np.ndarray, shape: Any = None) -> np.ndarray:
    mask = np.asarray(mask)
    if shape is None:  # iOS18: the mask is an unpacked uint1 tensor of the output shape
        out_shape, flat_mask = mask.shape, mask.reshape(-1) != 0
    else:  # iOS16: the mask is a packed bit vector
        out_shape = tuple(int(s) for s in np.asarray(shape))
        flat_mask = np.unpackbits(mask.astype(np.uint8), bitorder="little")[: int(np.prod(out_shape))] != 0
    out = np.zeros(int(np.prod(out_shape)), dtype=np.asarray(nonzero_data).dtype)
    out[flat_mask] = nonzero_data
    return out.reshape(out_shape)


@MIL_OPS.register("constexpr_lut_to_dense")
def _mil_lut(indices: np.ndarray, lut: np.ndarray, shape: Any = None, vector_axis: Any = None) -> np.ndarray:
    lut = np.asarray(lut)
    if shape is not None:  # iOS16: one flat table, indices packed
        out_shape = tuple(int(s) for s in np.asarray(shape))
        nbits = int(np.log2(lut.size))
        return lut.reshape(-1)[unpack_bits(indices, nbits, int(np.prod(out_shape)))].reshape(out_shape)
    # iOS18: lut (*blocks, 2**nbits, vector); indices unpacked with the output shape
    idx = np.asarray(indices).astype(np.int64)
    if lut.shape[-1] != 1:
        raise UnknownOpError("constexpr_lut_to_dense with vector palettes")
    grids = np.ogrid[tuple(slice(0, s) for s in idx.shape)]
    blocks = tuple(g // (s // b) for g, s, b in zip(grids, idx.shape, lut.shape[:-2]))
    return lut[blocks + (idx, 0)]


@MIL_OPS.register("constexpr_lut_to_sparse")
def _mil_lut_sparse(indices_mask: np.ndarray, indices_nonzero_data: np.ndarray, lut: np.ndarray,
                    vector_axis: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """iOS18 joint sparse + palette: look up each non-zero's palette index; the mask passes through.

    The palette of a non-zero is that of the block its dense position falls in (lut: (*blocks, 2**nbits, 1)).
    """
    mask, lut = np.asarray(indices_mask), np.asarray(lut)
    if lut.shape[-1] != 1:
        raise UnknownOpError("constexpr_lut_to_sparse with vector palettes")
    pos = np.nonzero(mask != 0)  # C order: the order constexpr_sparse_to_dense fills in
    blocks = tuple(p // (s // b) for p, s, b in zip(pos, mask.shape, lut.shape[:-2]))
    idx = np.asarray(indices_nonzero_data).astype(np.int64).reshape(-1)
    return mask, lut[blocks + (idx, 0)]


@MIL_OPS.register("constexpr_affine_dequantize")
def _mil_affine(quantized_data: np.ndarray, zero_point: Any, scale: Any, axis: int) -> np.ndarray:
    q = np.asarray(quantized_data).astype(np.float32)
    shape = [1] * q.ndim
    zp, sc = np.asarray(zero_point, np.float32), np.asarray(scale, np.float32)
    shape[int(axis)] = -1
    zp = zp.reshape(shape) if zp.size > 1 else zp
    sc = sc.reshape(shape) if sc.size > 1 else sc
    return (q - zp) * sc


@MIL_OPS.register("constexpr_blockwise_shift_scale")
def _mil_blockwise(data: np.ndarray, scale: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    d = np.asarray(data).astype(np.float32)
    sc = repeat_blocks(np.asarray(scale, np.float32), d.shape)
    if offset is not None:
        d = d - repeat_blocks(np.asarray(offset, np.float32), d.shape)
    return d * sc


MIL_OPS.add("constexpr_cast", lambda source_val, output_dtype: np.asarray(source_val).astype(_DTYPES[str(output_dtype)]))


def _value(v: Any, env: dict[str, np.ndarray]) -> Any:
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return [_value(x, env) for x in v]
    if v.name in env:
        return env[v.name]
    if v.val is not None:
        return v.val
    raise UnknownOpError(f"MIL value {v.name!r} is neither computed nor constant")


def run_mil(program: Any, inputs: dict[str, np.ndarray], function: str = "main") -> dict[str, np.ndarray]:
    """Run a MIL program's ``function`` on one sample; fp16 tensors are rounded to float16 after every op."""
    from coremltools.converters.mil.mil import types

    func = program.functions[function]
    env: dict[str, np.ndarray] = {}
    for name, var in func.inputs.items():
        env[name] = np.asarray(inputs[name]).astype(_DTYPES.get(types.builtin_to_string(var.dtype), np.float32))
    for op in func.operations:
        if op.op_type == "const":
            env[op.outputs[0].name] = np.asarray(op.outputs[0].val)
            continue
        if op.op_type not in MIL_OPS:
            raise UnknownOpError(f"MIL op {op.op_type!r} (op {op.name!r})")
        kwargs = {k: _value(v, env) for k, v in op.inputs.items()}
        out = MIL_OPS.get(op.op_type)(**kwargs)
        outs = out if isinstance(out, (list, tuple)) else [out]
        for var, val in zip(op.outputs, outs):
            dt = _DTYPES.get(types.builtin_to_string(var.dtype))
            # The fp16 emulation: the device keeps this tensor in half precision.
            env[var.name] = np.asarray(val).astype(dt) if dt is not None else np.asarray(val)
    return {v.name: np.asarray(env[v.name]) for v in func.outputs}


def load_mlpackage_program(path: str | Path) -> tuple[Any, Any]:
    """(spec, MIL program) of a saved ``.mlpackage``, read back from disk (works on Linux)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    prog = load(spec, specification_version=spec.specificationVersion, file_weights_dir=model.weights_dir)
    return spec, prog


def run_artifact(path: str | Path, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """Run a saved ``.mlmodel`` (NeuralNetwork) or ``.mlpackage`` (ML Program) on one sample.

    Returns the outputs and a description of what ran (for the manifest's parity ``reference``).
    """
    path = Path(path)
    if path.suffix == ".mlpackage":
        spec, prog = load_mlpackage_program(path)
        return run_mil(prog, inputs), f"coreml_ref numpy ML Program executor (spec {spec.specificationVersion})"
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    return run_neuralnetwork(spec, inputs), f"coreml_ref numpy NeuralNetwork executor (spec {spec.specificationVersion})"

