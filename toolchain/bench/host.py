"""Host runner: time feature extraction on this computer with the apps' protocol and schema.

One run = load the artifact (timed: ``load_ns``), one first inference (timed on its own:
``first_inference_ns``), ``warmup`` untimed runs, then ``iterations`` runs each timed with a
monotonic nanosecond clock (``latency_ns``), ``cooldown_ms`` of sleep between timed runs.
The input is the artifact's fixed input (``fixed_input.png``, the image whose PyTorch features
the manifest keeps), so the result's ``feature_sample`` can be checked against the reference.

Artifacts are opened with :func:`toolchain.artifact.folder.open_artifact`, exactly as ``deploy bench plan``
opens them: the bytes must match the manifest's sha256 (the result records the sha256 measured), a
parity-failed artifact is refused unless ``allow_parity_failed`` (then warned about), and the manifest's file
must lie inside the artifact folder. The runtime is the runtime layer's (``toolchain.runtimes``): the best one
here whose latencies mean something (ONNX Runtime, LiteRT, PyTorch eager for bundles, Apple's Core ML on macOS).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from toolchain import __version__
from toolchain.artifact.folder import ArtifactFolder
from toolchain.bench.timing import TimingProtocol
from toolchain.errors import BenchError, ManifestError, RuntimeUnavailable
from toolchain.policy import FEATURE_SAMPLE_LEN, FIXED_INPUT_SEED
from toolchain.progress import ProgressFn, no_progress

log = logging.getLogger(__name__)

__all__ = ["TimingProtocol", "Target", "resolve_target", "run_target", "time_session", "bench_host", "HostRun",
           "HostOutcome", "host_device"]


@dataclass
class Target:
    """What to time: a checked artifact folder (manifest.json) or a model bundle (model.json)."""

    path: Path
    name: str
    format: str  # an artifact format, or "pytorch" for a bundle
    sha256: str  # of the bytes that will run (measured for artifacts)
    precision: str | None
    pixels_nchw: np.ndarray  # (1, C, H, W) float32, raw 0..255 (C = 1 for a gray model)
    input_source: str  # "image" | "random"
    input_seed: int | None = None
    artifact: ArtifactFolder | None = None
    size_bytes: int | None = None
    warnings: list[str] = field(default_factory=list)


def _load_png(path: Path, shape_hw: tuple[int, int], channels: int = 3) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    if arr.shape[:2] != shape_hw:
        raise BenchError(f"{path} is {arr.shape[1]}x{arr.shape[0]} but the artifact takes {shape_hw[1]}x{shape_hw[0]}")
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])


def _input_channels(art: ArtifactFolder) -> int:
    shape = list(art.manifest.input.shape)
    c = shape[-1] if art.manifest.input.layout == "nhwc" else shape[-3]
    return int(c) if isinstance(c, int) else 3


def _input_hw(art: ArtifactFolder) -> tuple[int, int]:
    shape = list(art.manifest.input.shape)
    if len(shape) == 3:  # Core ML iOS 12 drops the batch dimension
        shape = [1, *shape]
    try:
        dims = [int(v) for v in shape[1:]]
    except (TypeError, ValueError):
        raise ManifestError(f"{art.name}: input shape {shape} has no fixed image size; re-export it") from None
    if len(dims) != 3:
        raise ManifestError(f"{art.name}: input shape {shape} is not an image (N, C, H, W / N, H, W, C)")
    return (dims[0], dims[1]) if art.manifest.input.layout == "nhwc" else (dims[1], dims[2])


def _fixed_input(art: ArtifactFolder) -> Path | None:
    """The fixed input image the manifest names, if it is a file inside the artifact folder."""
    ref = art.manifest.reference_features.input if art.manifest.reference_features else None
    if not ref:
        return None
    path = (art.folder / ref).resolve()
    if art.folder.resolve() not in path.parents:
        raise ManifestError(f"{art.folder}: the fixed input {ref!r} resolves outside the artifact folder: refused")
    return path if path.is_file() else None


def resolve_target(path: str | Path, *, allow_parity_failed: bool = False) -> Target:
    """An artifact folder (or a file inside one) or a bundle folder -> :class:`Target`, checked."""
    from toolchain.artifact import manifest as manifest_mod
    from toolchain.artifact.folder import open_artifact
    from toolchain.artifact.inputs import fixed_input
    from toolchain.artifact.formats import BUNDLE_FORMAT

    path = Path(path)
    folder = path.parent if path.is_file() else path
    if (folder / "model.json").is_file():
        from toolchain.models.bundle import read_meta

        from toolchain.inputspec import meta_chw

        meta = read_meta(folder)
        return Target(folder, meta["name"], BUNDLE_FORMAT, meta["weights"]["sha256"], "fp32",
                      fixed_input(meta_chw(meta)), "random", FIXED_INPUT_SEED, size_bytes=meta["weights"].get("size_bytes"))
    if not (folder / manifest_mod.MANIFEST_FILE).is_file():
        raise ManifestError(f"{path} is neither an exported artifact folder (manifest.json) nor a model bundle "
                            "(model.json); see `deploy export` / `deploy model init`")
    art = open_artifact(folder, allow_parity_failed=allow_parity_failed)
    hw = _input_hw(art)
    png = _fixed_input(art)
    if png is not None:
        pixels, source, seed = _load_png(png, hw, _input_channels(art)), "image", None
    else:
        log.warning("%s has no fixed input image; timing a seeded random image", folder)
        pixels, source, seed = fixed_input((_input_channels(art), *hw)), "random", FIXED_INPUT_SEED
    man = art.manifest
    return Target(art.folder, art.name, man.format, art.sha256, man.precision, pixels, source, seed, art,
                  man.size_bytes, list(art.warnings))


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def host_device() -> dict[str, Any]:
    """The results' device block for this computer (thermal state is not read on hosts: "unknown")."""
    system = {"darwin": "macos"}.get(sys.platform, "linux")
    cpu = _cpu_model()
    return {"platform": system, "identifier": f"{system}-{platform.machine()}", "marketing_name": cpu,
            "os_version": platform.platform(terse=True) if system == "macos" else f"Linux {platform.release()}",
            "thermal_state_start": "unknown", "thermal_state_end": "unknown", "low_power_mode": None,
            "battery_state": None, "cpu": cpu, "cores": os.cpu_count()}


