"""Lower a coremltools NeuralNetwork (spec 4, iOS 13) to specification version 3 (iOS 12).

coremltools 9 cannot target below iOS 13, and setting ``specificationVersion = 3`` alone
leaves spec-4 content in the file. What iOS 12 needs (measured, see FINDINGS):

* shape-only layers (``reshapeStatic``, ``rankPreservingReshape``, ``expandDims``, ``squeeze``,
  ``flattenTo2D``) are read from the blob shapes of a numpy run: a flatten to ``(1, D)`` (after pooling, or
  ``x.view(-1, 200)``) becomes ``flatten`` (channel-first), which yields the rank-5 blob ``(D, 1, 1)``; a
  vector's ``(1, D) <-> (1, D, 1, 1)`` (coremltools' wrapping of BatchNorm1d or PReLU on a vector) is the same
  rank-5 blob, so the identity; a batch-1 reshape to ``(1, C, H, W)`` becomes the spec-1 ``reshape``;
* ``loadConstantND`` becomes ``loadConstant`` with the (C, H, W) shape it has against its partner;
* ``clip(lo, hi)`` (ReLU6) becomes ``unary THRESHOLD`` (``max(x, lo)``), ``unary THRESHOLD``
  with scale -1 (``max(-y, -hi) = -min(y, hi)``) and a ``linear`` activation with alpha -1;
  e.g. x = 7 -> 7 -> -6 -> 6, x = -1 -> 0 -> 0 -> 0;
* rank-5 array/image mappings, and the batch axis dropped from the input: ``[3, H, W]``.

Then every layer is checked against the layers that exist in spec 3 (the ``layer`` oneof
fields numbered below 600 in ``NeuralNetwork.proto``; 600 and up arrived with iOS 13), and
a few spec-4-only options inside otherwise old layers. Anything left raises
:class:`~toolchain.errors.UnsupportedLayerError` naming the layer.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from toolchain.errors import UnsupportedLayerError

log = logging.getLogger(__name__)

SPEC3 = 3
#: In NeuralNetwork.proto every layer with a field number >= 600 is spec 4 (iOS 13) or newer.
FIRST_SPEC4_LAYER_FIELD = 600


def spec3_layer_kinds() -> frozenset[str]:
    """Names of the NeuralNetwork layer kinds that exist in specification version 3."""
    from coremltools.proto import NeuralNetwork_pb2

    oneof = NeuralNetwork_pb2.NeuralNetworkLayer.DESCRIPTOR.oneofs_by_name["layer"]
    return frozenset(f.name for f in oneof.fields if f.number < FIRST_SPEC4_LAYER_FIELD)


def _spec4_options(layer: Any) -> str | None:
    """A spec-4+ option inside a layer kind that itself exists in spec 3, or None."""
    kind = layer.WhichOneof("layer")
    if kind == "innerProduct" and layer.innerProduct.int8DynamicQuantize:
        return "innerProduct with int8DynamicQuantize (spec 5)"
    if kind == "convolution" and len(layer.input) > 1:
        return "convolution with weights as a second input (spec 4)"
    if kind == "batchnorm" and len(layer.input) > 1:
        return "batchnorm with more than one input"
    return None


def _rewrite_reshape(layer: Any) -> list[Any]:
    """``reshapeStatic`` to (1, D) or (-1, D) without blob shapes: the flatten after pooling (``flatten``)."""
    from coremltools.proto import NeuralNetwork_pb2

    target = list(layer.reshapeStatic.targetShape)
    if len(target) != 2 or target[0] not in (1, -1):
        raise UnsupportedLayerError(
            f"layer {layer.name!r}: reshapeStatic to {target} has no spec-3 equivalent "
            "(only a flatten to (1, D) is lowered); export for iOS 13+ instead")
    new = NeuralNetwork_pb2.NeuralNetworkLayer(name=layer.name, input=list(layer.input), output=list(layer.output))
    new.flatten.mode = NeuralNetwork_pb2.FlattenLayerParams.CHANNEL_FIRST
    return [new]


def channel_vector(shape: tuple[int, ...]) -> bool:
    """A batch-1 blob whose only non-unit axis is the channel: (1, D), (1, D, 1), (1, D, 1, 1).

    In spec 3's rank-5 mapping all of these are the same blob, (D, 1, 1).

    >>> channel_vector((1, 512)), channel_vector((1, 512, 1, 1)), channel_vector((1, 8, 7, 7))
    (True, True, False)
    """
    return len(shape) >= 2 and shape[0] == 1 and all(d == 1 for d in shape[2:])


#: spec-4 layers that only change a blob's shape (coremltools wraps a BatchNorm1d or a PReLU on a vector in
#: expandDims/squeeze, and ``x.view(-1, D)`` is a reshapeStatic)
SHAPE_ONLY = ("reshapeStatic", "rankPreservingReshape", "expandDims", "squeeze", "flattenTo2D")


def _rewrite_shape_only(layer: Any, shapes: dict[str, tuple[int, ...]]) -> list[Any]:
    """A shape-only spec-4 layer in rank-5 terms, from its input and output shapes (batch 1):

    * a channel vector to a channel vector ((1, D) <-> (1, D, 1, 1)): the same (D, 1, 1) blob, so the identity
      ``linear`` activation;
    * (1, C, H, W) to (1, C*H*W) (``torch.flatten(x, 1)``, ``x.view(-1, 200)``): ``flatten`` channel-first;
    * anything of batch 1 to (1, C, H, W): the spec-1 ``reshape`` to (C, H, W), channel-first.

    Anything else (a batch axis that changes, rank-3 blobs that are not vectors) is refused by name.
    E.g. (1, 8, 5, 5) -> (1, 200) becomes ``flatten``; (1, 512) -> (1, 512, 1) becomes the identity.
    """
    from coremltools.proto import NeuralNetwork_pb2 as pb

    kind = layer.WhichOneof("layer")
    src, dst = shapes.get(layer.input[0]), shapes.get(layer.output[0])
    if src is None or dst is None:
        if kind == "reshapeStatic":
            return _rewrite_reshape(layer)
        raise UnsupportedLayerError(f"layer {layer.name!r}: {kind} cannot be lowered to spec 3 without the blob "
                                    "shapes (the numpy executor could not run the network); export for iOS 13+")
    new = pb.NeuralNetworkLayer(name=layer.name, input=list(layer.input), output=list(layer.output))
    if len(dst) == 2 and dst[0] == 1 and len(src) in (2, 4) and src[0] == 1:
        new.flatten.mode = pb.FlattenLayerParams.CHANNEL_FIRST
    elif channel_vector(src) and channel_vector(dst) and src[1] == dst[1]:
        new.activation.linear.alpha, new.activation.linear.beta = 1.0, 0.0
    elif len(dst) == 4 and dst[0] == 1 and src[0] == 1 and len(src) in (2, 4):
        new.reshape.targetShape.extend([int(d) for d in dst[1:]])
        new.reshape.mode = pb.ReshapeLayerParams.CHANNEL_FIRST
    else:
        raise UnsupportedLayerError(f"layer {layer.name!r}: {kind} from {list(src)} to {list(dst)} has no spec-3 "
                                    "equivalent (only vectors, flattens and batch-1 reshapes to (1, C, H, W)); "
                                    "export for iOS 13+ instead")
    return [new]


#: spec-1 layers whose inputs broadcast elementwise (where a loadConstantND usually goes)
ELEMENTWISE = ("add", "multiply", "max", "min", "average")


def _rewrite_load_constant_nd(layer: Any, shapes: dict[str, tuple[int, ...]], consumers: dict[str, list[Any]]) -> list[Any]:
    """``loadConstantND`` (spec 4) -> ``loadConstant`` (spec 1) with a rank-5 (C, H, W) shape.

    A constant broadcasts against its partner's trailing axes (numpy rules), so its (C, H, W) shape is its
    own shape padded with leading 1s to the partner's rank: against a vector (1, D) a (D,) constant is (D, 1, 1);
    against (1, C, H, W) a (C, 1, 1) stays (C, 1, 1). Spec 1 broadcasts (1, 1, 1), (C, 1, 1), (1, H, W) and
    (C, H, W) only; every other case, or a constant whose users are not elementwise layers, is refused by name.
    """
    from coremltools.proto import NeuralNetwork_pb2 as pb

    name, shape = layer.output[0], tuple(int(d) for d in layer.loadConstantND.shape)
    partners: list[tuple[int, ...]] = []
    for user in consumers.get(name, []):
        kind = user.WhichOneof("layer")
        others = [shapes.get(n) for n in user.input if n != name]
        if kind not in ELEMENTWISE or not others or any(p is None for p in others):
            raise UnsupportedLayerError(f"layer {layer.name!r}: loadConstantND {list(shape)} used by {kind} "
                                        f"{user.name!r} has no spec-3 equivalent; export for iOS 13+ instead")
        partners += others  # type: ignore[arg-type]
    rank = max([len(p) for p in partners] + [len(shape)])
    full = (1,) * (rank - len(shape)) + shape
    chw: tuple[int, ...] = ()
    if rank == 2 and full[0] == 1:  # against (1, D): the channel
        chw = (full[1], 1, 1)
    elif rank == 4 and full[0] == 1 and (full[2:] == (1, 1) or all(full[2:] == p[2:] for p in partners)):
        chw = full[1:]
    if not chw:
        raise UnsupportedLayerError(f"layer {layer.name!r}: loadConstantND {list(shape)} (against rank {rank}) has "
                                    "no spec-3 equivalent; export for iOS 13+ instead")
    new = pb.NeuralNetworkLayer(name=layer.name, input=[], output=list(layer.output))
    new.loadConstant.shape.extend([int(v) for v in chw])
    new.loadConstant.data.CopyFrom(layer.loadConstantND.data)
    return [new]


def _rewrite_clip(layer: Any) -> list[Any]:
    from coremltools.proto import NeuralNetwork_pb2 as pb

    lo, hi = layer.clip.minVal, layer.clip.maxVal
    a, b = f"{layer.name}__spec3_max_lo", f"{layer.name}__spec3_neg_min_hi"
    first = pb.NeuralNetworkLayer(name=f"{layer.name}__max_lo", input=list(layer.input), output=[a])
    first.unary.type, first.unary.alpha, first.unary.scale, first.unary.shift = pb.UnaryFunctionLayerParams.THRESHOLD, lo, 1.0, 0.0
    second = pb.NeuralNetworkLayer(name=f"{layer.name}__neg_min_hi", input=[a], output=[b])
    second.unary.type, second.unary.alpha, second.unary.scale, second.unary.shift = pb.UnaryFunctionLayerParams.THRESHOLD, -hi, -1.0, 0.0
    third = pb.NeuralNetworkLayer(name=layer.name, input=[b], output=list(layer.output))
    third.activation.linear.alpha, third.activation.linear.beta = -1.0, 0.0
    return [first, second, third]


def _rewrite_reduce_mean(layer: Any) -> list[Any]:
    """``reduceMean`` over (H, W) of a rank-4 blob -> global average ``pooling`` (the spec-3 layer).

    With the rank-5 mapping both give the per-channel mean as a (C, 1, 1) blob; ``keepDims`` only changes
    the rank a spec-4 model records, which spec 3 does not have.
    """
    from coremltools.proto import NeuralNetwork_pb2 as pb

    p = layer.reduceMean
    rank = layer.inputTensor[0].rank if len(layer.inputTensor) else 4
    axes = sorted(int(a) % 4 for a in p.axes)
    if p.reduceAll or axes != [2, 3] or rank != 4:
        raise UnsupportedLayerError(
            f"layer {layer.name!r}: reduceMean over axes {list(p.axes)} has no spec-3 equivalent "
            "(only the spatial mean, a global average pool, is lowered); export for iOS 13+ instead")
    new = pb.NeuralNetworkLayer(name=layer.name, input=list(layer.input), output=list(layer.output))
    new.pooling.type = pb.PoolingLayerParams.AVERAGE
    new.pooling.globalPooling = True
    new.pooling.valid.SetInParent()
    return [new]


def _rewrite_copy(layer: Any) -> list[Any]:
    """``copy`` (spec 4; DenseNet's concatenation inputs) -> the identity ``linear`` activation (alpha 1, beta 0)."""
    from coremltools.proto import NeuralNetwork_pb2 as pb

    new = pb.NeuralNetworkLayer(name=layer.name, input=list(layer.input), output=list(layer.output))
    new.activation.linear.alpha, new.activation.linear.beta = 1.0, 0.0
    return [new]


def _rewrite_split_nd(layer: Any) -> list[Any]:
    """``splitND`` into equal parts along the channel axis -> the spec-1 ``split`` layer."""
    from coremltools.proto import NeuralNetwork_pb2 as pb

    p = layer.splitND
    rank = layer.inputTensor[0].rank if len(layer.inputTensor) else 4
    if int(p.axis) % rank != 1 or rank != 4 or len(p.splitSizes):
        raise UnsupportedLayerError(f"layer {layer.name!r}: splitND (axis {p.axis}, sizes {list(p.splitSizes)}) has "
                                    "no spec-3 equivalent (only equal channel splits); export for iOS 13+ instead")
    new = pb.NeuralNetworkLayer(name=layer.name, input=list(layer.input), output=list(layer.output))
    new.split.nOutputs = len(layer.output)
    return [new]


def _rewrite_concat_nd(layer: Any, shapes: dict[str, tuple[int, ...]]) -> list[Any]:
    """``concatND`` along channels -> spec-1 ``concat``; with ``interleave`` (ShuffleNet's channel shuffle,
    spec 5) a 1x1 ``convolution`` whose weights are the shuffle's permutation follows (0/1 weights: exact).

    Interleaving K inputs of C channels puts input i's channel j at j*K + i; after a plain concat it sits
    at i*C + j, so W[j*K + i, i*C + j] = 1. E.g. K = 2, C = 2: [a0 a1 b0 b1] -> [a0 b0 a1 b1].
    """
    import numpy as np
    from coremltools.proto import NeuralNetwork_pb2 as pb

    p = layer.concatND
    rank = layer.inputTensor[0].rank if len(layer.inputTensor) else 4
    if int(p.axis) % rank != 1 or rank != 4:
        raise UnsupportedLayerError(f"layer {layer.name!r}: concatND along axis {p.axis} has no spec-3 equivalent "
                                    "(only channel concatenation); export for iOS 13+ instead")
    if not p.interleave:
        new = pb.NeuralNetworkLayer(name=layer.name, input=list(layer.input), output=list(layer.output))
        new.concat.sequenceConcat = False
        return [new]
    chans = [shapes[name][1] for name in layer.input] if all(n in shapes for n in layer.input) else []
    if not chans or len(set(chans)) != 1:
        raise UnsupportedLayerError(f"layer {layer.name!r}: interleaved concatND of inputs with channels {chans or '?'} "
                                    "cannot be lowered to spec 3; export for iOS 13+ instead")
    k, c = len(chans), chans[0]
    w = np.zeros((k * c, k * c), np.float32)
    for i in range(k):
        for j in range(c):
            w[j * k + i, i * c + j] = 1.0
    mid = f"{layer.name}__spec3_concat"
    cat = pb.NeuralNetworkLayer(name=f"{layer.name}__concat", input=list(layer.input), output=[mid])
    cat.concat.sequenceConcat = False
    conv = pb.NeuralNetworkLayer(name=layer.name, input=[mid], output=list(layer.output))
    cp = conv.convolution
    cp.outputChannels, cp.kernelChannels, cp.nGroups = k * c, k * c, 1
    cp.kernelSize.extend([1, 1])
    cp.stride.extend([1, 1])
    cp.dilationFactor.extend([1, 1])
    cp.valid.SetInParent()
    cp.hasBias = False
    cp.weights.floatValue.extend(w.reshape(-1).tolist())
    return [cat, conv]


#: spec-4 layer kinds whose rewrite needs the blobs' shapes (from a numpy run of the spec on zeros)
SHAPED_REWRITES = {"concatND": _rewrite_concat_nd, **{k: _rewrite_shape_only for k in SHAPE_ONLY}}
#: ... and the layers that read each blob
CONSUMER_REWRITES = {"loadConstantND": _rewrite_load_constant_nd}

#: spec-4 layer kind -> rewrite into spec-3 layers
REWRITES = {"clip": _rewrite_clip, "reduceMean": _rewrite_reduce_mean, "copy": _rewrite_copy,
            "splitND": _rewrite_split_nd}


def check_spec3(spec: Any) -> None:
    """Raise UnsupportedLayerError naming every layer that does not exist in spec 3."""
    allowed = spec3_layer_kinds()
    bad: list[str] = []
    for layer in spec.neuralNetwork.layers:
        kind = layer.WhichOneof("layer")
        if kind not in allowed:
            bad.append(f"{kind} (layer {layer.name!r})")
        elif (why := _spec4_options(layer)) is not None:
            bad.append(f"{why} (layer {layer.name!r})")
    if bad:
        raise UnsupportedLayerError(
            "iOS 12 (Core ML spec 3) has no equivalent for: " + ", ".join(bad)
            + ". Export for iOS 13+ (--min-ios 13) or change the architecture.")


def _blob_shapes(spec: Any) -> dict[str, tuple[int, ...]]:
    """Every blob's shape, from a numpy run of the (spec-4/5) network on zeros; {} when it cannot run."""
    import numpy as np

    from toolchain.runtimes.coreml.kernels import UnknownOpError
    from toolchain.runtimes.coreml.neuralnetwork import run_neuralnetwork

    feeds = {d.name: np.zeros([int(v) for v in d.type.multiArrayType.shape], np.float32) for d in spec.description.input}
    blobs: dict[str, Any] = {}
    try:
        run_neuralnetwork(spec, feeds, blobs)
    except UnknownOpError:
        return {}
    return {k: tuple(v.shape) for k, v in blobs.items()}


def lower_to_spec3(spec: Any, feature_dim: int) -> dict[str, Any]:
    """Rewrite a spec-4 NeuralNetwork ``spec`` in place to spec 3. Returns what was rewritten.

    Args:
        spec: a ``Model_pb2.Model`` holding a ``neuralNetwork`` with one (1, C, H, W) input.
        feature_dim: D, the length of the output ``features`` (declared as shape ``[D]``).
    """
    if spec.WhichOneof("Type") != "neuralNetwork":
        raise UnsupportedLayerError(f"only a plain NeuralNetwork can be lowered to spec 3, not {spec.WhichOneof('Type')}")
    nn = spec.neuralNetwork
    rewritten: Counter[str] = Counter()
    layers = []
    shapes: dict[str, tuple[int, ...]] = {}
    if any(layer.WhichOneof("layer") in SHAPED_REWRITES or layer.WhichOneof("layer") in CONSUMER_REWRITES
           for layer in nn.layers):
        shapes = _blob_shapes(spec)
    consumers: dict[str, list[Any]] = {}
    for layer in nn.layers:
        for name in layer.input:
            consumers.setdefault(name, []).append(layer)
    for layer in nn.layers:
        kind = layer.WhichOneof("layer")
        if kind in CONSUMER_REWRITES:
            layers += CONSUMER_REWRITES[kind](layer, shapes, consumers)
            rewritten[kind] += 1
        elif kind in REWRITES:
            layers += REWRITES[kind](layer)
            rewritten[kind] += 1
        elif kind in SHAPED_REWRITES:
            layers += SHAPED_REWRITES[kind](layer, shapes)
            rewritten[kind] += 1
        else:
            layers.append(layer)
    new_layers: list[Any] = []
    for layer in layers:
        copy = type(layer)()
        copy.CopyFrom(layer)
        copy.ClearField("inputTensor")  # rank annotations are spec 4
        copy.ClearField("outputTensor")
        new_layers.append(copy)
    del nn.layers[:]
    nn.layers.extend(new_layers)
    check_spec3(spec)
    nn.arrayInputShapeMapping = 0  # RANK5_ARRAY_MAPPING: the only one spec 3 knows
    nn.imageInputShapeMapping = 0  # RANK5_IMAGE_MAPPING
    for inp in spec.description.input:
        arr = inp.type.multiArrayType
        shape = list(arr.shape)
        if len(shape) == 4 and shape[0] == 1:
            del arr.shape[:]
            arr.shape.extend(shape[1:])  # (C, H, W): the batch is implicit in rank-5 mapping
        arr.ClearField("ShapeFlexibility")
    for out in spec.description.output:
        arr = out.type.multiArrayType
        del arr.shape[:]
        arr.shape.append(int(feature_dim))
    spec.isUpdatable = False
    spec.specificationVersion = SPEC3
    log.info("lowered to spec 3: %s", dict(rewritten))
    return {"rewritten": dict(rewritten)}
