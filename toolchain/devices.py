"""The device catalog: each target device's platform, SoC, last OS and compute units.

One table (``CATALOG``), documented in ``docs/devices.md``. What an export for a device must be (format, Core
ML spec version, precision, minimum OS) is decided by the format plugins from these facts:
:func:`toolchain.artifact.formats.choose`.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolchain.errors import DeviceError


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
