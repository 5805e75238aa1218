"""Core ML export through coremltools 9, checked with the numpy executor in ``coreml_ref``.

* iOS 15+: ML Program (``.mlpackage``), fp16 compute by default, fp32 on request; int8
  weights (``linear_quantize_weights``) and ``--compress`` sparse / palettize4/6/8 through
  ``coremltools.optimize.coreml`` — these need iOS 16 (spec 7), so the target is raised to
  16 where every device allows it, else a DeviceError.
* iOS 13-14: NeuralNetwork (``.mlmodel``, spec 4/5).
* iOS 12: NeuralNetwork converted for iOS 13, then lowered to spec 3 (``coreml_spec3``).
  NeuralNetwork fp16 means fp16 *weights* (``quantize_weights(nbits=16)``, a spec-2 feature).

Input ``pixels``: float32 MultiArray of raw RGB 0..255, (1, 3, H, W) or (3, H, W) for spec 3
(normalisation is baked in); output ``features``. Parity runs the saved file with
``coreml_ref``; Apple's own ``predict`` (and ``coremlcompiler``) only run on macOS and are
recorded in the manifest as such, or as skipped with the reason.
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
from typing import Any, Callable

import numpy as np
import torch

from toolchain.devices import COMPRESSED_WEIGHTS_IOS, compressed_weights_ios
from toolchain.errors import DeviceError, ExportError, RuntimeUnavailable, ToolchainError
from toolchain.export import coreml_ref, parity
from toolchain.export.base import ExportJob, parity_inputs
from toolchain.export.coreml_spec3 import lower_to_spec3
from toolchain.export.manifest import package_version
from toolchain.registry import Registry

log = logging.getLogger(__name__)

INPUT_NAME = "pixels"
OUTPUT_NAME = "features"
SPEC_FOR_IOS = {13: 4, 14: 5, 15: 6, 16: 7, 17: 8, 18: 9}

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


def program_ios(job: ExportJob) -> int:
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
            raise DeviceError(f"{why} needs Core ML compressed weights (iOS {needs}+, spec {SPEC_FOR_IOS[needs]}); "
                              f"{d.name} stops at iOS {d.last_os}: drop it or export without {why}")
    return needs


def _trace(job: ExportJob) -> torch.jit.ScriptModule:
    with torch.no_grad():
        return torch.jit.trace(job.deploy_module("nchw"), job.example_input("nchw"))


def _quiet() -> contextlib.AbstractContextManager:
    """coremltools prints progress bars and notes to stdout/stderr; library code must not."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def _convert(job: ExportJob, convert_to: str, ios: int, precision: str | None = None) -> Any:
    import coremltools as ct

    from toolchain.export import coreml_ops

    coreml_ops.register()  # NumPy 2.4-safe aten::Int / aten::Bool (coreml_ops explains)
    kwargs: dict[str, Any] = {}
    if convert_to == "mlprogram":
        kwargs["compute_precision"] = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    with _quiet():
        return ct.convert(_trace(job), source="pytorch", convert_to=convert_to,
                          inputs=[ct.TensorType(name=INPUT_NAME, shape=tuple(job.input_shape("nchw")), dtype=np.float32)],
                          outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)],
                          minimum_deployment_target=getattr(ct.target, f"iOS{ios}"), **kwargs)


def fp16_weights(spec: Any) -> Any:
    """NeuralNetwork weights stored as float16 (spec 2+); returns the new spec."""
    import coremltools as ct
    from coremltools.models.neural_network import quantization_utils

    with _quiet():
        q = quantization_utils.quantize_weights(ct.models.MLModel(spec, skip_model_load=True), nbits=16)
    return q.get_spec() if hasattr(q, "get_spec") else q


