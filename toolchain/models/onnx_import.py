"""ONNX -> PyTorch with onnx2torch, and the same graph run by ONNX Runtime for the import's parity check.

Why onnx2torch (1.5.15, ENOT-AutoDL): it builds a ``torch.fx.GraphModule`` of ordinary modules, which
``torch.jit.trace`` (Core ML) and ``torch.export`` (TFLite, ONNX) both take, so an imported ONNX file goes
through every exporter like any bundle. Measured here (onnx 1.23, torch 2.14, offline, 8 torchvision
families exported by both torch exporters): onnx2pytorch 0.6.0 converts opset 18 out of the box but its
``ConvertModel`` interprets the graph in Python with data-dependent shapes — ``torch.export`` failed on
every model and ``jit.trace`` on its module names; onnx2torch2 2.2.0 has onnx2torch's gaps. onnx2torch's
gaps are small and fixed here by registering converters through its own ``add_converter`` registry:

* opset 18 moved ``axes`` of ReduceMean/Max/Min/Prod/... to an input, and Split gained ``num_outputs``:
  converters for those versions (constant ``axes``/``split`` only, what exporters write);
* ``Reshape`` with a constant shape (and ``allowzero=1``, which torch's exporter sets, when the shape has
  no 0) and ``Slice`` with constant bounds become static modules, so ``torch.export`` sees plain ints
  instead of data-dependent tensor values.

Before conversion onnxscript's optimizer (a core dependency) folds constants, which removes the
``Identity``-of-initializer nodes torch's legacy exporter writes (onnx2torch reads those as inputs).

Example: a ResNet18 ONNX file whose output comes from ``Gemm(flatten, fc.weight, fc.bias)`` has
classifier node ``/fc/Gemm`` and feature value ``/Flatten_output_0``; the bundle's graph ends there.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from toolchain.errors import ImportModelError

log = logging.getLogger(__name__)
_REGISTERED = False
REDUCE_OPS = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp")


class StaticReshape(nn.Module):
    """``Reshape`` to a shape known at conversion time (ONNX 0 = keep that input dimension)."""

    def __init__(self, shape: list[int]) -> None:
        super().__init__()
        self.shape = tuple(int(v) for v in shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.reshape(x, [x.shape[i] if d == 0 else d for i, d in enumerate(self.shape)])


class StaticSlice(nn.Module):
    """``Slice`` with constant starts/ends/axes/steps, as Python slices."""

    def __init__(self, starts: list[int], ends: list[int], axes: list[int], steps: list[int]) -> None:
        super().__init__()
        self.spec = [(int(a), int(s), int(e), int(st)) for s, e, a, st in zip(starts, ends, axes, steps)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index: list[Any] = [slice(None)] * x.dim()
        for axis, start, end, step in self.spec:
            if step < 0:
                raise NotImplementedError("Slice with a negative step")
            big = 2 ** 62
            index[axis] = slice(start, None if end >= big else end, step)
        return x[tuple(index)]


def _const(node: Any, graph: Any, i: int) -> list[int] | None:
    if len(node.input_values) <= i or not node.input_values[i]:
        return None
    name = node.input_values[i]
    if name not in graph.initializers:
        raise NotImplementedError(f"{node.operation_type} with a computed input {i} ({name})")
    return [int(v) for v in graph.initializers[name].to_torch().reshape(-1).tolist()]


def register() -> None:
    """Add the converters above to onnx2torch's registry (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from onnx2torch.node_converters import registry
    from onnx2torch.node_converters.reduce import OnnxReduceStaticAxes
    from onnx2torch.node_converters.reshape import OnnxReshape
    from onnx2torch.node_converters.split import OnnxSplit
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult, onnx_mapping_from_node

    def first_only(node: Any) -> Any:
        return OnnxMapping(inputs=(node.input_values[0],), outputs=node.output_values)

    def reduce18(node: Any, graph: Any) -> Any:
        axes = _const(node, graph, 1)
        if not axes and node.attributes.get("noop_with_empty_axes", 0):
            raise NotImplementedError(f"{node.operation_type} with noop_with_empty_axes=1")
        return OperationConverterResult(
            torch_module=OnnxReduceStaticAxes(operation_type=node.operation_type, axes=axes or None,
                                              keepdims=node.attributes.get("keepdims", 1)),
            onnx_mapping=first_only(node))

    def split18(node: Any, graph: Any) -> Any:
        return OperationConverterResult(
            torch_module=OnnxSplit(axis=node.attributes.get("axis", 0), split=_const(node, graph, 1),
                                   num_splits=len(node.output_values)),
            onnx_mapping=first_only(node))

    def reshape(node: Any, graph: Any) -> Any:
        if node.input_values[1] in graph.initializers:
            shape = _const(node, graph, 1) or []
            if node.attributes.get("allowzero", 0) and 0 in shape:
                raise NotImplementedError("Reshape with allowzero=1 and a 0 in its shape")
            return OperationConverterResult(torch_module=StaticReshape(shape), onnx_mapping=first_only(node))
        if node.attributes.get("allowzero", 0):
            raise NotImplementedError("Reshape with allowzero=1 and a computed shape")
        return OperationConverterResult(torch_module=OnnxReshape(), onnx_mapping=onnx_mapping_from_node(node))

    def slice_(node: Any, graph: Any) -> Any:
        names = node.input_values[1:]
        if all(n in graph.initializers for n in names if n):
            starts, ends = _const(node, graph, 1), _const(node, graph, 2)
            axes = _const(node, graph, 3) or list(range(len(starts or [])))
            steps = _const(node, graph, 4) or [1] * len(starts or [])
            return OperationConverterResult(torch_module=StaticSlice(starts, ends, axes, steps),
                                            onnx_mapping=first_only(node))
        return original_slice(node, graph)

    desc = registry.OperationDescription
    table = registry._CONVERTER_REGISTRY  # noqa: SLF001 - onnx2torch's registry; add_converter refuses overrides
    for op in REDUCE_OPS:
        table[desc(domain="", operation_type=op, version=18)] = reduce18
    table[desc(domain="", operation_type="Split", version=18)] = split18
    for v in (5, 13, 14, 19, 21):
        table[desc(domain="", operation_type="Reshape", version=v)] = reshape
    original_slice = table[desc(domain="", operation_type="Slice", version=13)]
    for v in (10, 11, 13):
        table[desc(domain="", operation_type="Slice", version=v)] = slice_
    _REGISTERED = True


