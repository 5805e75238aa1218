"""The ONNX format plugin: export through torch.onnx, checked with onnx.checker (run: ``runtimes/onnxruntime``).

fp32: the exported graph as is (opset recorded). fp16: the module in half precision
with float32 input/output casts at the edges.
int8: static QDQ quantisation (per-channel weights) calibrated on the job's images.
ONNX is a host format here: no harness app runs it (``app_platform`` None).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolchain.artifact.formats import ONNX, ArtifactFormat
from toolchain.artifact.manifest import InputSpec, OnnxDetails, OutputSpec, package_version
from toolchain.progress import MessageFn

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from toolchain.export.types import Description, ExportJob

OPSET = 18
INPUT_NAME = "pixels"
OUTPUT_NAME = "features"


def _half(module: Any) -> Any:
    """fp16 weights and activations inside, float32 input and output (what the apps pass)."""
    import torch

    class Half(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.module = copy.deepcopy(inner).half()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.module(x.half()).float()

    return Half(module)


def _export_onnx(module: "torch.nn.Module", example: "torch.Tensor", out: Path) -> None:
    import torch

    torch.onnx.export(module, (example,), str(out), dynamo=True, opset_version=OPSET,
                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                      dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=1024)}},
                      external_data=False, verbose=False)


class OnnxExporter(ArtifactFormat):
    name = ONNX
    display = "ONNX"
    suffix = ".onnx"

    def convert(self, job: "ExportJob", work: Path, progress: MessageFn) -> Path:
        import onnx
        import torch

        out = work / f"{job.artifact_name}{self.suffix}"
        fp32 = out if job.choice.precision != "int8" else work / "fp32.onnx.tmp"
        module = job.deploy_module()
        if job.choice.precision == "fp16":
            module = _half(module)
        # The dynamo exporter (opset 18+); a dynamic batch axis so evaluation can batch. Traced on a batch of one,
        # a broadcast check (ConvNeXt's and Swin's LayerNorm over permuted channels) specialises the batch to 1
        # and torch.export refuses the dynamic axis: then it is traced again on a batch of two. (Not always on
        # two: an imported graph-only program fixed at batch 1 would come out fixed at 2.)
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        example = job.example_input()
        try:
            _export_onnx(module, example, fp32)
        except Exception as e:  # noqa: BLE001 - only torch.export's refusal (step 1 of 3) is retried
            if "Failed to export the model with torch.export" not in str(e):
                raise
            # on a copy, so nothing the refused trace left on the module carries over
            _export_onnx(copy.deepcopy(module), torch.cat([example, example]), fp32)
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

    def describe(self, job: "ExportJob", artifact: Path) -> "Description":
        import onnx

        from toolchain.export.types import Description

        m = onnx.load(str(artifact), load_external_data=False)
        opset = max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=None)
        shape: list[int | str] = list(job.input_shape())
        shape[0] = "batch"
        return Description(InputSpec(m.graph.input[0].name, shape, "float32"), OutputSpec(m.graph.output[0].name),
                           OnnxDetails(opset))

    def versions(self) -> dict[str, str]:
        return {"onnx": package_version("onnx"), "onnxruntime": package_version("onnxruntime"),
                "onnxscript": package_version("onnxscript")}
