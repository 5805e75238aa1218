"""TFLite export through litert-torch, run with the LiteRT interpreter (ai-edge-litert).

- fp32: ``litert_torch.convert`` of the deploy module.
- fp16: fp16 weights (ai-edge-quantizer's float casting), float32 compute and I/O.
- int8 static (default for ``--precision int8``): PT2E with litert-torch's symmetric
  per-channel quantizer, calibrated on the job's images; weights and activations int8.
- int8 dynamic (``--int8 dynamic``): PT2E dynamic-range; int8 weights, activations
  quantised on the fly.
NHWC input by default (what Android camera pipelines hand over); ``--layout nchw`` keeps NCHW.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from toolchain.errors import RuntimeUnavailable
from toolchain.export.base import ExportJob
from toolchain.export.manifest import package_version

def _quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # litert-torch prints a START/DONE line per conversion pass; our own progress says what runs.
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    for name in ("litert_torch", "absl", "jax"):
        logging.getLogger(name).setLevel(logging.ERROR)


class TFLiteExporter:
    target = "tflite"
    suffix = ".tflite"

    def convert(self, job: ExportJob, work: Path, progress: Callable[[str], None]) -> Path:
        _quiet()
        import litert_torch

        out = work / f"{job.artifact_name}{self.suffix}"
        module = job.deploy_module()
        example = (job.example_input(),)
        prec = job.choice.precision
        if prec == "int8":
            from litert_torch.quantize import pt2e_quantizer as pq
            from litert_torch.quantize.quant_config import QuantConfig
            from torchao.quantization.pt2e import quantize_pt2e

            dynamic = job.int8_mode == "dynamic"
            quantizer = pq.PT2EQuantizer().set_global(
                pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))
            graph = torch.export.export(module, example).module()
            graph = quantize_pt2e.prepare_pt2e(graph, quantizer)
            calib = job.calibration if job.choice.layout == "nchw" else job.calibration.transpose(0, 2, 3, 1)
            with torch.no_grad():
                for i in range(len(calib)):  # observers see every calibration image (also per-channel init)
                    graph(torch.from_numpy(np.ascontiguousarray(calib[i:i + 1])))
            graph = quantize_pt2e.convert_pt2e(graph, fold_quantize=False)
            model = litert_torch.convert(graph, example, quant_config=QuantConfig(pt2e_quantizer=quantizer))
        else:
            model = litert_torch.convert(module, example)
        model.export(str(out))
        if prec == "fp16":
            from ai_edge_quantizer import quantizer as aeq
            from ai_edge_quantizer.algorithm_manager import AlgorithmName

            q = aeq.Quantizer(str(out))
            q.add_weight_only_config(regex=".*", operation_name="*", num_bits=16,
                                     algorithm_key=AlgorithmName.FLOAT_CASTING)
            q.quantize().export_model(str(out), overwrite=True)
        return out

    def describe(self, job: ExportJob, artifact: Path) -> dict[str, Any]:
        it = _interpreter(artifact, threads=1)
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        inp: dict[str, Any] = {"name": i["name"], "shape": [int(v) for v in i["shape"]],
                               "dtype": np.dtype(i["dtype"]).name}
        if i["quantization"] != (0.0, 0):
            inp["quantization"] = {"scale": float(i["quantization"][0]), "zero_point": int(i["quantization"][1])}
        out: dict[str, Any] = {"name": o["name"], "dtype": np.dtype(o["dtype"]).name}
        if o["quantization"] != (0.0, 0):
            out["quantization"] = {"scale": float(o["quantization"][0]), "zero_point": int(o["quantization"][1])}
        extra = {"int8_mode": job.int8_mode} if job.choice.precision == "int8" else {}
        return {"input": inp, "output": out, **extra}

    def run(self, artifact: Path, manifest: dict[str, Any], pixels_nchw: np.ndarray) -> tuple[np.ndarray, str, str | None]:
        it = _interpreter(artifact, threads=2)
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        layout = manifest["input"].get("layout", "nhwc" if len(i["shape"]) == 4 and i["shape"][-1] == 3 else "nchw")
        x = pixels_nchw if layout == "nchw" else pixels_nchw.transpose(0, 2, 3, 1)
        feats = []
        for k in range(len(x)):
            it.set_tensor(i["index"], quantize_input(np.ascontiguousarray(x[k:k + 1]), i))
            it.invoke()
            feats.append(dequantize_output(it.get_tensor(o["index"]), o))
        # The converter names outputs generically (e.g. "output_0"); the manifest's contract is "features".
        return np.concatenate(feats), f"LiteRT {package_version('ai-edge-litert')}", None

    def versions(self) -> dict[str, str]:
        return {"litert-torch": package_version("litert-torch"), "ai-edge-litert": package_version("ai-edge-litert"),
                "ai-edge-quantizer": package_version("ai-edge-quantizer")}


def _interpreter(path: Path, threads: int):
    """A ready interpreter; cached per file version, so evaluation batches don't reload the model."""
    st = Path(path).stat()
    return _cached_interpreter(str(path), st.st_mtime_ns, st.st_size, threads)


@functools.lru_cache(maxsize=4)
def _cached_interpreter(path: str, mtime_ns: int, size: int, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:  # pragma: no cover - a core dependency
        raise RuntimeUnavailable(f"ai-edge-litert is not importable: {e}") from None
    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


def quantize_input(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Float input -> the tensor's dtype (int8/uint8 use its scale and zero point)."""
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