@dataclass
class OnnxHead:
    """Where the features are in an ONNX graph, and the classifier that was cut off (if any)."""

    feature_value: str | None  # None: the graph's own output is the feature
    head_node: str | None = None
    num_classes: int | None = None


def load(path: str | Path) -> Any:
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ImportModelError(f"ONNX file {path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - protobuf decode errors have several types
        raise ImportModelError(f"{path} is not a readable ONNX model ({type(e).__name__}: {e})") from None
    if len(model.graph.input) - len({i.name for i in model.graph.initializer} & {i.name for i in model.graph.input}) != 1:
        raise ImportModelError(f"{path.name} has more than one input; a feature extractor takes one image tensor")
    check_graph(model, path.name)
    return model


def check_graph(model: Any, source: str) -> None:
    """Bounds before any allocation or conversion: every initializer's declared shape within
    :data:`~toolchain.bounds.MAX_TENSOR_ELEMENTS` and matching its data, the input's spatial size within the
    input-size range, and the graph acyclic with every value produced before use.

    Why: an initializer claiming 10^9 or 10^18 elements crashed shape inference, an input of 100000x100000 was
    allocated, and a cycle raised ``KeyError`` inside onnx2torch; each is now one :class:`ImportModelError`.
    """
    from toolchain.bounds import INPUT_SIZE_PX, check_elements

    for t in model.graph.initializer:
        n = check_elements(t.dims, f"{source}: initializer {t.name!r}", error=ImportModelError)
        if t.data_location == 0 and t.data_type in _ITEM_BYTES:
            held = (len(t.raw_data) // _ITEM_BYTES[t.data_type] if t.raw_data else
                    max(len(t.float_data), len(t.int32_data), len(t.int64_data), len(t.double_data), len(t.uint64_data)))
            if held != n:
                raise ImportModelError(f"{source}: initializer {t.name!r} claims shape {list(t.dims)} but holds "
                                       f"{held} element(s) of data; the file is damaged or forged")
    shape = input_shape(model)
    for d in shape[2:]:
        if d is not None and not INPUT_SIZE_PX[0] <= d <= INPUT_SIZE_PX[1]:
            raise ImportModelError(f"{source}: input shape {shape} has a side of {d} px; allowed: "
                                   f"[{INPUT_SIZE_PX[0]}, {INPUT_SIZE_PX[1]}] (give a file exported at a smaller size)")
    known = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    for node in model.graph.node:  # ONNX requires topological order; a cycle cannot be written in that order
        for name in node.input:
            if name not in known:
                raise ImportModelError(f"{source}: node {node.name or node.op_type!r} reads {name!r} before any "
                                       "node computes it (a cycle, or nodes out of order); not a valid ONNX graph")
        known.update(node.output)
    for out in model.graph.output:
        if out.name not in known:
            raise ImportModelError(f"{source}: graph output {out.name!r} is computed by no node")


#: Bytes per element of the ONNX tensor types whose raw data a forged shape could disagree with.
_ITEM_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}


