"""The runtime layer: every way this machine can run an exported artifact (or a bundle), in one registry.

A runtime opens an artifact once; its :class:`~toolchain.runtimes.base.Session` serves parity (the export
driver), evaluation (``deploy evaluate``) and host timing (``deploy bench host``). Each runtime says which
formats it opens, whether its latencies mean anything, and why it cannot run here (Apple's runtime off macOS);
nothing outside a runtime decides that by a format's name.

A new runtime is one module (a subclass of :class:`~toolchain.runtimes.base.Runtime`) plus one line below. Runtimes
read format names from the artifact contract (``toolchain.artifact.formats``), never from an exporter; settling
an artifact's parity over them is the export layer's (``toolchain.export.parity``).
"""

from __future__ import annotations

import importlib
from typing import Any

from toolchain.errors import RuntimeUnavailable
from toolchain.registry import Registry
from toolchain.runtimes.base import Runtime, Session

#: runtime name -> "module:Class" (imported on first use)
RUNTIMES: Registry[str] = Registry("runtime")
RUNTIMES.add("onnxruntime", "toolchain.runtimes.onnxruntime:OnnxRuntime")
RUNTIMES.add("litert", "toolchain.runtimes.litert:LiteRT")
RUNTIMES.add("coreml-ref", "toolchain.runtimes.coreml.reference:CoreMLReference")
RUNTIMES.add("coreml", "toolchain.runtimes.coreml.apple:AppleCoreML")
RUNTIMES.add("pytorch", "toolchain.runtimes.pytorch:PyTorchRuntime")

_loaded: dict[str, Runtime] = {}


def get_runtime(name: str) -> Runtime:
    """The runtime registered as ``name`` (an unknown name lists the known ones)."""
    if name not in _loaded:
        module, cls = RUNTIMES.get(name).split(":")
        runtime = getattr(importlib.import_module(module), cls)()
        if runtime.name != name:
            raise RuntimeError(f"{module}:{cls} calls itself {runtime.name!r}, registered as {name!r}")
        _loaded[name] = runtime
    return _loaded[name]


def runtimes_for(fmt: str, *, timing: bool = False) -> list[Runtime]:
    """Every runtime that opens ``fmt`` (only those whose latencies mean something with ``timing``), best first."""
    found = [get_runtime(n) for n in RUNTIMES.names()]
    return sorted((r for r in found if fmt in r.formats and (r.timing or not timing)),
                  key=lambda r: (r.preference, r.name))


def open_session(model: Any, fmt: str, *, timing: bool = False, threads: int | None = None) -> tuple[Runtime, Session]:
    """Open ``model`` (an ArtifactRef, or a bundle for ``pytorch``) with the best runtime available here.

    Raises RuntimeUnavailable naming each runtime that could have and why it cannot.
    """
    candidates = runtimes_for(fmt, timing=timing)
    reasons = []
    for rt in candidates:
        why = rt.unavailable()
        if why is None:
            return rt, rt.open(model, threads)
        reasons.append(f"{rt.name}: {why}" if len(candidates) > 1 else why)
    what = getattr(model, "name", None) or str(model)
    if not candidates:
        raise RuntimeUnavailable(f"{what}: no runtime {'times' if timing else 'runs'} {fmt} artifacts")
    raise RuntimeUnavailable(f"{what}: " + "; ".join(reasons))


def runtime_packages() -> list[str]:
    """The pip distributions every registered runtime needs (the pipeline keys evaluation on their versions)."""
    return sorted({dist for n in RUNTIMES.names() for _, dist in get_runtime(n).requires})
