"""Artifact formats: their names, what each format plugin knows about itself, and the export decision per device.

The format names are defined here, once: runtimes (``toolchain.runtimes``) and readers compare against these
constants and never import an exporter. A *format plugin* is one module per format in ``toolchain/export/``
(``onnx.py``, ``coreml/exporter.py``, ``tflite.py``) with one class that derives from :class:`ArtifactFormat`
and implements the converter (``convert``, ``describe``, ``versions``: ``toolchain.export.types.Exporter``); it
is imported by name on first use, so this contract layer does not depend on the exporters above it. Everything the rest of the toolchain needs to know about a format
is asked of its plugin, never decided by comparing its name:

- ``platforms`` it runs on and ``app_platform``, the harness app that runs it (``bench plan``);
- ``weight_compression``: whether ``--compress`` applies;
- default precision and layout, file suffix, the artifact name's parts, the minimum OS text;
- :meth:`ArtifactFormat.decide` (Core ML: spec version and minimum iOS per device),
  :meth:`ArtifactFormat.check_device` (can this device's app run this artifact?) and
  :meth:`ArtifactFormat.label` (how the export table names it).

Plugin modules import nothing heavy at the top (converters import torch/coremltools/litert-torch inside
``convert``), so asking a format for its facts is cheap. :func:`choose` is the one export decision.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from toolchain.devices import Device
from toolchain.errors import DeviceError
from toolchain.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from toolchain.artifact.manifest import Manifest

PRECISIONS = ("fp32", "fp16", "int8")
LAYOUTS = ("nchw", "nhwc")

ONNX = "onnx"
COREML = "coreml"
TFLITE = "tflite"
#: Not an artifact format: a model bundle run by PyTorch (a result's ``artifact.format`` when a bundle was timed).
BUNDLE_FORMAT = "pytorch"

#: format name -> its plugin, "module:Class". Adding a format = one plugin module + one line here.
PLUGINS = {
    ONNX: "toolchain.export.onnx:OnnxExporter",
    COREML: "toolchain.export.coreml.exporter:CoreMLExporter",
    TFLITE: "toolchain.export.tflite:TFLiteExporter",
}


@dataclass(frozen=True)
class ExportChoice:
    """What one export must be. ``key`` groups devices that can share one artifact."""

    target: str
    precision: str
    layout: str
    min_ios: int | None = None
    coreml_format: str | None = None  # "neuralnetwork" | "mlprogram"
    spec_version: int | None = None
    reasons: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> tuple:
        return (self.target, self.precision, self.layout, self.min_ios, self.coreml_format, self.spec_version)


class ArtifactFormat:
    """The facts of one artifact format and its per-device decisions. Plugins override what differs."""

    name: ClassVar[str]
    display: ClassVar[str]  # "Core ML", for messages
    suffix: ClassVar[str]  # the artifact file's suffix (a plugin may choose per export: :meth:`suffix_for`)
    platforms: ClassVar[tuple[str, ...]] = ("ios", "android")
    app_platform: ClassVar[str | None] = None  # the harness app that runs this format
    weight_compression: ClassVar[bool] = False  # `--compress` applies
    default_precision: ClassVar[str] = "fp32"
    default_layout: ClassVar[str] = "nchw"
    min_os_text: ClassVar[str | None] = None  # e.g. "Android 5.0 (API 21)"

    # --- decisions ---------------------------------------------------------------------------

    def refuse_device(self, device: Device) -> str | None:
        """Why this format cannot be exported for ``device`` at all (None: it can)."""
        if device.platform not in self.platforms:
            return f"{self.display} does not run on {device.name}"
        return None

    def device_note(self, device: Device) -> str | None:
        """A reason line for an export that works on ``device`` but not in its harness app."""
        return None

    def serves(self, device: Device, many: bool) -> bool:
        """Does ``--device`` (``many``: one of several, e.g. ``all``) mean an artifact of this format for it?"""
        if device.platform not in self.platforms:
            return False
        return not (many and self.app_platform is not None and device.platform != self.app_platform)

    def decide(self, device: Device | None, precision: str, layout: str, min_ios: int | None,
               compress: str | None, reasons: list[str]) -> ExportChoice:
        """The export for ``device`` (None: no device given), once names and defaults are settled."""
        return ExportChoice(self.name, precision, layout, reasons=tuple(reasons))

    def name_parts(self, choice: ExportChoice) -> list[str]:
        """What the artifact name adds after ``<bundle>_<format>_<precision>`` (e.g. the layout)."""
        return [choice.layout] if choice.layout != "nchw" else []

    def min_os(self, choice: ExportChoice) -> str | None:
        return self.min_os_text

    def suffix_for(self, choice: ExportChoice) -> str:
        return self.suffix

    def check_device(self, manifest: "Manifest", device: Device) -> list[str]:
        """Raise if ``device``'s harness cannot run this artifact; return warnings (default: none)."""
        return []

    def label(self, manifest: "Manifest") -> str:
        """How tables name an artifact of this format."""
        return self.name

    def versions(self) -> dict[str, str]:
        return {}