def input_shape(model: Any) -> list[int | None]:
    inits = {i.name for i in model.graph.initializer}
    inp = next(i for i in model.graph.input if i.name not in inits)
    dims = inp.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def find_head(model: Any, head_name: str | None = None, feature_value: str | None = None) -> OnnxHead:
    """The classifier: ``--head-name`` (a node name; ``none`` keeps the graph whole), or the node computing
    the graph's output when it is a ``Gemm`` or ``MatMul`` (+ ``Add``); ``--feature-layer`` names a value."""
    from onnx import numpy_helper

    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    if feature_value is not None:
        if feature_value not in producer:
            raise ImportModelError(f"--feature-layer {feature_value!r} is not a value of this ONNX graph; "
                                   f"e.g. {', '.join(list(producer)[-5:])}")
        return OnnxHead(feature_value)
    if head_name == "none":
        return OnnxHead(None)

    def classes(node: Any) -> int | None:
        w = next((inits[i] for i in node.input[1:2] if i in inits), None)
        if w is None:
            return None
        shape = numpy_helper.to_array(w).shape
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return int(shape[0] if trans_b else shape[-1])

    if head_name is not None:
        node = next((n for n in nodes if n.name == head_name), None)
        if node is None:
            raise ImportModelError(f"--head-name {head_name!r} is not a node of this ONNX graph; "
                                   f"its last nodes: {', '.join(n.name for n in nodes[-5:])}")
        return OnnxHead(node.input[0], node.name, classes(node) if node.op_type in ("Gemm", "MatMul") else None)
    last = producer.get(model.graph.output[0].name)
    if last is not None and last.op_type == "Add":
        mm = next((producer[i] for i in last.input if i in producer and producer[i].op_type == "MatMul"), None)
        if mm is not None:
            return OnnxHead(mm.input[0], mm.name, classes(mm))
    if last is not None and last.op_type in ("Gemm", "MatMul"):
        return OnnxHead(last.input[0], last.name, classes(last))
    return OnnxHead(None)


def truncated(model: Any, feature_value: str | None) -> Any:
    """The graph up to ``feature_value`` (the classifier and anything after it gone)."""
    if feature_value is None:
        return model
    import onnx
    from onnx.utils import Extractor

    inits = {i.name for i in model.graph.initializer}
    inp = [i.name for i in model.graph.input if i.name not in inits]
    inferred = onnx.shape_inference.infer_shapes(model)
    return Extractor(inferred).extract_model(inp, [feature_value])


