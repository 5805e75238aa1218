"""NeuralNetwork specs (spec 3..5, ``.mlmodel``) run layer by layer on the numpy kernels.

One registered function per layer kind (``NN_LAYERS``); a kind with none raises
:class:`~toolchain.runtimes.coreml.kernels.UnknownOpError`, which the runtime reports as unavailable (parity
*skipped* for this runtime; *unverified* when no runtime could check it: never passed).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from toolchain.registry import Registry
from toolchain.runtimes.coreml.kernels import (Conv2d, UnknownOpError, batch_norm, channel_shape, concat, leaky_relu,
                                               linear, pool2d, prelu, same_padding, upsample_nearest)
from toolchain.runtimes.coreml.plan import Plan, Step

NNLayer = Callable[[Any, list[np.ndarray]], np.ndarray]
NN_LAYERS: Registry[NNLayer] = Registry("NeuralNetwork layer")
#: layers with weights: a builder (layer -> its function of the inputs) that decodes and shapes them once, so a
#: compiled network (:func:`compile_neuralnetwork`) never re-reads them from the protobuf per image
NN_PREPARED: dict[str, Callable[[Any], Callable[[list[np.ndarray]], np.ndarray]]] = {}


def _prepared(kind: str) -> Callable[[Callable[[Any], Callable[[list[np.ndarray]], np.ndarray]]], Any]:
    """Register a builder in NN_PREPARED and, under the same kind, its one-off use in NN_LAYERS."""
    def add(build: Callable[[Any], Callable[[list[np.ndarray]], np.ndarray]]) -> Any:
        NN_PREPARED[kind] = build
        NN_LAYERS.add(kind, lambda layer, xs: build(layer)(xs))
        return build
    return add


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


@_prepared("convolution")
def _nn_conv(layer: Any) -> Callable[[list[np.ndarray]], np.ndarray]:
    p = layer.convolution
    if p.isDeconvolution or len(layer.input) != 1:
        raise UnknownOpError("convolution (deconvolution or weights as input)")
    kh, kw = p.kernelSize
    stride = tuple(p.stride) or (1, 1)
    dil = tuple(p.dilationFactor) or (1, 1)
    conv = Conv2d(nn_weights(p.weights, (p.outputChannels, p.kernelChannels, kh, kw)),
                  nn_weights(p.bias) if p.hasBias else None, p.nGroups or 1)
    return lambda xs: conv(xs[0], stride, _nn_padding(p, xs[0], (kh, kw), stride, dil), dil)


@_prepared("batchnorm")
def _nn_batchnorm(layer: Any) -> Callable[[list[np.ndarray]], np.ndarray]:
    p = layer.batchnorm
    if p.computeMeanVar or p.instanceNormalization:
        raise UnknownOpError("batchnorm (computeMeanVar / instanceNormalization)")
    args = (nn_weights(p.mean), nn_weights(p.variance), nn_weights(p.gamma), nn_weights(p.beta), p.epsilon)
    return lambda xs: batch_norm(xs[0], *args)


_ACTIVATIONS: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    "ReLU": lambda x, a: np.maximum(x, 0),
    "linear": lambda x, a: x * a.alpha + a.beta if a.beta else x * a.alpha,
    "leakyReLU": lambda x, a: leaky_relu(x, a.alpha),
    "sigmoid": lambda x, a: 1 / (1 + np.exp(-x)),
    "tanh": lambda x, a: np.tanh(x),
    "sigmoidHard": lambda x, a: np.clip(a.alpha * x + a.beta, 0, 1),
    "thresholdedReLU": lambda x, a: np.where(x > a.alpha, x, 0),
}


@_prepared("activation")
def _nn_activation(layer: Any) -> Callable[[list[np.ndarray]], np.ndarray]:
    kind = layer.activation.WhichOneof("NonlinearityType")
    if kind == "PReLU":  # one alpha per channel (a WeightParams): decoded once
        alpha = nn_weights(layer.activation.PReLU.alpha)
        return lambda xs: prelu(xs[0], alpha)
    if kind not in _ACTIVATIONS:
        raise UnknownOpError(f"activation {kind!r}")
    params = getattr(layer.activation, kind)
    return lambda xs: np.asarray(_ACTIVATIONS[kind](xs[0], params), np.float32)


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
    fresh = (p.scale, p.shift) != (1.0, 0.0)
    x = p.scale * xs[0] + p.shift if fresh else xs[0]
    if p.type == 7 and fresh:  # THRESHOLD on a temporary (ReLU6's lowering): in place, one pass fewer
        return np.maximum(x, np.float32(p.alpha), out=x)
    return np.asarray(_UNARY[p.type][1](x, p), np.float32)


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


@_prepared("scale")
def _nn_scale(layer: Any) -> Callable[[list[np.ndarray]], np.ndarray]:
    p = layer.scale
    s = nn_weights(p.scale).reshape(tuple(p.shapeScale) or (1,))
    bias = nn_weights(p.bias).reshape(tuple(p.shapeBias) or (1,)) if p.hasBias else None

    def run(xs: list[np.ndarray]) -> np.ndarray:
        out = xs[0] * s.reshape(channel_shape(s, xs[0]))
        return out if bias is None else out + bias.reshape(channel_shape(bias, xs[0]))
    return run


@NN_LAYERS.register("flatten")
def _nn_flatten(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """Rank-5 semantics: (C, H, W) -> (C*H*W, 1, 1); mode 0 is CHANNEL_FIRST."""
    x = xs[0] if layer.flatten.mode == 0 else xs[0].transpose(0, 2, 3, 1)
    return x.reshape(len(x), -1, 1, 1)


@NN_LAYERS.register("reshapeStatic")
def _nn_reshape_static(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    return xs[0].reshape(tuple(layer.reshapeStatic.targetShape))


@NN_LAYERS.register("rankPreservingReshape")
def _nn_rank_preserving_reshape(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """Spec 4: reshape to ``targetShape`` (one entry may be -1, a 0 keeps that axis)."""
    target = [int(d) if int(d) != 0 else xs[0].shape[i] for i, d in enumerate(layer.rankPreservingReshape.targetShape)]
    return xs[0].reshape(target)


@NN_LAYERS.register("reshape")
def _nn_reshape(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """Spec 1 (rank-5 semantics): each sample to ``targetShape`` (C, H, W); mode 0 CHANNEL_FIRST reads the
    values in (C, H, W) order, mode 1 CHANNEL_LAST in (H, W, C) order."""
    p = layer.reshape
    target = [int(d) for d in p.targetShape][-3:]
    x = xs[0].reshape(len(xs[0]), *xs[0].shape[1:], *(1,) * (4 - xs[0].ndim))
    if p.mode == 0:
        return x.reshape(len(x), *target)
    c, h, w = target
    return x.transpose(0, 2, 3, 1).reshape(len(x), h, w, c).transpose(0, 3, 1, 2)


@NN_LAYERS.register("expandDims")
def _nn_expand_dims(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """Spec 4: unit axes inserted at ``axes`` (negative ones count from the end of the output)."""
    axes = [int(a) for a in layer.expandDims.axes]
    rank = xs[0].ndim + len(axes)
    return np.expand_dims(xs[0], tuple(a % rank for a in axes))


@NN_LAYERS.register("squeeze")
def _nn_squeeze(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """Spec 4: the unit ``axes`` removed (every unit axis with ``squeezeAll``)."""
    p = layer.squeeze
    if p.squeezeAll:
        return np.squeeze(xs[0])
    return np.squeeze(xs[0], axis=tuple(int(a) % xs[0].ndim for a in p.axes))


@NN_LAYERS.register("flattenTo2D")
def _nn_flatten_to_2d(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """Spec 4: the axes before ``axis`` into one, the rest into the other (``torch.flatten(x, 1)``)."""
    x = xs[0]
    k = int(layer.flattenTo2D.axis) % (x.ndim + 1) if x.ndim else 0
    return x.reshape(int(np.prod(x.shape[:k], dtype=np.int64)), -1)


def _comparison(field: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> NNLayer:
    """Spec 4 comparisons: two inputs broadcast, or one input against the layer's ``alpha``; 1.0 where true."""
    def run(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
        other = xs[1] if len(xs) > 1 else np.float32(getattr(layer, field).alpha)
        return fn(xs[0], other).astype(np.float32)
    return run


for _kind, _fn in {"greaterThan": np.greater, "greaterEqual": np.greater_equal, "lessThan": np.less,
                   "lessEqual": np.less_equal, "equal": np.equal, "notEqual": np.not_equal}.items():
    NN_LAYERS.add(_kind, _comparison(_kind, _fn))


@NN_LAYERS.register("whereBroadcastable")
def _nn_where(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """Spec 4: ``xs[1]`` where the condition ``xs[0]`` is non-zero, else ``xs[2]`` (broadcast)."""
    return np.where(xs[0] != 0, xs[1], xs[2]).astype(np.float32)


@NN_LAYERS.register("upsample")
def _nn_upsample(layer: Any, xs: list[np.ndarray]) -> np.ndarray:
    """Spec 1 ``upsample``: nearest-neighbour (mode 0) by integer ``scalingFactor`` (H, W)."""
    p = layer.upsample
    if p.mode != 0 or len(p.fractionalScalingFactor):
        raise UnknownOpError("upsample other than nearest-neighbour by integer factors")
    sh, sw = (list(p.scalingFactor) or [1, 1])
    return upsample_nearest(xs[0], float(sh), float(sw))


@_prepared("innerProduct")
def _nn_inner_product(layer: Any) -> Callable[[list[np.ndarray]], np.ndarray]:
    p = layer.innerProduct
    if p.int8DynamicQuantize:
        raise UnknownOpError("innerProduct with int8DynamicQuantize")
    w = nn_weights(p.weights, (p.outputChannels, p.inputChannels))
    b = nn_weights(p.bias) if p.hasBias else None

    def run(xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        if x.ndim == 4 and x.shape[2:] == (1, 1):  # rank-5 blob (C, 1, 1)
            return linear(x[:, :, 0, 0], w, b)[:, :, None, None]
        return linear(x, w, b)
    return run


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


def compile_neuralnetwork(spec: Any) -> Plan:
    """A NeuralNetwork spec as a :class:`~toolchain.runtimes.coreml.plan.Plan`, built once per artifact.

    Layers without inputs (constants) and layers on constants only run here; weight layers decode their
    weights here (``NN_PREPARED``). A spec-3 (rank-5 mapped) input of shape (C, H, W) gets a batch axis, so
    every blob is (N, C, H, W) or 2-D after a reshape. Unknown layer kinds raise UnknownOpError.
    """
    if spec.WhichOneof("Type") != "neuralNetwork":
        raise UnknownOpError(f"model type {spec.WhichOneof('Type')!r} (only plain neuralNetwork)")
    inputs = {d.name: _input_converter(len(d.type.multiArrayType.shape)) for d in spec.description.input}
    dynamic = set(inputs)
    consts: dict[str, np.ndarray] = {}
    steps: list[Step] = []
    as_blob = lambda v: np.asarray(v, np.float32)  # noqa: E731
    for layer in spec.neuralNetwork.layers:
        kind = layer.WhichOneof("layer")
        if kind not in NN_LAYERS:
            raise UnknownOpError(f"NeuralNetwork layer {kind!r} (layer {layer.name!r})")
        fn = NN_PREPARED[kind](layer) if kind in NN_PREPARED else _bound(NN_LAYERS.get(kind), layer)
        names = list(layer.input)
        if not any(n in dynamic for n in names):
            out = fn([consts[n] for n in names])
            for name, val in zip(layer.output, out if isinstance(out, (list, tuple)) else [out]):
                consts[name] = as_blob(val)
            continue
        reshape_of = names[0] if kind == "reshapeStatic" else None
        steps.append(Step(kind, layer.name, _gather(fn, names), list(layer.output), [as_blob] * len(layer.output),
                          reshape_of))
        dynamic.update(layer.output)
    return Plan(consts, steps, inputs, [d.name for d in spec.description.output])


def _input_converter(rank: int) -> Callable[[np.ndarray], np.ndarray]:
    def convert(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        return x[None] if rank == 3 and x.ndim == 3 else x
    return convert


def _bound(fn: NNLayer, layer: Any) -> Callable[[list[np.ndarray]], np.ndarray]:
    return lambda xs: fn(layer, xs)


def _gather(fn: Callable[[list[np.ndarray]], Any], names: list[str]) -> Callable[[dict[str, Any]], Any]:
    return lambda env: fn([env[n] for n in names])


def run_neuralnetwork(spec: Any, inputs: dict[str, np.ndarray], blobs: dict[str, np.ndarray] | None = None
                      ) -> dict[str, np.ndarray]:
    """Run a NeuralNetwork spec on one sample (a blob per input name). Returns every model output.

    Compiles it first (:func:`compile_neuralnetwork`: use that to run it often). ``blobs``, when given,
    receives every intermediate blob (the spec-3 lowering reads channel counts from it).
    """
    return compile_neuralnetwork(spec).run(inputs, blobs)
