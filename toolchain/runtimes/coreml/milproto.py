"""An ML Program's MIL, read from its protobuf into a small neutral form the executor compiles.

Why not coremltools' loader (``coremltools/converters/mil/frontend/milproto/load.py``): it rebuilds a whole
PyMIL ``Program`` through the op builder and needs ``import coremltools`` (torch and more, ~16 s on the
project's machine). The executor only needs, per op: its type, its inputs (a reference to another value by
name, or a constant as numpy), its outputs' names and dtypes. This module reads exactly that, following
``load.py``'s rules:

* a function's block is ``block_specializations[function.opset]``; its ``outputs`` name the results;
* an op's input binding is a ``name`` (a reference) or a ``value`` (a constant), one or several per input;
* ``const`` and ``constexpr_*`` ops also take their attributes as inputs (``val`` for const; iOS16 constexpr
  ops keep their tensors there), other ops only carry a ``name`` attribute (``_load_operation``);
* a value is immediate (``_load_immediate_value``: floats / ints / bools / strings / longInts / doubles, or
  ``bytes`` for fp16, int8, uint8, uint32 and the packed sub-byte types, ``_restore_np_from_bytes_value``) or
  a ``blobFileValue`` in the package's weights folder (``_load_file_value``, read by :mod:`.milblob`);
* scalars (rank 0) become numpy scalars, a string scalar a ``str``.

:func:`from_pymil` gives the same form from a coremltools ``Program`` (the oracle the tests compare with).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import ArtifactError
from toolchain.runtimes.coreml.kernels import UnknownOpError
from toolchain.runtimes.coreml.milblob import BlobFile, unpack_lsb_first

#: MIL.proto DataType -> numpy, for the dtypes the executor emulates (others: None, values kept as read)
DATATYPES: dict[int, Any] = {10: np.float16, 11: np.float32, 12: np.float64, 21: np.int8, 22: np.int16,
                             23: np.int32, 24: np.int64, 31: np.uint8, 32: np.uint16, 33: np.uint32, 1: np.bool_}
#: packed sub-byte DataTypes -> (bits, signed); their values are unpacked to one uint8 / int8 per element
SUB_BYTE: dict[int, tuple[int, bool]] = {25: (4, True), 35: (4, False), 36: (2, False), 37: (1, False),
                                         38: (6, False), 39: (3, False)}
#: op inputs that are tuples in the MIL op definitions even with one element (``TupleInputType``)
TUPLE_INPUTS = {("concat", "values"), ("stack", "values"), ("einsum", "values")}
#: names of the executor's MIL dtypes (mlprogram._DTYPES keys), for :func:`from_pymil`
_DTYPE_NAMES = {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64, "int32": np.int32, "int64": np.int64,
                "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "bool": np.bool_}


@dataclass(frozen=True)
class Ref:
    """An op input that is another op's output (or a function input), by name."""

    name: str


@dataclass
class MilOp:
    type: str
    name: str
    inputs: dict[str, Any]  # Ref, a constant (numpy / str), or a list of those
    outputs: list[tuple[str, Any]]  # (name, numpy dtype or None)


@dataclass
class MilFunction:
    inputs: dict[str, Any]  # name -> numpy dtype (or None)
    ops: list[MilOp] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def read_mlpackage(path: str | Path) -> tuple[Any, dict[str, MilFunction]]:
    """(spec, functions) of a saved ``.mlpackage``: its ``Manifest.json`` names the model file and the
    weights folder (the items named ``model.mlmodel``'s root entry and ``weights``)."""
    from toolchain.runtimes.coreml import proto

    path = Path(path)
    try:
        manifest = json.loads((path / "Manifest.json").read_text())
        items = manifest["itemInfoEntries"]
        model_file = path / "Data" / items[manifest["rootModelIdentifier"]]["path"]
        weights = next((path / "Data" / e["path"] for e in items.values() if e.get("name") == "weights"), None)
        spec = proto.parse_model(model_file.read_bytes(), str(model_file))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ArtifactError(f"{path} is not a readable .mlpackage: {type(e).__name__}: {e}") from None
    if spec.WhichOneof("Type") != "mlProgram":
        raise UnknownOpError(f"model type {spec.WhichOneof('Type')!r} in an .mlpackage (only mlProgram)")
    return spec, read_program(spec.mlProgram, weights)


def read_program(program: Any, weights_dir: Path | None) -> dict[str, MilFunction]:
    """Every function of a ``MILSpec.Program`` message."""
    reader = _Values(weights_dir)
    return {name: _function(fn, reader) for name, fn in program.functions.items()}