def graph_outputs(model: Any) -> list[tuple[str, list[int | None]]]:
    """(name, shape) of every output of the graph (None for a dimension the file leaves open)."""
    return [(o.name, [d.dim_value if d.HasField("dim_value") else None for d in o.type.tensor_type.shape.dim])
            for o in model.graph.output]


def _shapes(outs: list[tuple[str, list[int | None]]]) -> str:
    return ", ".join(f"{i}: {name!r} {['?' if d is None else d for d in shape]}" for i, (name, shape) in enumerate(outs))


def choose_output(model: Any, source: str, output: str | int | None, cut: bool) -> str | None:
    """``--output`` -> the graph output taken as it is (never pooled); None: the usual head search.

    Without ``--output`` (and without ``--head-name``/``--feature-layer``, ``cut``), a graph with several outputs or
    a map output is refused with their shapes: pooling a detector's or segmenter's map into a "feature" (of
    dimension 1 for a one-channel map, whose cosine is always 1) would pass any check and mean nothing."""
    outs = graph_outputs(model)
    if output is None:
        if cut:
            return None
        if len(outs) > 1:
            raise ImportModelError(f"{source} returns {len(outs)} outputs ({_shapes(outs)}); pick the feature "
                                   "with --output NAME|INDEX")
        shape = outs[0][1]
        if len(shape) > 2 and any(d != 1 for d in shape[2:]):
            raise ImportModelError(f"{source} returns a map ({_shapes(outs)}), not one feature vector per image; "
                                   "--output 0 takes it as it is (compared as a map, over all its values), or "
                                   "--feature-layer VALUE takes a pooled inner value")
        return None
    if cut:
        raise ImportModelError("--output picks a graph output as it is; leave out --head-name and --feature-layer")
    names = [name for name, _ in outs]
    if isinstance(output, int):
        if output >= len(outs):
            raise ImportModelError(f"{source} has no output {output}; it returns {_shapes(outs)}")
        return names[output]
    if output not in names:
        raise ImportModelError(f"{source} has no output {output!r}; it returns {_shapes(outs)}")
    return output


def to_torch(path: str | Path, feature_value: str | None = None, pool: bool = True) -> nn.Module:
    """ONNX file -> an eval-mode module computing the (global-pooled; ``pool=False``: as they are) features."""
    import onnx2torch
    import onnxscript.optimizer

    from toolchain.models.feature_head import GlobalAvgPool

    register()
    model = truncated(load(path), feature_value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = onnxscript.optimizer.optimize(model)
        try:
            gm = onnx2torch.convert(model)
        except NotImplementedError as e:
            raise ImportModelError(f"onnx2torch cannot convert {Path(path).name}: {e}. Re-export the model "
                                   "with torch.onnx.export(..., dynamo=True) (opset 18), or import its PyTorch "
                                   "weights with --arch") from None
    return (nn.Sequential(gm, GlobalAvgPool()) if pool else gm).eval()


def ort_features(path: str | Path, feature_value: str | None, x: np.ndarray, pool: bool = True) -> tuple[np.ndarray, str]:
    """ONNX Runtime on the original file, with ``feature_value`` added as an output; globally pooled unless
    ``pool`` is False (a map picked with ``--output``, compared as a map)."""
    import onnx
    import onnxruntime as ort

    from toolchain.runtimes.onnxruntime import inference_session

    model = load(path)
    out_name = feature_value or model.graph.output[0].name
    if feature_value is not None and feature_value not in {o.name for o in model.graph.output}:
        model.graph.output.append(onnx.ValueInfoProto(name=feature_value))
    sess = inference_session(model.SerializeToString())
    name = sess.get_inputs()[0].name
    outs = [sess.run([out_name], {name: x[i:i + 1].astype(np.float32)})[0] for i in range(len(x))]
    y = np.concatenate(outs)
    if not pool:
        return y, f"onnxruntime {ort.__version__}"
    if y.ndim == 4:
        y = y.mean(axis=(2, 3))
    elif y.ndim == 3:
        y = y.mean(axis=1)
    return y.reshape(len(x), -1), f"onnxruntime {ort.__version__}"
