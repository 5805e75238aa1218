"""LiteRT (``ai_edge_litert``) interpreter, default XNNPACK delegate: ``.tflite`` artifacts.

Full-int8 models take int8 inputs and give int8 outputs: the input is quantised with the tensor's scale and
zero point, the output dequantised (the same arithmetic as the Android harness).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from toolchain.artifact.formats import TFLITE
from toolchain.artifact.manifest import package_version
from toolchain.errors import BenchError
from toolchain.runtimes.base import Runtime, in_layout

#: Threads when the caller does not say (parity and evaluation).
DEFAULT_THREADS = 2


def quantize_input(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Float input -> the tensor's dtype (int8/uint8 use its scale and zero point).

    >>> quantize_input(np.array([0.0, 1.0, 300.0]), {"dtype": np.int8, "quantization": (1.0, -128)}).tolist()
    [-128, -127, 127]
    """
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


class LiteRT(Runtime):
    name = "litert"
    formats = (TFLITE,)
    requires = (("ai_edge_litert.interpreter", "ai-edge-litert"),)

    def _open(self, model: Any, threads: int | None) -> "_Session":
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(model.path), num_threads=threads or DEFAULT_THREADS)
        it.allocate_tensors()
        return _Session(it, model, self.block(package_version("ai-edge-litert"), "cpu", "XNNPACK", threads))


class _Session:
    output_name = None  # the converter names outputs generically ("output_0"); the manifest's contract is "features"

    def __init__(self, it: Any, model: Any, block: dict[str, Any]) -> None:
        self._it, self._name, self._layout = it, model.name, model.input.layout
        self._in, self._out = it.get_input_details()[0], it.get_output_details()[0]
        self.runtime = block
        self.description = f"LiteRT {block['version']}"

    def _one(self, x: np.ndarray) -> np.ndarray:
        self._it.set_tensor(self._in["index"], x)
        self._it.invoke()
        return dequantize_output(self._it.get_tensor(self._out["index"]), self._out)

    def features(self, pixels_nchw: np.ndarray) -> np.ndarray:
        x = in_layout(pixels_nchw, self._layout)
        return np.concatenate([self._one(quantize_input(x[k:k + 1], self._in)) for k in range(len(x))])

    def prepare(self, pixels_nchw: np.ndarray) -> Callable[[], np.ndarray]:
        x = quantize_input(in_layout(pixels_nchw, self._layout), self._in)
        if tuple(x.shape) != tuple(self._in["shape"]):
            raise BenchError(f"{self._name}: input {tuple(x.shape)} does not fit the model's {tuple(self._in['shape'])}")
        return lambda: self._one(x)
