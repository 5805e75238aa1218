"""ONNX Runtime, CPU execution provider: parity, evaluation and host timing of ``.onnx`` artifacts."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from toolchain.artifact.formats import ONNX
from toolchain.runtimes.base import Runtime, in_layout


def inference_session(model: str | bytes, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session of a file path or serialized model (warnings off; ``threads`` intra-op threads).

    The one place a session is built: the runtime below and the model importer's ONNX check use it.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts,
                                providers=["CPUExecutionProvider"])


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    formats = (ONNX,)
    requires = (("onnxruntime", "onnxruntime"),)

    def _open(self, model: Any, threads: int | None) -> "_Session":
        import onnxruntime as ort

        sess = inference_session(model.path, threads)
        return _Session(sess, model.input.layout, self.block(ort.__version__, "cpu", "CPUExecutionProvider", threads))


class _Session:
    def __init__(self, sess: Any, layout: str, block: dict[str, Any]) -> None:
        self._sess, self._layout = sess, layout
        self._input = sess.get_inputs()[0].name
        self.output_name = sess.get_outputs()[0].name
        self.runtime = block
        self.description = f"onnxruntime {block['version']}"

    def features(self, pixels_nchw: np.ndarray) -> np.ndarray:
        x = in_layout(pixels_nchw, self._layout)
        out = [self.output_name]
        return np.concatenate([self._sess.run(out, {self._input: x[i:i + 1]})[0] for i in range(len(x))])

    def prepare(self, pixels_nchw: np.ndarray) -> Callable[[], np.ndarray]:
        feed, out, run = {self._input: in_layout(pixels_nchw, self._layout)}, [self.output_name], self._sess.run
        return lambda: run(out, feed)[0]
