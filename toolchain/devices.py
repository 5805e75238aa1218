"""The device catalog: what each target device runs, and what an export for it must be.

One table (``CATALOG``) decides format, Core ML specification version, default precision
and minimum OS per device; ``docs/devices.md`` documents it. ``choose()`` returns the
decision with the reasons, so ``deploy export`` can print why it chose what it chose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from toolchain.errors import DeviceError

#: Core ML specification version introduced by each iOS major version.
COREML_SPEC_FOR_IOS = {12: 3, 13: 4, 14: 5, 15: 6, 16: 7, 17: 8, 18: 9}
#: coremltools 9 targets iOS 13..18; iOS 12 (spec 3) is reached by lowering a spec-4 NeuralNetwork.
MIN_IOS, MAX_IOS = 12, 18
#: Compressed (sparse, palettized) and int8 weights are constexpr ops: ML Program spec 7 (iOS 16).
COMPRESSED_WEIGHTS_IOS = 16
#: Joint compression (sparse + palette in one constexpr_lut_to_sparse op) is an iOS 18 op set (spec 9).
JOINT_COMPRESSION_IOS = 18


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

TARGETS = ("onnx", "coreml", "tflite")
PRECISIONS = ("fp32", "fp16", "int8")
LAYOUTS = ("nchw", "nhwc")


@dataclass(frozen=True)
class Device:
    key: str
    name: str
    platform: str  # "ios" | "android"
    identifiers: tuple[str, ...]
    soc: str
    last_os: str
    neural_engine: str  # "none" | "reserved" | "yes" | "varies"
    compute_units: tuple[str, ...]  # what the harness can ask for on this device
    notes: str = ""

    @property
    def last_os_major(self) -> int:
        return int(self.last_os.split(".")[0])


CATALOG: dict[str, Device] = {
    d.key: d
    for d in [
        Device("iphone6", "iPhone 6", "ios", ("iPhone7,2",), "A8", "12.5.7", "none", ("cpuOnly", "cpuAndGPU", "all"),
               "stops at iOS 12: NeuralNetwork .mlmodel, spec 3"),
        Device("iphonex", "iPhone X", "ios", ("iPhone10,3", "iPhone10,6"), "A11", "16.7", "reserved",
               ("cpuOnly", "cpuAndGPU", "all"), "the A11 Neural Engine is not usable by Core ML"),
        Device("iphonexr", "iPhone XR", "ios", ("iPhone11,8",), "A12", "18", "yes",
               ("cpuOnly", "cpuAndGPU", "cpuAndNeuralEngine", "all")),
        Device("ipadair2", "iPad Air 2", "ios", ("iPad5,3", "iPad5,4"), "A8X", "15.8", "none",
               ("cpuOnly", "cpuAndGPU", "all")),
        Device("ipad7", "iPad (7th generation)", "ios", ("iPad7,11", "iPad7,12"), "A10", "18", "none",
               ("cpuOnly", "cpuAndGPU", "all")),
        Device("android", "Android phone", "android", (), "any", "any", "varies", ("cpu", "gpu", "nnapi"),
               "LiteRT: XNNPACK on CPU, GPU delegate, NNAPI where available"),
    ]
}


def get_device(key: str) -> Device:
    try:
        return CATALOG[key.lower()]
    except KeyError:
        raise DeviceError(f"unknown device {key!r}; known: {', '.join(CATALOG)} (or 'all')") from None


def parse_devices(values: list[str] | None) -> list[Device]:
    """Resolve repeated ``--device`` values; ``all`` means every device; commas also split."""
    keys: list[str] = []
    for v in values or []:
        keys += [k.strip() for k in v.split(",") if k.strip()]
    if any(k.lower() == "all" for k in keys):
        return list(CATALOG.values())
    out: list[Device] = []
    for k in keys:
        d = get_device(k)
        if d not in out:
            out.append(d)
    return out


def device_by_identifier(identifier: str) -> Device | None:
    """The catalog entry for a hardware identifier such as ``iPhone11,8`` (None if unknown)."""
    for d in CATALOG.values():
        if identifier in d.identifiers:
            return d
    return None


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


def coreml_format_for(min_ios: int) -> tuple[str, int]:
    """Core ML format and spec version for a minimum iOS: 15+ ML Program, 13-14 NeuralNetwork, 12 spec 3."""
    if not MIN_IOS <= min_ios <= MAX_IOS:
        raise DeviceError(f"--min-ios {min_ios} is outside what can be exported ({MIN_IOS}..{MAX_IOS})")
    fmt = "mlprogram" if min_ios >= 15 else "neuralnetwork"
    return fmt, COREML_SPEC_FOR_IOS[min_ios]


DEFAULT_PRECISION = {"onnx": "fp32", "coreml": "fp16", "tflite": "fp32"}
DEFAULT_LAYOUT = {"onnx": "nchw", "coreml": "nchw", "tflite": "nhwc"}


def choose(
    target: str,
    device: Device | None,
    precision: str | None = None,
    min_ios: int | None = None,
    layout: str | None = None,
    compress: str | None = None,
) -> ExportChoice:
    """Decide format, precision, spec version and minimum OS for ``target`` on ``device``.

    >>> c = choose("coreml", get_device("iphone6"))
    >>> (c.coreml_format, c.spec_version, c.min_ios, c.precision)
    ('neuralnetwork', 3, 12, 'fp16')
    >>> choose("coreml", get_device("iphonexr")).spec_version
    9
    """
    if target not in TARGETS:
        raise DeviceError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    if precision is not None and precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if layout is not None and layout not in LAYOUTS:
        raise DeviceError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    reasons: list[str] = []
    if device is not None:
        if target == "coreml" and device.platform != "ios":
            raise DeviceError(f"Core ML runs on Apple devices only; {device.name} needs --target tflite or onnx")
        if target == "tflite" and device.platform == "ios":
            reasons.append(f"TFLite on {device.name} needs the LiteRT iOS runtime; the harness app uses Core ML")
    prec = precision or DEFAULT_PRECISION[target]
    if precision is None:
        reasons.append(f"precision {prec}: the default for {target}")
    lay = layout or DEFAULT_LAYOUT[target]
    if target != "coreml":
        return ExportChoice(target, prec, lay, reasons=tuple(reasons))
    if lay != "nchw":
        raise DeviceError("Core ML exports take NCHW input (the model's native layout); drop --layout nhwc")
    needs = compressed_weights_ios(compress, prec)  # compressed/int8 weights are constexpr ops (spec 7, or 9)
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
    return ExportChoice(target, prec, lay, min_ios, fmt, spec, tuple(reasons))
