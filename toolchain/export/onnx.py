"""ONNX export through torch.onnx, checked with onnx.checker, run with ONNX Runtime.

fp32: the exported graph as is (opset recorded). fp16: the module in half precision
with float32 input/output casts at the edges.
int8: static QDQ quantisation (per-channel weights) calibrated on the job's images.
"""

from __future__ import annotations

import copy
import functools
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from toolchain.errors import RuntimeUnavailable
from toolchain.export.base import ExportJob
from toolchain.export.manifest import package_version

OPSET = 18
INPUT_NAME = "pixels"
OUTPUT_NAME = "features"


class _Half(torch.nn.Module):
    """fp16 weights and activations inside, float32 input and output (what the apps pass)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = copy.deepcopy(module).half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.half()).float()


@functools.lru_cache(maxsize=4)
def _session(path: str, mtime_ns: int, size: int):
    """An ONNX Runtime session, cached per file version (evaluation calls run once per batch)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


class OnnxExporter:
    target = "onnx"
    suffix = ".onnx"

    def convert(self, job: ExportJob, work: Path, progress: Callable[[str], None]) -> Path:
        import onnx

        out = work / f"{job.artifact_name}{self.suffix}"
        fp32 = out if job.choice.precision != "int8" else work / "fp32.onnx.tmp"
        module = job.deploy_module()
        if job.choice.precision == "fp16":
            module = _Half(module)
        # The dynamo exporter (opset 18+); a dynamic batch axis so evaluation can batch.
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(module, (job.example_input(),), str(fp32), dynamo=True, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=1024)}},
                          external_data=False, verbose=False)
        onnx.checker.check_model(str(fp32), full_check=True)
        if job.choice.precision == "int8":
            from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
            from onnxruntime.quantization.shape_inference import quant_pre_process

            layout = job.choice.layout
            calib = job.calibration if layout == "nchw" else job.calibration.transpose(0, 2, 3, 1)

            class Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self._it = iter([{INPUT_NAME: calib[i:i + 1].astype(np.float32)} for i in range(len(calib))])

                def get_next(self):
                    return next(self._it, None)

            pre = work / "pre.onnx.tmp"
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            fp32.unlink()
            pre.unlink()
        onnx.checker.check_model(str(out), full_check=True)
        return out

    def describe(self, job: ExportJob, artifact: Path) -> dict[str, Any]:
        import onnx

        m = onnx.load(str(artifact), load_external_data=False)
        opset = max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=None)
        shape = job.input_shape()
        shape[0] = "batch"
        return {"input": {"name": m.graph.input[0].name, "shape": shape, "dtype": "float32"},
                "output": {"name": m.graph.output[0].name}, "opset": opset}

    def run(self, artifact: Path, manifest: dict[str, Any], pixels_nchw: np.ndarray) -> tuple[np.ndarray, str, str | None]:
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - a core dependency
            raise RuntimeUnavailable(f"onnxruntime is not importable: {e}") from None
        st = Path(artifact).stat()
        sess = _session(str(artifact), st.st_mtime_ns, st.st_size)
        x = pixels_nchw if manifest["input"].get("layout", "nchw") == "nchw" else pixels_nchw.transpose(0, 2, 3, 1)
        name = sess.get_inputs()[0].name
        out = sess.get_outputs()[0].name
        feats = np.concatenate([sess.run([out], {name: np.ascontiguousarray(x[i:i + 1], np.float32)})[0]
                                for i in range(len(x))])
        return feats, f"onnxruntime {ort.__version__}", out

    def versions(self) -> dict[str, str]:
        return {"onnx": package_version("onnx"), "onnxruntime": package_version("onnxruntime"),
                "onnxscript": package_version("onnxscript")}