def _run_id(target: Target, runtime: str) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    rid = f"host-{target.name}-{runtime}-{stamp}-{secrets.token_hex(3)}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", rid)[-128:]


@dataclass
class HostRun:
    """A finished run: the results v1 object (``result``) and its timing loop's own facts."""

    result: dict[str, Any]
    wall_ns: int = 0


def time_session(infer: Callable[[], np.ndarray], protocol: TimingProtocol, progress: ProgressFn | None = None,
                 ) -> tuple[int, list[int], np.ndarray, BaseException | None]:
    """The timed loop over one prepared inference (``Session.prepare``): first inference, warmup, timed
    iterations -> (first_ns, latency_ns, features, error)."""
    clock = time.perf_counter_ns
    say = progress or no_progress
    t0 = clock()
    feats = infer()
    first_ns = clock() - t0
    for k in range(protocol.warmup):
        infer()
        say("warmup", k + 1, protocol.warmup, {})
    latency: list[int] = []
    pause_s = protocol.cooldown_ms / 1000.0
    try:
        for k in range(protocol.iterations):
            t0 = clock()
            infer()
            latency.append(clock() - t0)
            say("timed", k + 1, protocol.iterations, {})
            if pause_s:
                time.sleep(pause_s)
    except (Exception, KeyboardInterrupt) as e:  # a failed run still writes what it measured
        return first_ns, latency, feats, e
    return first_ns, latency, feats, None