def _function(fn: Any, values: "_Values") -> MilFunction:
    if fn.opset not in fn.block_specializations:
        raise ArtifactError(f"MIL function has no block for its opset {fn.opset!r}")
    block = fn.block_specializations[fn.opset]
    out = MilFunction({i.name: _dtype(i.type) for i in fn.inputs}, outputs=list(block.outputs))
    for op in block.operations:
        if len(op.blocks):
            raise UnknownOpError(f"MIL op {op.type!r} with nested blocks (control flow)")
        constant = op.type == "const" or "constexpr_" in op.type
        inputs: dict[str, Any] = {k: values.load(v) for k, v in op.attributes.items() if constant and k != "name"}
        for key, arg in op.inputs.items():
            items = [Ref(b.name) if b.WhichOneof("binding") == "name" else values.load(b.value) for b in arg.arguments]
            inputs[key] = items if len(items) != 1 or (op.type, key) in TUPLE_INPUTS else items[0]
        name = values.load(op.attributes["name"]) if "name" in op.attributes else op.outputs[0].name
        out.ops.append(MilOp(op.type, str(name), inputs, [(o.name, _dtype(o.type)) for o in op.outputs]))
    return out


def _dtype(value_type: Any) -> Any:
    return DATATYPES.get(value_type.tensorType.dataType) if value_type.WhichOneof("type") == "tensorType" else None


class _Values:
    """Reads ``MILSpec.Value`` messages to numpy (blob files opened once each)."""

    def __init__(self, weights_dir: Path | None) -> None:
        self.weights_dir, self.files = weights_dir, {}

    def load(self, value: Any) -> Any:
        if value.type.WhichOneof("type") != "tensorType":
            raise UnknownOpError(f"MIL value of type {value.type.WhichOneof('type')!r} (only tensors)")
        tt = value.type.tensorType
        shape = tuple(int(d.constant.size) for d in tt.dimensions)
        if len(shape) != tt.rank or any(d.WhichOneof("dimension") != "constant" for d in tt.dimensions):
            raise UnknownOpError("MIL constant with a symbolic shape")
        count = int(np.prod(shape, dtype=np.int64))
        if value.WhichOneof("value") == "blobFileValue":
            arr = self._blob(value.blobFileValue)[:count]
        else:
            arr = self._immediate(value.immediateValue, tt.dataType, count)
        if tt.dataType == 2:  # STRING
            return str(arr[0]) if tt.rank == 0 else np.asarray(arr, dtype=str).reshape(shape)
        target = DATATYPES.get(tt.dataType) or (np.int8 if SUB_BYTE.get(tt.dataType, (0, False))[1] else np.uint8)
        arr = np.asarray(arr).astype(target).reshape(shape)
        return arr[()] if tt.rank == 0 else arr

    def _immediate(self, imm: Any, data_type: int, count: int) -> Any:
        if imm.WhichOneof("value") != "tensor":
            raise UnknownOpError(f"MIL immediate value {imm.WhichOneof('value')!r} (only tensors)")
        kind = imm.tensor.WhichOneof("value")
        if kind != "bytes":
            return list(getattr(imm.tensor, kind).values) if kind else []
        raw = np.frombuffer(imm.tensor.bytes.values, np.uint8)
        if data_type in SUB_BYTE:
            bits, signed = SUB_BYTE[data_type]
            vals = unpack_lsb_first(raw, bits, count)
            return np.where(vals >= 1 << (bits - 1), vals.astype(np.int16) - (1 << bits), vals) if signed else vals
        return raw.view(np.dtype(DATATYPES[data_type]).newbyteorder("<"))

    def _blob(self, ref: Any) -> np.ndarray:
        if self.weights_dir is None:
            raise ArtifactError("the ML Program reads a weight file but its package has no weights folder")
        path = self.weights_dir / ref.fileName.split("/")[-1]  # "@model_path/weights/weight.bin", as load.py
        if path not in self.files:
            self.files[path] = BlobFile(path)
        return self.files[path].read(int(ref.offset))


def from_pymil(program: Any, function: str = "main") -> MilFunction:
    """The same form from a coremltools PyMIL ``Program`` (tests' oracle; needs coremltools imported).

    PyMIL knows some values that the file does not spell out (its builder infers them): those are given as
    constants, as the old executor read them.
    """
    from coremltools.converters.mil.mil import types

    def dtype_of(var: Any) -> Any:
        return _DTYPE_NAMES.get(types.builtin_to_string(var.dtype))

    func = program.functions[function]
    out = MilFunction({name: dtype_of(var) for name, var in func.inputs.items()},
                      outputs=[v.name for v in func.outputs])
    produced = set(func.inputs)

    def arg(v: Any) -> Any:
        return Ref(v.name) if v.name in produced or v.val is None else v.val

    for op in func.operations:
        inputs: dict[str, Any] = {}
        for key, v in op.inputs.items():
            if isinstance(v, (list, tuple)):
                inputs[key] = [arg(x) for x in v]
            elif v is not None:
                inputs[key] = arg(v)
        if op.op_type == "const":
            inputs = {"val": op.outputs[0].val}
        out.ops.append(MilOp(op.op_type, op.name, inputs, [(v.name, dtype_of(v)) for v in op.outputs]))
        produced.update(v.name for v in op.outputs)
    return out
