"""ONNX Runtime, CPU execution provider: parity, evaluation and host timing of ``.onnx`` artifacts."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from toolchain.errors import RuntimeUnavailable
from toolchain.export.onnx import OnnxExporter
from toolchain.runtimes.base import in_layout, runtime_block


class OnnxRuntime:
    name = "onnxruntime"
    formats = (OnnxExporter.name,)
    timing = True
    preference = 0

    def unavailable(self) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as e:  # pragma: no cover - a core dependency
            return f"onnxruntime is not importable: {e}"
        return None

    def open(self, model: Any, threads: int | None = None) -> "_Session":
        why = self.unavailable()
        if why:
            raise RuntimeUnavailable(why)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(model.path), opts, providers=["CPUExecutionProvider"])
        return _Session(sess, model.input.layout, threads, ort.__version__)


class _Session:
    def __init__(self, sess: Any, layout: str, threads: int | None, version: str) -> None:
        self._sess, self._layout = sess, layout
        self._input = sess.get_inputs()[0].name
        self.output_name = sess.get_outputs()[0].name
        self.runtime = runtime_block("onnxruntime", version, "cpu", "CPUExecutionProvider", threads)
        self.description = f"onnxruntime {version}"

    def features(self, pixels_nchw: np.ndarray) -> np.ndarray:
        x = in_layout(pixels_nchw, self._layout)
        out = [self.output_name]
        return np.concatenate([self._sess.run(out, {self._input: x[i:i + 1]})[0] for i in range(len(x))])

    def prepare(self, pixels_nchw: np.ndarray) -> Callable[[], np.ndarray]:
        feed, out, run = {self._input: in_layout(pixels_nchw, self._layout)}, [self.output_name], self._sess.run
        return lambda: run(out, feed)[0]
