"""LiteRT (``ai_edge_litert``) interpreter, default XNNPACK delegate: ``.tflite`` artifacts.

Full-int8 models take int8 inputs and give int8 outputs: the input is quantised with the tensor's scale and
zero point, the output dequantised (the same arithmetic as the Android harness).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from toolchain.errors import BenchError, RuntimeUnavailable
from toolchain.export.manifest import package_version
from toolchain.export.tflite import TFLiteExporter
from toolchain.runtimes.base import in_layout, runtime_block

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


class LiteRT:
    name = "litert"
    formats = (TFLiteExporter.name,)
    timing = True
    preference = 0

    def unavailable(self) -> str | None:
        try:
            from ai_edge_litert.interpreter import Interpreter  # noqa: F401
        except ImportError as e:  # pragma: no cover - a core dependency
            return f"ai-edge-litert is not importable: {e}"
        return None

    def open(self, model: Any, threads: int | None = None) -> "_Session":
        why = self.unavailable()
        if why:
            raise RuntimeUnavailable(why)
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(model.path), num_threads=threads or DEFAULT_THREADS)
        it.allocate_tensors()
        return _Session(it, model, threads)


class _Session:
    output_name = None  # the converter names outputs generically ("output_0"); the manifest's contract is "features"

    def __init__(self, it: Any, model: Any, threads: int | None) -> None:
        self._it, self._name, self._layout = it, model.name, model.input.layout
        self._in, self._out = it.get_input_details()[0], it.get_output_details()[0]
        version = package_version("ai-edge-litert")
        self.runtime = runtime_block("litert", version, "cpu", "XNNPACK", threads)
        self.description = f"LiteRT {version}"

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
