"""The runtime layer: every way this machine can run an exported artifact (or a bundle), in one registry.

A runtime opens an artifact once; its :class:`~toolchain.runtimes.base.Session` serves parity (the export
driver), evaluation (``deploy evaluate``) and host timing (``deploy bench host``). Each runtime says which
formats it opens, whether its latencies mean anything, and why it cannot run here (Apple's runtime off macOS);
nothing outside a runtime decides that by a format's name.

A new runtime is one module (a class like :class:`~toolchain.runtimes.base.Runtime`) plus one line below.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import RuntimeUnavailable
from toolchain.registry import Registry
from toolchain.runtimes.base import Runtime, Session

#: runtime name -> "module:Class" (imported on first use)
RUNTIMES: Registry[str] = Registry("runtime")
RUNTIMES.add("onnxruntime", "toolchain.runtimes.onnxruntime:OnnxRuntime")
RUNTIMES.add("litert", "toolchain.runtimes.litert:LiteRT")
RUNTIMES.add("coreml-ref", "toolchain.runtimes.coreml_ref:CoreMLReference")
RUNTIMES.add("coreml-apple", "toolchain.runtimes.coreml_apple:AppleCoreML")
RUNTIMES.add("pytorch", "toolchain.runtimes.pytorch:PyTorchRuntime")

_loaded: dict[str, Runtime] = {}


def get_runtime(name: str) -> Runtime:
    """The runtime registered as ``name`` (an unknown name lists the known ones)."""
    if name not in _loaded:
        module, cls = RUNTIMES.get(name).split(":")
        _loaded[name] = getattr(importlib.import_module(module), cls)()
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


def parity_runs(model: Any, pixels_nchw: np.ndarray, reference: np.ndarray, min_cosine: float) -> list[tuple[str, Any]]:
    """Parity of ``model`` (an ArtifactRef) with ``reference`` features on every runtime of its format.

    Returns (runtime name, :class:`~toolchain.export.parity.ParityResult`) pairs: runtimes that ran first (the
    first is the artifact's primary parity), then those that could not run here, recorded ``skipped`` with why.
    """
    from toolchain.export import parity

    ran, skipped = [], []
    for rt in runtimes_for(model.format):
        why = rt.unavailable()
        if why is not None:
            skipped.append((rt.name, parity.skipped(why, reference=rt.name)))
            continue
        try:
            session = rt.open(model)
            got = session.features(pixels_nchw)
        except RuntimeUnavailable as e:
            skipped.append((rt.name, parity.skipped(str(e), reference=rt.name)))
            continue
        ran.append((rt.name, parity.compare(reference, got, min_cosine=min_cosine, runtime=session.description,
                                            output_name=session.output_name)))
    if not ran and not skipped:
        return [("none", parity.skipped(f"no runtime runs {model.format} artifacts"))]
    return ran + skipped


def run_artifact(folder: str | Path, pixels_nchw: np.ndarray, *, allow_parity_failed: bool = False,
                 ) -> tuple[np.ndarray, str]:
    """Features of an exported artifact folder for raw pixels NCHW 0..255 -> (features, what ran).

    The folder is checked first (:func:`toolchain.export.artifact.open_artifact`).
    """
    from toolchain.export.artifact import open_artifact

    art = open_artifact(folder, allow_parity_failed=allow_parity_failed)
    _, session = open_session(art.ref, art.manifest.format)
    return session.features(np.asarray(pixels_nchw, np.float32)), session.description
