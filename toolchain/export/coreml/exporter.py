"""The Core ML format plugin: export through coremltools 9 (run: ``runtimes/coreml`` everywhere, Apple's
runtime on macOS).

* iOS 15+: ML Program (``.mlpackage``), fp16 compute by default, fp32 on request; int8
  weights (``linear_quantize_weights``) and ``--compress`` sparse / palettize4/6/8 through
  ``coremltools.optimize.coreml`` — these need iOS 16 (spec 7), so the target is raised to
  16 where every device allows it, else a DeviceError.
* iOS 13-14: NeuralNetwork (``.mlmodel``, spec 4/5).
* iOS 12: NeuralNetwork converted for iOS 13, then lowered to spec 3 (``coreml_spec3``).
  NeuralNetwork fp16 means fp16 *weights* (``quantize_weights(nbits=16)``, a spec-2 feature).

Input ``pixels``: float32 MultiArray of raw RGB 0..255, (1, 3, H, W) or (3, H, W) for spec 3
(normalisation is baked in); output ``features``. Parity runs the saved file on every Core ML runtime
(``toolchain.runtimes``): the numpy executor here, Apple's own ``predict`` too on macOS (recorded as
skipped with the reason elsewhere); Apple's compiler (``coremlcompiler``) likewise.
"""

from __future__ import annotations

import contextlib
import io
import logging
import platform
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from toolchain.artifact.formats import COREML, ArtifactFormat, ExportChoice
from toolchain.artifact.manifest import CoreMLDetails, InputSpec, OutputSpec, ToolCheck, package_version
from toolchain.devices import Device
from toolchain.errors import DeviceError, ExportError, ManifestError
from toolchain.export.coreml.spec3 import lower_to_spec3
from toolchain.policy import COMPRESSED_WEIGHTS_IOS, COREML_SPEC_FOR_IOS, JOINT_COMPRESSION_IOS, MAX_IOS, MIN_IOS
from toolchain.progress import MessageFn
from toolchain.registry import Registry
from toolchain.runtimes.coreml.loader import load_mlpackage_program

if TYPE_CHECKING:  # pragma: no cover
    from toolchain.artifact.manifest import Manifest
    from toolchain.export.types import Description, ExportJob

log = logging.getLogger(__name__)

INPUT_NAME = "pixels"
OUTPUT_NAME = "features"


def compressed_weights_ios(compress: str | None, precision: str | None = None) -> int | None:
    """The oldest iOS that can load these weights, or None when plain fp16/fp32 weights need nothing newer.

    >>> compressed_weights_ios("sparse"), compressed_weights_ios("sparse-palettize4"), compressed_weights_ios(None)
    (16, 18, None)
    """
    if compress is not None and compress.startswith("sparse-palettize"):
        return JOINT_COMPRESSION_IOS
    if compress is not None or precision == "int8":
        return COMPRESSED_WEIGHTS_IOS
    return None


def coreml_format_for(min_ios: int) -> tuple[str, int]:
    """Core ML format and spec version for a minimum iOS: 15+ ML Program, 13-14 NeuralNetwork, 12 spec 3."""
    if not MIN_IOS <= min_ios <= MAX_IOS:
        raise DeviceError(f"--min-ios {min_ios} is outside what can be exported ({MIN_IOS}..{MAX_IOS})")
    fmt = "mlprogram" if min_ios >= 15 else "neuralnetwork"
    return fmt, COREML_SPEC_FOR_IOS[min_ios]


#: --compress name -> function(ML Program model) -> compressed model (coremltools.optimize.coreml)
COMPRESSORS: Registry[Callable[[Any], Any]] = Registry("Core ML weight compression")


@COMPRESSORS.register("sparse")
def _sparse(model: Any) -> Any:
    """Store exact zeros sparsely (lossless): |w| <= 1e-12 counts as zero.

    Tensors under 10 % zeros stay dense: the 1-bit-per-weight mask would cost more than it saves.
    """
    import coremltools.optimize.coreml as cto

    cfg = cto.OpThresholdPrunerConfig(threshold=1e-12, minimum_sparsity_percentile=0.1)
    return cto.prune_weights(model, cto.OptimizationConfig(global_config=cfg))


