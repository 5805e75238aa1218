"""PyTorch's own reduced-precision model of an export: what the artifact should compute if the converter is right.

An int8 or fp16 artifact differs from the fp32 model for two reasons: the precision itself (PyTorch's own int8
model already loses some signal) and the converter (which may add loss on top). Comparing the artifact with
the fp32 model alone cannot tell them apart, so parity also runs the *reduced* PyTorch model — built the way the
converter builds the artifact — and the manifest records both cosines (:mod:`toolchain.export.verdict`).

Per format and precision (one registered builder per format, ``REDUCED``):

* TFLite int8: the PT2E graph litert-torch converted (the same quantiser and calibration; the exporter keeps it
  on the job). TFLite fp16: fp16 weights, fp32 compute (what ai-edge-quantizer's float casting does).
* Core ML fp16: ML Program — the module in half precision (weights and activations fp16);
  NeuralNetwork — fp16 weights, fp32 compute (what the numpy executor and a phone's CPU do). Core ML int8:
  weights per output channel symmetric int8 (``linear_quantize_weights``' rule), fp16 compute.
* ONNX fp16: the module in half precision (what the exporter exports).

Where no such model can be built (ONNX int8 through onnxruntime's quantiser, Core ML k-means palettes) the
reason is recorded and the cosine stays null: never a made-up number.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from toolchain.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from toolchain.export.types import ExportJob


@dataclass
class Reduced:
    """PyTorch's reduced-precision model (``run``: raw pixels NCHW -> features (N, D)), or why there is none."""

    what: str | None = None
    run: Callable[[np.ndarray], np.ndarray] | None = None
    why_not: str | None = None


#: format name -> builder(job) -> Reduced (called after the conversion, so a converter's own graph is there)
REDUCED: Registry[Callable[["ExportJob"], Reduced]] = Registry("reduced-precision reference")


def _runner(module: Any, layout: str, half: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def run(pixels_nchw: np.ndarray) -> np.ndarray:
        x = np.asarray(pixels_nchw, np.float32)
        if layout == "nhwc":
            x = x.transpose(0, 2, 3, 1)
        outs = []
        with torch.no_grad():
            for i in range(len(x)):  # one at a time: a quantised graph may be fixed at batch 1
                t = torch.from_numpy(np.ascontiguousarray(x[i:i + 1]))
                y = module(t.half() if half else t)
                outs.append(y.float().reshape(1, -1).numpy())
        return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)
    return run


def fp16_weights(module: Any) -> Any:
    """A copy whose float parameters and buffers are rounded to float16 (kept float32: fp32 compute).

    E.g. a weight 1.0001 becomes 1.0 (float16 has 10 fraction bits: steps of 2**-10 near 1).
    """
    import torch

    out = copy.deepcopy(module)
    with torch.no_grad():
        for t in list(out.parameters()) + list(out.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())
    return out


def int8_weights(module: Any) -> Any:
    """A copy whose convolution and linear weights are per-output-channel symmetric int8 (scale = max|w| / 127,
    round to nearest, clip to [-127, 127]), dequantised: coremltools' ``linear_symmetric`` int8 rule.

    E.g. a channel [0.5, -1.27, 0.004] has scale 0.01 and becomes [0.5, -1.27, 0.0].
    """
    import torch

    out = copy.deepcopy(module)
    with torch.no_grad():
        for m in out.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                w = m.weight
                scale = w.abs().reshape(len(w), -1).amax(dim=1).clamp(min=1e-12) / 127
                scale = scale.reshape((-1,) + (1,) * (w.ndim - 1))
                w.copy_(torch.clamp(torch.round(w / scale), -127, 127) * scale)
    return out


def half_model(module: Any) -> Any:
    """A copy in half precision (weights and activations fp16), as an fp16 ML Program computes."""
    return copy.deepcopy(module).half()


def reduced_model(job: "ExportJob") -> Reduced:
    """PyTorch's reduced-precision model for ``job`` (after its conversion), or why none is built."""
    if job.choice.precision == "fp32":
        return Reduced(why_not="fp32 export: the fp32 model is the reference")
    if job.choice.target not in REDUCED:
        return Reduced(why_not=f"no PyTorch reduced-precision model is built for {job.choice.target}")
    try:
        return REDUCED.get(job.choice.target)(job)
    except Exception as e:  # noqa: BLE001 - e.g. a CPU without a half kernel for an op: recorded, not hidden
        return Reduced(why_not=f"PyTorch's {job.choice.precision} model could not be built or run: "
                               f"{type(e).__name__}: {str(e)[:200]}")


def _checked(red: Reduced, job: "ExportJob") -> Reduced:
    """Run the model once on the first calibration image so a missing half kernel shows here, as a reason."""
    if red.run is not None:
        red.run(job.calibration[:1])
    return red


@REDUCED.register("tflite")
def _tflite(job: "ExportJob") -> Reduced:
    layout = job.choice.layout
    if job.choice.precision == "int8":
        if job.reduced_graph is None:
            return Reduced(why_not="the converter kept no PyTorch int8 graph")
        kind = "dynamic-range" if job.int8_mode == "dynamic" else "static"
        return Reduced(f"PyTorch PT2E int8 ({kind}, litert-torch's quantiser, same calibration)",
                       _runner(job.reduced_graph, layout))
    return _checked(Reduced("PyTorch fp16 weights, fp32 compute", _runner(fp16_weights(job.deploy_module()), layout)),
                    job)


@REDUCED.register("coreml")
def _coreml(job: "ExportJob") -> Reduced:
    c = job.choice
    if job.compress and job.compress != "sparse":
        return Reduced(why_not=f"no PyTorch model of --compress {job.compress} (k-means palettes) is built")
    module = job.deploy_module("nchw")
    if c.precision == "int8":
        return _checked(Reduced("PyTorch int8 weights (per-channel symmetric), fp16 compute",
                                _runner(half_model(int8_weights(module)), "nchw", half=True)), job)
    if c.coreml_format == "neuralnetwork":
        return Reduced("PyTorch fp16 weights, fp32 compute", _runner(fp16_weights(module), "nchw"))
    return _checked(Reduced("PyTorch fp16 (weights and activations)", _runner(half_model(module), "nchw", half=True)),
                    job)


@REDUCED.register("onnx")
def _onnx(job: "ExportJob") -> Reduced:
    if job.choice.precision == "int8":
        return Reduced(why_not="ONNX int8 comes from onnxruntime's quantiser, which has no PyTorch model")
    module = job.deploy_module()
    return _checked(Reduced("PyTorch fp16 (weights and activations)", _runner(half_model(module), job.choice.layout,
                                                                              half=True)), job)