class CoreMLExporter:
    target = "coreml"
    suffix = ".mlpackage"  # ".mlmodel" for NeuralNetwork choices

    def convert(self, job: ExportJob, work: Path, progress: Callable[[str], None]) -> Path:
        c = job.choice
        if c.coreml_format == "neuralnetwork":
            return self._convert_neuralnetwork(job, work, progress)
        ios = program_ios(job)
        if ios != c.min_ios:
            progress(f"{job.artifact_name}: targeting iOS {ios} (spec {SPEC_FOR_IOS[ios]}) for compressed weights")
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

    def _convert_neuralnetwork(self, job: ExportJob, work: Path, progress: Callable[[str], None]) -> Path:
        from toolchain.fsutil import atomic_write_bytes

        c = job.choice
        if job.compress:
            COMPRESSORS.get(job.compress)  # an unknown name lists the known ones
            where = ", ".join(d.name for d in job.devices) or f"iOS {c.min_ios}"
            raise DeviceError(f"--compress {job.compress} needs an ML Program (iOS {COMPRESSED_WEIGHTS_IOS}+); "
                              f"{where} gets a NeuralNetwork model. Drop --compress, or use --min-ios 16 on newer devices")
        try:
            model = _convert(job, "neuralnetwork", max(int(c.min_ios), 13))
        except ValueError as e:  # e.g. ShuffleNet: coremltools fuses its channel shuffle into a spec-5 concat
            if c.spec_version != 3 or "available from version 5" not in str(e):
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

    def describe(self, job: ExportJob, artifact: Path) -> dict[str, Any]:
        spec, summary = self._summary(artifact)
        inp, out = spec.description.input[0], spec.description.output[0]
        ios = next((i for i, s in SPEC_FOR_IOS.items() if s == spec.specificationVersion), 12)
        desc: dict[str, Any] = {
            "input": {"name": inp.name, "shape": [int(s) for s in inp.type.multiArrayType.shape],
                      "dtype": _array_dtype(inp), "type": "MLMultiArray"},
            "output": {"name": out.name, "dtype": _array_dtype(out),
                       "shape": [int(s) for s in out.type.multiArrayType.shape]},
            "spec_version": int(spec.specificationVersion),
            "min_ios": ios, "min_os": f"iOS {ios}",
            **summary,
        }
        desc["apple_runtime"] = self._apple_parity(job, artifact).to_json()
        desc["apple_compiler"] = _apple_compile(artifact)
        return desc

    def _summary(self, artifact: Path) -> tuple[Any, dict[str, Any]]:
        if artifact.suffix == ".mlpackage":
            spec, prog = coreml_ref.load_mlpackage_program(artifact)
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

    def run(self, artifact: Path, manifest: dict[str, Any], pixels_nchw: np.ndarray) -> tuple[np.ndarray, str, str | None]:
        """Features from the numpy reference executor (the saved file, read back)."""
        artifact = Path(artifact)
        try:
            if artifact.suffix == ".mlpackage":
                spec, prog = coreml_ref.load_mlpackage_program(artifact)
                runner = lambda feeds: coreml_ref.run_mil(prog, feeds)  # noqa: E731
                what = "ML Program"
            else:
                import coremltools as ct

                spec = ct.utils.load_spec(str(artifact))
                runner = lambda feeds: coreml_ref.run_neuralnetwork(spec, feeds)  # noqa: E731
                what = "NeuralNetwork"
            inp, out = spec.description.input[0], spec.description.output[0].name
            shape = [int(s) for s in inp.type.multiArrayType.shape]
            if list(pixels_nchw.shape[1:]) != shape[-3:]:
                raise ToolchainError(f"{artifact.name} takes pixels of shape {shape}, got {list(pixels_nchw.shape[1:])}")
            feats = []
            for x in np.asarray(pixels_nchw, np.float32):
                y = runner({inp.name: x if len(shape) == 3 else x[None]})[out]
                feats.append(np.asarray(y, np.float32).reshape(-1))
        except coreml_ref.UnknownOpError as e:
            raise RuntimeUnavailable(f"the numpy Core ML executor cannot run it: {e}") from None
        runtime = f"coreml_ref (numpy {what} executor, spec {spec.specificationVersion}, coremltools {package_version('coremltools')})"
        return np.stack(feats), runtime, out

    def _apple_parity(self, job: ExportJob, artifact: Path) -> parity.ParityResult:
        """Apple's own Core ML prediction against PyTorch (macOS only; otherwise skipped with why)."""
        if platform.system() != "Darwin":
            return parity.skipped(f"Core ML prediction needs macOS; this is {platform.system()} "
                                  "(parity was computed with the numpy executor instead)")
        try:
            import coremltools as ct

            model = ct.models.MLModel(str(artifact))
            spec = model.get_spec()
            name = spec.description.input[0].name
            rank = len(spec.description.input[0].type.multiArrayType.shape)
            pixels = parity_inputs(job.bundle)
            with torch.no_grad():
                ref = job.deploy_module("nchw")(torch.from_numpy(pixels)).numpy()
            got = np.stack([np.asarray(model.predict({name: x if rank == 3 else x[None]})[OUTPUT_NAME]).reshape(-1)
                            for x in pixels])
        except Exception as e:  # noqa: BLE001 - any runtime failure is recorded, not hidden
            return parity.ParityResult("failed", "Core ML (macOS)", reason=f"{type(e).__name__}: {e}",
                                       mismatches=[f"prediction failed: {e}"])
        return parity.compare(ref, got, min_cosine=parity.DEFAULT_MIN_COSINE[job.choice.precision],
                              runtime=f"Core ML {platform.mac_ver()[0]} (coremltools predict)")

    def versions(self) -> dict[str, str]:
        return {"coremltools": package_version("coremltools"), "numpy": package_version("numpy")}


def _array_dtype(feature: Any) -> str:
    from coremltools.proto import FeatureTypes_pb2

    code = feature.type.multiArrayType.dataType
    return FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(code).lower() if code else "unspecified"


def _apple_compile(artifact: Path) -> dict[str, Any]:
    """Apple's compiler is the real check that a (lowered) model loads; only on a Mac with Xcode."""
    xcrun = shutil.which("xcrun")
    if platform.system() != "Darwin" or xcrun is None:
        return {"status": "skipped", "reason": "xcrun coremlcompiler needs macOS with Xcode; not validated by Apple's compiler"}
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([xcrun, "coremlcompiler", "compile", str(artifact), tmp], capture_output=True, text=True)
    if r.returncode != 0:
        raise ExportError(f"xcrun coremlcompiler rejected {artifact.name}: {(r.stderr or r.stdout).strip()[-500:]}")
    return {"status": "passed", "tool": "xcrun coremlcompiler compile"}