def _palettizer(nbits: int) -> Callable[[Any], Any]:
    def palettize(model: Any) -> Any:
        """k-means palettization: each weight tensor becomes 2**nbits values + nbits-bit indices."""
        import coremltools.optimize.coreml as cto

        cfg = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits)
        return cto.palettize_weights(model, cto.OptimizationConfig(global_config=cfg))
    return palettize


def _sparse_palettizer(nbits: int) -> Callable[[Any], Any]:
    def sparse_palettize(model: Any) -> Any:
        """Joint compression (iOS 18): exact zeros stored sparsely, the non-zeros palettized with 2**nbits values.

        One palette per group of 16 output channels (an iOS 18 granularity). On a trained, 8x-pruned ResNet50
        6 bits per tensor measured cosine 0.9899 (below 0.99), per 16 channels 0.9945; 4 bits fail either way
        (0.94-0.97), which parity reports.
        """
        import coremltools.optimize.coreml as cto

        cfg = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits, granularity="per_grouped_channel", group_size=16)
        return cto.palettize_weights(_sparse(model), cto.OptimizationConfig(global_config=cfg), joint_compression=True)
    return sparse_palettize


for _bits in (4, 6, 8):
    COMPRESSORS.add(f"palettize{_bits}", _palettizer(_bits))
    COMPRESSORS.add(f"sparse-palettize{_bits}", _sparse_palettizer(_bits))


def _int8_weights(model: Any) -> Any:
    """Per-channel symmetric int8 weights (``constexpr_affine_dequantize`` / blockwise ops)."""
    import coremltools.optimize.coreml as cto

    cfg = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")
    return cto.linear_quantize_weights(model, cto.OptimizationConfig(global_config=cfg))


def program_ios(job: "ExportJob") -> int:
    """The iOS an ML Program must target: the choice's, raised to 16 for int8/compressed weights (18 for joint
    sparse + palette).

    Raises DeviceError when a chosen device cannot run that (e.g. iPad Air 2 stops at iOS 15).
    """
    ios = int(job.choice.min_ios or 15)
    needs = compressed_weights_ios(job.compress, job.choice.precision)
    if needs is None or ios >= needs:
        return ios
    why = f"--compress {job.compress}" if job.compress else "int8 weights"
    for d in job.devices:
        if d.last_os_major < needs:
            raise DeviceError(f"{why} needs Core ML compressed weights (iOS {needs}+, spec {COREML_SPEC_FOR_IOS[needs]}); "
                              f"{d.name} stops at iOS {d.last_os}: drop it or export without {why}")
    return needs


@contextlib.contextmanager
def mha_fastpath_off() -> Iterator[None]:
    """``nn.MultiheadAttention``'s eval fast path records one fused ``aten::_native_multi_head_attention``,
    which coremltools has no converter for (ViT fails "convert function ... not implemented"); without it the
    trace holds the plain matmul/softmax ops it converts. The setting is restored after, even on error."""
    import torch

    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(was)


def _trace(job: "ExportJob") -> Any:
    import torch

    with torch.no_grad(), mha_fastpath_off():
        return torch.jit.trace(job.deploy_module("nchw"), job.example_input("nchw"))


