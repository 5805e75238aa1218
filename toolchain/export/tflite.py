"""The TFLite format plugin: export through litert-torch (run: ``runtimes/litert``, the LiteRT interpreter).

- fp32: ``litert_torch.convert`` of the deploy module.
- fp16: fp16 weights (ai-edge-quantizer's float casting), float32 compute and I/O.
- int8 static (default for ``--precision int8``): PT2E with litert-torch's symmetric
  per-channel quantizer, calibrated on the job's images; weights and activations int8.
- int8 dynamic (``--int8 dynamic``): PT2E dynamic-range; int8 weights, activations
  quantised on the fly.
NHWC input by default (what Android camera pipelines hand over); ``--layout nchw`` keeps NCHW.
The Android harness runs TFLite; on iOS it would need the LiteRT iOS runtime, which the harness does not use.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolchain.artifact.formats import TFLITE, ArtifactFormat, ExportChoice
from toolchain.artifact.manifest import InputSpec, OutputSpec, Quantization, TFLiteDetails, package_version
from toolchain.devices import Device
from toolchain.progress import MessageFn

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from toolchain.export.types import Description, ExportJob

log = logging.getLogger(__name__)


def _quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # litert-torch prints a START/DONE line per conversion pass; our own progress says what runs.
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    for name in ("litert_torch", "absl", "jax"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _float_inputs_only(graph: "torch.fx.GraphModule") -> None:
    """Drop the input annotations that would put an observer on a non-float tensor.

    A strict ``torch.export`` lifts an integer scalar (``10 * x``) to an int64 constant node, which
    litert-torch's ``mul``/``add`` annotators then ask to observe; the histogram observer fails on it
    (``"histogram_cpu" not implemented for 'Long'``). Integers are not activations: they stay as they are.
    """
    import torch

    for node in graph.graph.nodes:
        ann = node.meta.get("quantization_annotation")
        if ann is None:
            continue
        for arg in list(ann.input_qspec_map):
            val = arg.meta.get("val")
            if val is None and arg.op == "get_attr":  # a constant PT2E lifted from a scalar: no "val" meta
                val = graph
                for part in str(arg.target).split("."):
                    val = getattr(val, part, None)
            if isinstance(val, torch.Tensor) and not val.is_floating_point():
                del ann.input_qspec_map[arg]


def _annotate_avg_pool2d(graph: "torch.fx.GraphModule", config: Any) -> None:
    """Give ``avg_pool2d`` its input's quantisation on both sides, as litert-torch does for max and adaptive
    pooling but not for this op.

    Unannotated, it stays float in PyTorch's int8 model, while LiteRT's int8 ``AVERAGE_POOL_2D`` needs one
    scale in and out, so the converter requantises the *input* to the scale observed on the pool's smaller
    *output* and clips it. Inception v3's ``avg_pool2d(x, 3, 1, 1)`` on a 1x1 map (96 px input) measured
    artifact vs PyTorch's int8 model 0.9866 for one such block, 0.9850 for the network; a 2x2 map 0.939.
    """
    import torch
    from litert_torch.quantize.pt2e_quantizer_utils import get_input_act_qspec
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    for node in graph.graph.nodes:
        if node.op != "call_function" or node.target != torch.ops.aten.avg_pool2d.default \
                or node.meta.get("quantization_annotation") is not None:
            continue
        src = node.args[0]
        ann = src.meta.get("quantization_annotation")
        in_spec = SharedQuantizationSpec(src) if ann is not None and ann.output_qspec is not None \
            else get_input_act_qspec(config)
        node.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map={src: in_spec}, output_qspec=SharedQuantizationSpec((src, node)), _annotated=True)


def quantize_int8(module: "torch.nn.Module", calibration: np.ndarray, layout: str, dynamic: bool = False,
                  ) -> tuple["torch.fx.GraphModule", Any]:
    """PyTorch's own int8 model of ``module`` (PT2E, litert-torch's symmetric per-channel quantizer) and the
    quantizer that made it: what ``litert_torch.convert`` turns into the int8 artifact.

    ``calibration`` is raw pixels NCHW (the export job's images); ``layout`` is the module's input layout.
    Running the returned graph is running the quantised model in PyTorch, so comparing it with fp32 measures
    quantisation's loss before any converter runs (``benchmarks/architectures.py`` does).

    The graph is captured with a *strict* ``torch.export``: litert-torch 0.10 finds ``add``, ``mul``,
    ``cat``, ``max_pool2d`` and ``adaptive_avg_pool2d`` through ``get_source_partitions``, which reads the
    ``source_fn_stack`` metadata that only strict (Dynamo) capture records. Under torch 2.14's default
    non-strict export those ops went unannotated and stayed float in PyTorch's int8 model, while the
    converter still made them int8 and gave their inputs whatever scale it found nearby: a DenseNet-style
    ``cat`` of a ReLU'd and a raw tensor measured cosine 0.986 between the artifact and PyTorch's int8
    model (1.000000 strict; ``tests/export/test_export_onnx_tflite.py``).
    """
    import torch
    from litert_torch.quantize import pt2e_quantizer as pq
    from torchao.quantization.pt2e import quantize_pt2e

    class Quantizer(pq.PT2EQuantizer):
        def annotate(self, model: "torch.fx.GraphModule") -> "torch.fx.GraphModule":
            model = super().annotate(model)
            if not dynamic:
                _annotate_avg_pool2d(model, self.global_config)
            _float_inputs_only(model)
            return model

    calib = calibration if layout == "nchw" else calibration.transpose(0, 2, 3, 1)
    example = (torch.from_numpy(np.ascontiguousarray(calib[:1])),)
    quantizer = Quantizer().set_global(
        pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))
    try:
        captured = torch.export.export(module, example, strict=True)
    except Exception as e:  # noqa: BLE001 - Dynamo refuses some Python; parity still judges the result
        log.warning("strict torch.export refused (%s: %s); capturing non-strict, where litert-torch's quantiser "
                    "leaves add/mul/cat/pooling float", type(e).__name__, str(e).strip().splitlines()[0][:200])
        captured = torch.export.export(module, example)
    graph = quantize_pt2e.prepare_pt2e(captured.module(), quantizer)
    with torch.no_grad():
        for i in range(len(calib)):  # observers see every calibration image (also per-channel init)
            graph(torch.from_numpy(np.ascontiguousarray(calib[i:i + 1])))
    return quantize_pt2e.convert_pt2e(graph, fold_quantize=False), quantizer


class TFLiteExporter(ArtifactFormat):
    name = TFLITE
    display = "TFLite"
    suffix = ".tflite"
    app_platform = "android"
    default_layout = "nhwc"
    min_os_text = "Android 5.0 (API 21)"

    def refuse_device(self, device: Device) -> str | None:
        # A manifest's devices and minimum OS must agree with its format: a TFLite artifact's minimum OS is
        # Android's, and nothing here builds or checks the LiteRT iOS runtime, so an iPhone is refused.
        if device.platform != self.app_platform:
            return (f"--target tflite is for Android devices (minimum {self.min_os_text}); {device.name} runs iOS: "
                    "export --target coreml for it")
        return None

    def name_parts(self, choice: ExportChoice) -> list[str]:
        return [choice.layout]  # TFLite names always say the layout: NHWC is the default, NCHW on request

    def convert(self, job: "ExportJob", work: Path, progress: MessageFn) -> Path:
        _quiet()
        import litert_torch

        out = work / f"{job.artifact_name}{self.suffix}"
        module = job.deploy_module()
        example = (job.example_input(),)
        prec = job.choice.precision
        if prec == "int8":
            from litert_torch.quantize.quant_config import QuantConfig

            graph, quantizer = quantize_int8(module, job.calibration, job.choice.layout,
                                             dynamic=job.int8_mode == "dynamic")
            job.reduced_graph = graph  # parity compares the artifact with it (toolchain.export.reduced)
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

    def describe(self, job: "ExportJob", artifact: Path) -> "Description":
        from ai_edge_litert.interpreter import Interpreter

        from toolchain.export.types import Description

        it = Interpreter(model_path=str(artifact), num_threads=1)
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        inp = InputSpec(i["name"], [int(v) for v in i["shape"]], np.dtype(i["dtype"]).name,
                        quantization=_quantization(i))
        out = OutputSpec(o["name"], dtype=np.dtype(o["dtype"]).name, quantization=_quantization(o))
        return Description(inp, out, TFLiteDetails(job.int8_mode if job.choice.precision == "int8" else None))

    def versions(self) -> dict[str, str]:
        return {"litert-torch": package_version("litert-torch"), "ai-edge-litert": package_version("ai-edge-litert"),
                "ai-edge-quantizer": package_version("ai-edge-quantizer")}


def _quantization(detail: dict[str, Any]) -> Quantization | None:
    scale, zero = detail["quantization"]
    return None if (scale, zero) == (0.0, 0) else Quantization(float(scale), int(zero))