_formats: Registry[ArtifactFormat] | None = None


def formats() -> Registry[ArtifactFormat]:
    """The format registry (plugins imported on first use; each is light until it converts)."""
    global _formats
    if _formats is None:
        reg: Registry[ArtifactFormat] = Registry("export target")
        for name, spec in PLUGINS.items():
            module, cls = spec.split(":")
            plugin = getattr(importlib.import_module(module), cls)()
            if plugin.name != name:
                raise RuntimeError(f"{spec} calls itself {plugin.name!r}, registered as {name!r}")
            reg.add(name, plugin)
        _formats = reg
    return _formats


def get_format(name: str) -> ArtifactFormat:
    """The plugin of format ``name``; an unknown name raises RegistryError listing the known ones."""
    return formats().get(name)


def format_names() -> list[str]:
    return formats().names()


def app_format(platform: str) -> ArtifactFormat:
    """The format the harness app of ``platform`` (ios, android) runs."""
    for name in formats():
        if formats().get(name).app_platform == platform:
            return formats().get(name)
    raise DeviceError(f"no harness app runs on {platform}")


def choose(target: str, device: Device | None, precision: str | None = None, min_ios: int | None = None,
           layout: str | None = None, compress: str | None = None) -> ExportChoice:
    """Decide format, precision, spec version and minimum OS for ``target`` on ``device``.

    Names and defaults are settled here; the rest is the plugin's :meth:`ArtifactFormat.decide`
    (worked examples: ``CoreMLExporter.decide``).
    """
    if target not in formats():
        raise DeviceError(f"unknown target {target!r}; known: {', '.join(format_names())}")
    fmt = formats().get(target)
    if precision is not None and precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if layout is not None and layout not in LAYOUTS:
        raise DeviceError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    reasons: list[str] = []
    if device is not None:
        refused = fmt.refuse_device(device)
        if refused:
            raise DeviceError(refused)
        note = fmt.device_note(device)
        if note:
            reasons.append(note)
    prec = precision or fmt.default_precision
    if precision is None:
        reasons.append(f"precision {prec}: the default for {target}")
    return fmt.decide(device, prec, layout or fmt.default_layout, min_ios, compress, reasons)


def artifact_name(bundle_name: str, choice: ExportChoice, compress: str | None, int8_mode: str = "static") -> str:
    """A file-system- and Swift-identifier-safe name, e.g. ``resnet50_ocular_coreml_fp16_ios12``."""
    parts = [bundle_name, choice.target, choice.precision, *get_format(choice.target).name_parts(choice)]
    if compress:
        parts.append(compress)
    if choice.precision == "int8" and int8_mode == "dynamic":
        parts.append("dynamic")
    return re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts))


def converter_versions(targets: list[str]) -> dict[str, Any]:
    """Versions of every converter the given targets use (pipeline stage keys hold them)."""
    out: dict[str, Any] = {}
    for t in targets:
        out.update(get_format(t).versions())
    return dict(sorted(out.items()))