def _quiet() -> contextlib.AbstractContextManager:
    """coremltools prints progress bars and notes to stdout/stderr; library code must not."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def _convert(job: "ExportJob", convert_to: str, ios: int, precision: str | None = None) -> Any:
    import coremltools as ct

    from toolchain.export.coreml import ops as coreml_ops

    coreml_ops.register()  # NumPy 2.4-safe aten::Int / aten::Bool, exact mul+add fusion (coreml_ops explains)
    kwargs: dict[str, Any] = {}
    if convert_to == "mlprogram":
        kwargs["compute_precision"] = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    with _quiet():
        return ct.convert(_trace(job), source="pytorch", convert_to=convert_to,
                          inputs=[ct.TensorType(name=INPUT_NAME, shape=tuple(job.input_shape("nchw")), dtype=np.float32)],
                          outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)],
                          minimum_deployment_target=getattr(ct.target, f"iOS{ios}"),
                          pass_pipeline=coreml_ops.pass_pipeline(), **kwargs)


def fp16_weights(spec: Any) -> Any:
    """NeuralNetwork weights stored as float16 (spec 2+); returns the new spec."""
    import coremltools as ct
    from coremltools.models.neural_network import quantization_utils

    with _quiet():
        q = quantization_utils.quantize_weights(ct.models.MLModel(spec, skip_model_load=True), nbits=16)
    return q.get_spec() if hasattr(q, "get_spec") else q


class CoreMLExporter(ArtifactFormat):
    name = COREML
    display = "Core ML"
    suffix = ".mlpackage"  # ".mlmodel" for NeuralNetwork choices (:meth:`suffix_for`)
    platforms = ("ios",)
    app_platform = "ios"
    weight_compression = True
    default_precision = "fp16"

    def refuse_device(self, device: Device) -> str | None:
        if device.platform != "ios":
            return f"Core ML runs on Apple devices only; {device.name} needs --target tflite or onnx"
        return None

    def decide(self, device: Device | None, precision: str, layout: str, min_ios: int | None,
               compress: str | None, reasons: list[str]) -> ExportChoice:
        """Minimum iOS, ML Program or NeuralNetwork, and the spec version, for ``device`` (see the module doc).

        >>> from toolchain.devices import get_device
        >>> from toolchain.artifact.formats import choose
        >>> c = choose("coreml", get_device("iphone6"))
        >>> (c.coreml_format, c.spec_version, c.min_ios, c.precision)
        ('neuralnetwork', 3, 12, 'fp16')
        >>> choose("coreml", get_device("iphonexr")).spec_version
        9
        """
        if layout != "nchw":
            raise DeviceError("Core ML exports take NCHW input (the model's native layout); drop --layout nhwc")
        needs = compressed_weights_ios(compress, precision)  # compressed/int8 weights are constexpr ops (spec 7, or 9)
        if min_ios is None:
            if device is None:
                min_ios = needs or 15
                reasons.append(f"no device given: iOS {min_ios}, the oldest OS with "
                               + (f"these compressed weights (spec {COREML_SPEC_FOR_IOS[needs]})" if needs
                                  else "ML Programs (spec 6)"))
            else:
                min_ios = min(device.last_os_major, MAX_IOS)
                reasons.append(f"{device.name} runs up to iOS {device.last_os}: targeting iOS {min_ios}")
        if needs and min_ios < needs:
            what = f"--compress {compress}" if compress else "int8 Core ML"
            where = device.name if device is not None and device.last_os_major < needs else f"iOS {min_ios}"
            raise DeviceError(f"{what} needs iOS {needs}+ (ML Program, spec {COREML_SPEC_FOR_IOS[needs]}); "
                              f"{where} cannot run it. Use fp16/fp32 without --compress for this device, "
                              f"or --min-ios {needs} on newer devices")
        if device is not None and min_ios > device.last_os_major:
            raise DeviceError(f"--min-ios {min_ios} is newer than {device.name} can run (iOS {device.last_os})")
        fmt, spec = coreml_format_for(min_ios)
        reasons.append(f"iOS {min_ios} -> {'ML Program' if fmt == 'mlprogram' else 'NeuralNetwork'} spec {spec}")
        if min_ios == 12:
            reasons.append("iOS 12: converted as NeuralNetwork spec 4, then lowered to spec 3 (checked layer by layer)")
        return ExportChoice(self.name, precision, layout, min_ios, fmt, spec, tuple(reasons))

    def name_parts(self, choice: ExportChoice) -> list[str]:
        return [f"ios{choice.min_ios}"]

    def min_os(self, choice: ExportChoice) -> str | None:
        return f"iOS {choice.min_ios}" if choice.min_ios else None

    def suffix_for(self, choice: ExportChoice) -> str:
        return ".mlmodel" if choice.coreml_format == "neuralnetwork" else ".mlpackage"

    def check_device(self, manifest: "Manifest", device: Device) -> list[str]:
        """Refuse a model whose spec version or minimum iOS is newer than ``device`` runs."""
        name, d = manifest.name, manifest.coreml
        if d is None:
            raise ManifestError(f"{name}: manifest has no spec_version; re-export it")
        max_spec = COREML_SPEC_FOR_IOS[min(device.last_os_major, MAX_IOS)]
        if int(d.spec_version) > max_spec:
            raise DeviceError(f"{name} is Core ML spec {d.spec_version}, but {device.name} runs iOS {device.last_os} "
                              f"(spec <= {max_spec}); export with --device {device.key}")
        if int(d.min_ios) > device.last_os_major:
            raise DeviceError(f"{name} needs iOS {d.min_ios}; {device.name} stops at iOS {device.last_os}")
        return []

    def label(self, manifest: "Manifest") -> str:
        d = manifest.coreml
        if d is None:
            return self.name
        return f"{self.name} {'NN' if d.coreml_format == 'neuralnetwork' else 'MLProgram'} spec {d.spec_version}"

    def convert(self, job: "ExportJob", work: Path, progress: MessageFn) -> Path:
        from toolchain.export.coreml.ctimport import import_coremltools

        import_coremltools()  # the first import in a process: without the packages it probes and we never use
        c = job.choice
        if c.coreml_format == "neuralnetwork":
            return self._convert_neuralnetwork(job, work, progress)
        ios = program_ios(job)
        if ios != c.min_ios:
            progress(f"{job.artifact_name}: targeting iOS {ios} (spec {COREML_SPEC_FOR_IOS[ios]}) for compressed weights")
        # int8 = int8 weights; activations stay fp16 (what Core ML computes in on GPU/ANE)
        model = _convert(job, "mlprogram", ios, "fp32" if c.precision == "fp32" else "fp16")
        with _quiet():
            if c.precision == "int8":
                progress(f"{job.artifact_name}: int8 weights (linear_quantize_weights)")
                model = _int8_weights(model)
            if job.compress:
                progress(f"{job.artifact_name}: compressing weights ({job.compress})")
                model = COMPRESSORS.get(job.compress)(model)
        out = work / f"{job.artifact_name}.mlpackage"
        model.save(str(out))
        return out

    def _convert_neuralnetwork(self, job: "ExportJob", work: Path, progress: MessageFn) -> Path:
        from toolchain.fsutil import atomic_write_bytes

        c = job.choice
        if job.compress:
            COMPRESSORS.get(job.compress)  # an unknown name lists the known ones
            where = ", ".join(d.name for d in job.devices) or f"iOS {c.min_ios}"
            raise DeviceError(f"--compress {job.compress} needs an ML Program (iOS {COMPRESSED_WEIGHTS_IOS}+); "
                              f"{where} gets a NeuralNetwork model. Drop --compress, or use --min-ios 16 on newer devices")
        try:
            model = _convert(job, "neuralnetwork", max(int(c.min_ios), 13))
        except ValueError as e:  # ShuffleNet: coremltools fuses its channel shuffle into a spec-5 concat; Swin:
            # "requires model to be of version 4 but converted model has version 5" (spec-5 layers elsewhere)
            if c.spec_version != 3 or not any(t in str(e) for t in ("available from version 5",
                                                                     "converted model has version 5")):
                raise
            # iOS 14 content is fine here: the spec-3 lowering rewrites, or refuses by name, every newer layer.
            model = _convert(job, "neuralnetwork", 14)
        spec = model.get_spec()
        if c.spec_version == 3:
            progress(f"{job.artifact_name}: lowering NeuralNetwork spec {spec.specificationVersion} -> 3 (iOS 12)")
            lower_to_spec3(spec, job.bundle.feature_dim)
        if c.precision == "fp16":
            half = fp16_weights(spec)
            if half.specificationVersion <= max(spec.specificationVersion, 2):
                spec = half
            else:  # keep fp32: fp16 weights would need a newer spec than this device runs
                log.warning("fp16 weights raised the spec to %d; keeping fp32 weights", half.specificationVersion)
        out = work / f"{job.artifact_name}.mlmodel"
        atomic_write_bytes(out, spec.SerializeToString())
        return out

    def describe(self, job: "ExportJob", artifact: Path) -> "Description":
        from toolchain.export.types import Description

        spec, summary = self._summary(artifact)
        inp, out = spec.description.input[0], spec.description.output[0]
        ios = next((i for i, s in COREML_SPEC_FOR_IOS.items() if s == spec.specificationVersion), MIN_IOS)
        details = CoreMLDetails(spec_version=int(spec.specificationVersion), min_ios=ios,
                                apple_compiler=_apple_compile(artifact), **summary)
        return Description(
            InputSpec(inp.name, [int(s) for s in inp.type.multiArrayType.shape], _array_dtype(inp), type="MLMultiArray"),
            OutputSpec(out.name, dtype=_array_dtype(out), shape=[int(s) for s in out.type.multiArrayType.shape]),
            details, min_os=f"iOS {ios}")

    def _summary(self, artifact: Path) -> tuple[Any, dict[str, Any]]:
        if artifact.suffix == ".mlpackage":
            spec, prog = load_mlpackage_program(artifact)
            ops = Counter(op.op_type for op in prog.functions["main"].operations)
            from coremltools.converters.mil.mil import types

            dtypes = Counter(types.builtin_to_string(op.outputs[0].dtype) for op in prog.functions["main"].operations
                             if op.op_type not in ("const", "cast") and not op.op_type.startswith("constexpr"))
            compute = "fp16" if dtypes.get("fp16", 0) > dtypes.get("fp32", 0) else "fp32"
            compressed = sorted(k for k in ops if k.startswith("constexpr"))
            return spec, {"coreml_format": "mlprogram", "coreml_ops": dict(sorted(ops.items())),
                          "compute_precision": compute, "compressed_weight_ops": compressed,
                          "weights": "compressed (" + ", ".join(compressed) + ")" if compressed else compute}
        import coremltools as ct

        spec = ct.utils.load_spec(str(artifact))
        layers = Counter(layer.WhichOneof("layer") for layer in spec.neuralNetwork.layers)
        half = any(len(getattr(getattr(layer, layer.WhichOneof("layer")), "weights").float16Value)
                   for layer in spec.neuralNetwork.layers if layer.WhichOneof("layer") in ("convolution", "innerProduct"))
        return spec, {"coreml_format": "neuralnetwork", "nn_layers": dict(sorted(layers.items())),
                      "weights": "fp16" if half else "fp32",
                      "compute_precision": "device-chosen (fp32 on CPU, fp16 on GPU)"}

    def versions(self) -> dict[str, str]:
        return {"coremltools": package_version("coremltools"), "numpy": package_version("numpy")}


def _array_dtype(feature: Any) -> str:
    from coremltools.proto import FeatureTypes_pb2

    code = feature.type.multiArrayType.dataType
    return FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(code).lower() if code else "unspecified"


def _apple_compile(artifact: Path) -> ToolCheck:
    """Apple's compiler is the real check that a (lowered) model loads; only on a Mac with Xcode."""
    xcrun = shutil.which("xcrun")
    if platform.system() != "Darwin" or xcrun is None:
        return ToolCheck("skipped", reason="xcrun coremlcompiler needs macOS with Xcode; not validated by Apple's compiler")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([xcrun, "coremlcompiler", "compile", str(artifact), tmp], capture_output=True, text=True)
    if r.returncode != 0:
        raise ExportError(f"xcrun coremlcompiler rejected {artifact.name}: {(r.stderr or r.stdout).strip()[-500:]}")
    return ToolCheck("passed", tool="xcrun coremlcompiler compile")
