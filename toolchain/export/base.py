"""Exporter protocol and the export driver: convert -> run -> parity -> manifest.

Each format lives in its own module (``onnx.py``, ``coreml.py``, ``tflite.py``) with one
class implementing :class:`Exporter`; the registry maps a target name to that module so
only the chosen converter is imported. ``export_bundle`` is what ``deploy export`` calls.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn

from toolchain.devices import Device, ExportChoice, choose, parse_devices
from toolchain.errors import ExportError, ParityError, RuntimeUnavailable, ToolchainError
from toolchain.export import manifest as manifest_mod
from toolchain.export import parity
from toolchain.fsutil import atomic_dir, check_output_dir, ensure_writable_dir
from toolchain.models.bundle import Bundle, load_bundle
from toolchain.registry import Registry

log = logging.getLogger(__name__)

#: target name -> "module:Class" (imported on first use, so `deploy --help` stays fast)
EXPORTERS: Registry[str] = Registry("export target")
EXPORTERS.add("onnx", "toolchain.export.onnx:OnnxExporter")
EXPORTERS.add("coreml", "toolchain.export.coreml:CoreMLExporter")
EXPORTERS.add("tflite", "toolchain.export.tflite:TFLiteExporter")

PARITY_SAMPLES = 4
PARITY_SEED = 1234
CALIBRATION_SAMPLES = 16
CALIBRATION_SEED = 99
#: The fixed input whose features the manifest keeps, so on-device numerics can be checked.
FIXED_INPUT_FILE = "fixed_input.png"
REFERENCE_SAMPLE_LEN = 16


class DeployModule(nn.Module):
    """What every artifact computes: raw RGB pixels (0..255, float) -> features.

    Normalisation is baked in as one per-channel multiply-add, ``x * (1/(255*std)) + (-mean/std)``,
    so the apps pass raw pixels. With ``layout="nhwc"`` the input is (N, H, W, 3).
    """

    def __init__(self, model: nn.Module, mean: list[float], std: list[float], layout: str = "nchw") -> None:
        super().__init__()
        self.model = model
        self.layout = layout
        m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * s))
        self.register_buffer("bias", -m / s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "nhwc":
            x = x.permute(0, 3, 1, 2)
        return self.model(x * self.scale + self.bias)


@dataclass
class ExportJob:
    """Everything one conversion needs."""

    bundle: Bundle
    choice: ExportChoice
    devices: list[Device]
    artifact_name: str
    calibration: np.ndarray  # raw pixels, NCHW float32: int8 calibration / Core ML palettization data
    compress: str | None = None
    int8_mode: str = "static"  # TFLite int8: "static" (calibrated activations) or "dynamic" (dynamic range)

    @property
    def size(self) -> int:
        return self.bundle.input_size

    def deploy_module(self, layout: str | None = None) -> DeployModule:
        return DeployModule(self.bundle.model, self.bundle.mean, self.bundle.std, layout or self.choice.layout).eval()

    def input_shape(self, layout: str | None = None, batch: int = 1) -> list[int]:
        s = self.size
        return [batch, s, s, 3] if (layout or self.choice.layout) == "nhwc" else [batch, 3, s, s]

    def example_input(self, layout: str | None = None) -> torch.Tensor:
        x = torch.from_numpy(self.calibration[:1].copy())
        return x.permute(0, 2, 3, 1).contiguous() if (layout or self.choice.layout) == "nhwc" else x


class Exporter(Protocol):
    """One format. ``convert`` writes the artifact in ``work``; ``run`` executes one for parity/eval."""

    target: str
    suffix: str  # ".onnx", ".tflite", ".mlmodel" / ".mlpackage" (may depend on the job)

    def convert(self, job: ExportJob, work: Path, progress: Callable[[str], None]) -> Path: ...

    def describe(self, job: ExportJob, artifact: Path) -> dict[str, Any]:
        """Manifest fields: input {name, shape, dtype, quantization?}, output {name}, spec_version/opset..."""
        ...

    def run(self, artifact: Path, manifest: dict[str, Any], pixels_nchw: np.ndarray) -> tuple[np.ndarray, str, str | None]:
        """Features for raw pixels (N, 3, H, W float32 0..255) -> (features, runtime name, output name).

        Raises RuntimeUnavailable (with the reason) when no runtime here can execute it.
        """
        ...

    def versions(self) -> dict[str, str]: ...


def get_exporter(target: str) -> Exporter:
    module, cls = EXPORTERS.get(target).split(":")
    return getattr(importlib.import_module(module), cls)()


def artifact_name(bundle: Bundle, choice: ExportChoice, compress: str | None, int8_mode: str = "static") -> str:
    """A file-system- and Swift-identifier-safe name, e.g. ``resnet50_ocular_coreml_fp16_ios12``."""
    parts = [bundle.name, choice.target, choice.precision]
    if choice.target == "coreml":
        parts.append(f"ios{choice.min_ios}")
    elif choice.target == "tflite" or choice.layout != "nchw":
        parts.append(choice.layout)
    if compress:
        parts.append(compress)
    if choice.precision == "int8" and int8_mode == "dynamic":
        parts.append("dynamic")
    return re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts))


@dataclass
class ExportOutcome:
    folder: Path
    manifest: dict[str, Any]
    reasons: tuple[str, ...] = ()

    @property
    def parity(self) -> dict[str, Any]:
        return self.manifest["parity"]


@dataclass
class ExportRequest:
    bundle_dir: Path
    target: str
    out: Path
    devices: list[str] = field(default_factory=list)
    precision: str | None = None
    min_ios: int | None = None
    layout: str | None = None
    calibration_dir: Path | None = None
    verify: bool = True
    min_cosine: float | None = None
    compress: str | None = None
    int8_mode: str = "static"
    force: bool = False  # replace an artifact folder even when it is not one this tool wrote


def plan_choices(req: ExportRequest) -> list[tuple[ExportChoice, list[Device]]]:
    """Group the requested devices by what their export must be; one artifact per group."""
    devices = parse_devices(req.devices)
    if not devices:
        return [(choose(req.target, None, req.precision, req.min_ios, req.layout, req.compress), [])]
    groups: dict[tuple, tuple[ExportChoice, list[Device]]] = {}
    for d in devices:
        if req.target == "coreml" and d.platform != "ios":
            continue  # `--device all` with coreml means the Apple devices
        if req.target == "tflite" and d.platform == "ios" and len(devices) > 1:
            continue  # likewise: `all` with tflite means Android
        c = choose(req.target, d, req.precision, req.min_ios, req.layout, req.compress)
        groups.setdefault(c.key, (c, []))[1].append(d)
    if not groups:
        raise ToolchainError(f"none of the devices {[d.key for d in devices]} runs {req.target}")
    return list(groups.values())


def _pytorch_features(bundle: Bundle, pixels_nchw: np.ndarray) -> np.ndarray:
    mod = DeployModule(bundle.model, bundle.mean, bundle.std, "nchw").eval()
    with torch.no_grad():
        return mod(torch.from_numpy(pixels_nchw)).numpy()


def parity_inputs(bundle: Bundle) -> np.ndarray:
    return parity.smooth_random_images(PARITY_SAMPLES, bundle.input_size, PARITY_SEED)


def export_bundle(req: ExportRequest, progress: Callable[[str], None] | None = None) -> list[ExportOutcome]:
    """Export one bundle for one target and a set of devices. Raises ParityError after writing if parity failed."""
    say = progress or (lambda msg: log.info(msg))
    if req.int8_mode not in ("static", "dynamic"):
        raise ToolchainError(f"unknown int8 mode {req.int8_mode!r}; known: static, dynamic")
    if req.compress is not None and req.target != "coreml":
        raise ToolchainError("--compress applies to Core ML exports only (TFLite/ONNX size comes from --precision)")
    exporter = get_exporter(req.target)  # unknown target -> the valid names, before any work
    groups = plan_choices(req)
    ensure_writable_dir(req.out)
    bundle = load_bundle(req.bundle_dir)
    for choice, _ in groups:  # before any conversion: refuse to replace a folder of the user's
        check_output_dir(Path(req.out) / artifact_name(bundle, choice, req.compress, req.int8_mode), "artifact",
                         req.force, what="artifact folder")
    if req.calibration_dir is not None:
        calib = parity.load_images(req.calibration_dir, CALIBRATION_SAMPLES, bundle.input_size)
    else:
        calib = parity.smooth_random_images(CALIBRATION_SAMPLES, bundle.input_size, CALIBRATION_SEED)
    check = parity_inputs(bundle)
    reference = _pytorch_features(bundle, check)
    outcomes: list[ExportOutcome] = []
    failures: list[str] = []
    for choice, devices in groups:
        name = artifact_name(bundle, choice, req.compress, req.int8_mode)
        job = ExportJob(bundle, choice, devices, name, calib, req.compress, req.int8_mode)
        say(f"{name}: converting ({'; '.join(choice.reasons)})")
        final = Path(req.out) / name
        with atomic_dir(final, "artifact", req.force, what="artifact folder") as work:
            t0 = time.perf_counter()
            try:
                artifact = exporter.convert(job, work, say)
            except ToolchainError:
                raise
            except Exception as e:  # converter internals: keep the message, name the stage
                raise ExportError(f"{req.target} conversion of {bundle.name} failed: {type(e).__name__}: {e}") from e
            convert_s = time.perf_counter() - t0
            desc = exporter.describe(job, artifact)
            fixed = parity.smooth_random_images(1, bundle.input_size, PARITY_SEED)
            manifest_mod.save_fixed_input(work / FIXED_INPUT_FILE, fixed[0])
            if req.verify:
                say(f"{name}: checking parity against PyTorch")
                result = run_parity(exporter, artifact, desc, check, reference,
                                    req.min_cosine or parity.default_min_cosine(choice.precision, req.compress))
            else:
                result = parity.skipped("--no-verify was given")
            man = manifest_mod.build(job, exporter, artifact, desc, result, convert_s,
                                     reference_sample=_pytorch_features(bundle, fixed)[0][:REFERENCE_SAMPLE_LEN],
                                     fixed_input=FIXED_INPUT_FILE)
            manifest_mod.write(work, man)
        outcomes.append(ExportOutcome(final, man, choice.reasons))
        if result.status == "failed":
            failures.append(f"{name} ({result.reference}): " + "; ".join(result.mismatches))
    if failures:
        raise ParityError("parity failed:\n  " + "\n  ".join(failures))
    return outcomes


def run_parity(exporter: Exporter, artifact: Path, desc: dict[str, Any], pixels: np.ndarray,
               reference: np.ndarray, min_cosine: float) -> parity.ParityResult:
    try:
        got, runtime, out_name = exporter.run(artifact, desc, pixels)
    except RuntimeUnavailable as e:
        return parity.skipped(str(e))
    return parity.compare(reference, got, min_cosine=min_cosine, runtime=runtime, output_name=out_name)


def run_artifact(folder: str | Path, pixels_nchw: np.ndarray) -> tuple[np.ndarray, str]:
    """Features of an exported artifact (a folder with manifest.json) for raw pixels NCHW 0..255.

    Used by evaluation and the host runner, so accuracy is measured after export too.
    """
    man = manifest_mod.read(folder)
    exporter = get_exporter(man["format"])
    feats, runtime, _ = exporter.run(Path(folder) / man["file"], man, pixels_nchw.astype(np.float32))
    return feats, runtime