def run_target(target: Target, protocol: TimingProtocol, progress: ProgressFn | None = None,
               plan_id: str | None = None) -> HostRun:
    """Load and time one target; returns a results v1 object (status ok, partial or error).

    Raises RuntimeUnavailable (no run happened) when no runtime here can time it.
    """
    from toolchain import runtimes
    from toolchain.models.bundle import load_bundle

    say = progress or no_progress
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter_ns()
    say("load", 0, 1, {})
    model: Any = target.artifact.ref if target.artifact is not None else partial(load_bundle, target.path)
    t0 = time.perf_counter_ns()
    _, session = runtimes.open_session(model, target.format, timing=True, threads=protocol.threads)
    infer = session.prepare(target.pixels_nchw)
    load_ns = time.perf_counter_ns() - t0
    say("load", 1, 1, {})
    error: str | None = None
    first_ns, latency, feats, exc = None, [], None, None
    try:
        first_ns, latency, feats, exc = time_session(infer, protocol, progress)
    except Exception as e:  # noqa: BLE001 - the first inference itself failed
        exc = e
    if exc is not None:
        error = f"{type(exc).__name__}: {exc}"
    status = "ok" if exc is None else ("partial" if latency else "error")
    flat = None if feats is None else np.asarray(feats, dtype=np.float32).reshape(-1)
    result = {
        "schema_version": 1,
        "run_id": _run_id(target, session.runtime["name"]),
        "status": status,
        "error": error,
        "created_at": created,
        "plan_id": plan_id,
        "artifact": {"name": target.name, "format": target.format, "sha256": target.sha256,
                     "precision": target.precision, "size_bytes": target.size_bytes},
        "device": host_device(),
        "app": {"name": "deploy bench host", "version": __version__,
                "build": f"python{sys.version_info.major}.{sys.version_info.minor}"},
        "runtime": dict(session.runtime),
        "protocol": {"warmup": protocol.warmup, "iterations": protocol.iterations,
                     "input_source": target.input_source, "input_seed": target.input_seed,
                     "cooldown_ms": protocol.cooldown_ms},
        "load_ns": int(load_ns),
        "compile_ns": None,
        "first_inference_ns": None if first_ns is None else int(first_ns),
        "latency_ns": [int(v) for v in latency],
        "feature_dim": None if flat is None else int(flat.size),
        "feature_sample": None if flat is None else [float(v) for v in flat[:FEATURE_SAMPLE_LEN]],
    }
    return HostRun(result, wall_ns=time.perf_counter_ns() - start)


@dataclass
class HostOutcome:
    """One target's outcome: the run and where the store put it, why it failed, or why it cannot run here."""

    target: Target
    run: HostRun | None = None
    stored: Any = None  # toolchain.bench.store.AddOutcome
    error: str | None = None
    #: no runtime on this machine times it (Core ML off macOS): not a failure, the rest still run
    skipped: str | None = None

    @property
    def warnings(self) -> list[str]:
        return self.target.warnings


def bench_host(paths: list[str | Path], protocol: TimingProtocol, store_dir: str | Path,
               progress: ProgressFn | None = None, *, allow_parity_failed: bool = False) -> list[HostOutcome]:
    """Time each target and add its result to the results store at ``store_dir``.

    Bad paths, tampered artifacts and parity-failed ones (unless ``allow_parity_failed``) fail before any
    timing. A target whose runtime is unavailable here (Core ML off macOS) is reported in its outcome's
    ``skipped`` and the others still run. ``progress`` gets ``info = {"target": name}``.
    """
    from toolchain.bench.store import ResultStore

    targets = [resolve_target(p, allow_parity_failed=allow_parity_failed) for p in paths]
    store = ResultStore(store_dir)
    out = []
    for t in targets:
        cb = ((lambda ph, d, n, info, _n=t.name: progress(ph, d, n, {**info, "target": _n}))
              if progress else None)
        try:
            run = run_target(t, protocol, cb)
        except RuntimeUnavailable as e:
            out.append(HostOutcome(t, skipped=str(e)))
            continue
        out.append(HostOutcome(t, run, store.add_object(run.result, source=f"host:{t.path}")))
    return out
