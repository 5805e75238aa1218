"""Host runner: time feature extraction on this computer with the apps' protocol and schema.

One run = load the artifact (timed: ``load_ns``), one first inference (timed on its own:
``first_inference_ns``), ``warmup`` untimed runs, then ``iterations`` runs each timed with a
monotonic nanosecond clock (``latency_ns``), ``cooldown_ms`` of sleep between timed runs.
The input is the artifact's fixed input (``fixed_input.png``, the image whose PyTorch features
the manifest keeps), so the result's ``feature_sample`` can be checked against the reference.

Runtimes are a registry keyed by artifact format; each builds a :class:`Session` that keeps
the interpreter open and does exactly one inference per ``infer()`` call:

- ``onnx``: ONNX Runtime, CPU provider, ``intra_op_num_threads = threads``.
- ``tflite``: LiteRT (``ai_edge_litert``) interpreter, default XNNPACK delegate, ``num_threads``.
  Int8 inputs/outputs use the export driver's (de)quantisation.
- ``pytorch``: a model bundle in eager mode (the export driver's ``DeployModule``: raw pixels in).
- ``coreml``: coremltools' runtime, macOS only; elsewhere :class:`RuntimeUnavailable`.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from toolchain import __version__
from toolchain.errors import RuntimeUnavailable, ToolchainError
from toolchain.registry import Registry

log = logging.getLogger(__name__)

FEATURE_SAMPLE_LEN = 16
#: Seed of the export driver's fixed input (``toolchain.export.base.PARITY_SEED``), used for bundles.
FIXED_INPUT_SEED = 1234

#: progress(phase, done, total); phase is "load", "warmup" or "timed".
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TimingProtocol:
    """The timing protocol (same fields as the apps' run plans)."""

    warmup: int = 10
    iterations: int = 100
    threads: int = 2
    cooldown_ms: int = 0

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.iterations < 1 or self.threads < 1 or self.cooldown_ms < 0:
            raise ToolchainError(f"bad protocol {self}: need warmup >= 0, iterations >= 1, threads >= 1, cooldown >= 0")


@dataclass
class Target:
    """What to time: an exported artifact folder (manifest.json) or a model bundle (model.json)."""

    path: Path
    name: str
    format: str  # onnx | tflite | coreml | pytorch
    sha256: str
    precision: str | None
    pixels_nchw: np.ndarray  # (1, 3, H, W) float32, raw 0..255
    input_source: str  # "image" | "random"
    input_seed: int | None = None
    manifest: dict[str, Any] | None = None
    size_bytes: int | None = None


class Session(Protocol):
    runtime: dict[str, Any]  # results v1 "runtime" block

    def infer(self) -> np.ndarray:
        """One feature extraction of the prepared input; returns float32 features (1, D)."""
        ...


#: artifact format -> factory(target, threads) -> Session. The factory's duration is ``load_ns``.
RUNTIMES: Registry[Callable[[Target, int], Session]] = Registry("host runtime")


def _load_png(path: Path, shape_hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    if arr.shape[:2] != shape_hw:
        raise ToolchainError(f"{path} is {arr.shape[1]}x{arr.shape[0]} but the artifact takes {shape_hw[1]}x{shape_hw[0]}")
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])


def _input_hw(man: dict[str, Any]) -> tuple[int, int]:
    shape = [s for s in man["input"]["shape"]]
    if len(shape) == 3:  # Core ML iOS 12 drops the batch dimension
        shape = [1, *shape]
    if man["input"].get("layout", "nchw") == "nhwc":
        return int(shape[1]), int(shape[2])
    return int(shape[2]), int(shape[3])


def resolve_target(path: str | Path) -> Target:
    """An artifact folder (or a file inside one) or a bundle folder -> :class:`Target`."""
    from toolchain.export import manifest as manifest_mod
    from toolchain.export.parity import smooth_random_images

    path = Path(path)
    folder = path.parent if path.is_file() else path
    if (folder / "model.json").is_file():
        from toolchain.models.bundle import read_meta

        meta = read_meta(folder)
        size = int(meta["input"]["size"][0])
        return Target(folder, meta["name"], "pytorch", meta["weights"]["sha256"], "fp32",
                      smooth_random_images(1, size, FIXED_INPUT_SEED), "random", FIXED_INPUT_SEED,
                      size_bytes=meta["weights"].get("size_bytes"))
    if not (folder / manifest_mod.MANIFEST_FILE).is_file():
        raise ToolchainError(f"{path} is neither an exported artifact folder (manifest.json) nor a model bundle "
                             "(model.json); see `deploy export` / `deploy model init`")
    man = manifest_mod.read(folder)
    hw = _input_hw(man)
    ref = (man.get("reference_features") or {}).get("input")
    if ref and (folder / ref).is_file():
        pixels, source, seed = _load_png(folder / ref, hw), "image", None
    else:
        log.warning("%s has no fixed input image; timing a seeded random image", folder)
        if hw[0] != hw[1]:
            raise ToolchainError(f"{folder}: no fixed input image and a non-square input {hw}")
        pixels, source, seed = smooth_random_images(1, hw[0], FIXED_INPUT_SEED), "random", FIXED_INPUT_SEED
    return Target(folder, man["name"], man["format"], man["sha256"], man.get("precision"), pixels, source, seed, man,
                  man.get("size_bytes"))


def _layout_input(target: Target) -> np.ndarray:
    layout = (target.manifest or {}).get("input", {}).get("layout", "nchw")
    x = target.pixels_nchw if layout == "nchw" else target.pixels_nchw.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


@RUNTIMES.register("onnx")
def _onnx_session(target: Target, threads: int) -> Session:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(target.path / target.manifest["file"]), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: _layout_input(target)}
    out = [sess.get_outputs()[0].name]

    class _S:
        bare = staticmethod(lambda: sess.run(out, feed))  # the runtime call alone (overhead benchmark)
        runtime = {"name": "onnxruntime", "version": ort.__version__, "compute_units": "cpu",
                   "delegate": "CPUExecutionProvider", "threads": threads}

        def infer(self) -> np.ndarray:
            return sess.run(out, feed)[0]

    return _S()


@RUNTIMES.register("tflite")
def _tflite_session(target: Target, threads: int) -> Session:
    from ai_edge_litert.interpreter import Interpreter

    from toolchain.export.manifest import package_version
    from toolchain.export.tflite import dequantize_output, quantize_input

    it = Interpreter(model_path=str(target.path / target.manifest["file"]), num_threads=threads)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    x = quantize_input(_layout_input(target), i)
    if tuple(x.shape) != tuple(i["shape"]):
        raise ToolchainError(f"{target.path}: input {tuple(x.shape)} does not fit the model's {tuple(i['shape'])}")

    class _S:
        runtime = {"name": "litert", "version": package_version("ai-edge-litert"), "compute_units": "cpu",
                   "delegate": "XNNPACK", "threads": threads}

        def infer(self) -> np.ndarray:
            it.set_tensor(i["index"], x)
            it.invoke()
            return dequantize_output(it.get_tensor(o["index"]), o)

    return _S()


@RUNTIMES.register("pytorch")
def _pytorch_session(target: Target, threads: int) -> Session:
    import torch

    from toolchain.export.base import DeployModule
    from toolchain.models.bundle import load_bundle

    torch.set_num_threads(threads)
    b = load_bundle(target.path)
    mod = DeployModule(b.model, b.mean, b.std, "nchw").eval()
    x = torch.from_numpy(target.pixels_nchw)

    class _S:
        runtime = {"name": "pytorch", "version": torch.__version__, "compute_units": "cpu",
                   "delegate": "eager", "threads": threads}

        def infer(self) -> np.ndarray:
            with torch.inference_mode():
                return mod(x).numpy()

    return _S()


@RUNTIMES.register("coreml")
def _coreml_session(target: Target, threads: int) -> Session:
    if sys.platform != "darwin":
        raise RuntimeUnavailable(f"{target.name}: Core ML artifacts need macOS to run (Apple's runtime); on this "
                                 f"{platform.system()} host time its ONNX or TFLite export, or run the iOS harness")
    try:
        import coremltools as ct
    except ImportError as e:
        raise RuntimeUnavailable(f"coremltools is not importable: {e}") from None
    # macOS-only path: not exercised in Linux CI (see tests marked `macos`).
    m = ct.models.MLModel(str(target.path / target.manifest["file"]), compute_units=ct.ComputeUnit.CPU_ONLY)
    name = target.manifest["input"]["name"]
    x = _layout_input(target)
    if len(target.manifest["input"]["shape"]) == 3:
        x = x[0]
    out_name = target.manifest["output"].get("name", "features")

    class _S:
        runtime = {"name": "coreml", "version": ct.__version__, "compute_units": "cpuOnly",
                   "delegate": None, "threads": None}

        def infer(self) -> np.ndarray:
            return np.asarray(m.predict({name: x})[out_name], dtype=np.float32).reshape(1, -1)

    return _S()


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


def time_session(session: Session, protocol: TimingProtocol, progress: ProgressFn | None = None,
                 ) -> tuple[int, list[int], np.ndarray, BaseException | None]:
    """The timed loop: first inference, warmup, timed iterations -> (first_ns, latency_ns, features, error)."""
    clock = time.perf_counter_ns
    say = progress or (lambda *a: None)
    t0 = clock()
    feats = session.infer()
    first_ns = clock() - t0
    for k in range(protocol.warmup):
        session.infer()
        say("warmup", k + 1, protocol.warmup)
    latency: list[int] = []
    pause_s = protocol.cooldown_ms / 1000.0
    try:
        for k in range(protocol.iterations):
            t0 = clock()
            session.infer()
            latency.append(clock() - t0)
            say("timed", k + 1, protocol.iterations)
            if pause_s:
                time.sleep(pause_s)
    except (Exception, KeyboardInterrupt) as e:  # a failed run still writes what it measured
        return first_ns, latency, feats, e
    return first_ns, latency, feats, None


def run_target(target: Target, protocol: TimingProtocol, progress: ProgressFn | None = None,
               plan_id: str | None = None) -> HostRun:
    """Load and time one target; returns a results v1 object (status ok, partial or error)."""
    factory = RUNTIMES.get(target.format)
    say = progress or (lambda *a: None)
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter_ns()
    say("load", 0, 1)
    t0 = time.perf_counter_ns()
    session = factory(target, protocol.threads)  # RuntimeUnavailable propagates: no run happened
    load_ns = time.perf_counter_ns() - t0
    say("load", 1, 1)
    error: str | None = None
    first_ns, latency, feats, exc = None, [], None, None
    try:
        first_ns, latency, feats, exc = time_session(session, protocol, progress)
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
    """One target's outcome: the run and where the store put it, or why it could not run."""

    target: Target
    run: HostRun | None = None
    stored: Any = None  # toolchain.bench.store.AddOutcome
    error: str | None = None


def bench_host(paths: list[str | Path], protocol: TimingProtocol, store_dir: str | Path,
               progress: Callable[[str, str, int, int], None] | None = None) -> list[HostOutcome]:
    """Time each target and add its result to the results store at ``store_dir``.

    Bad paths fail before any timing. A target whose runtime is unavailable here (Core ML off
    macOS) is reported in its outcome's ``error`` and the others still run.
    """
    from toolchain.bench.store import ResultStore

    targets = [resolve_target(p) for p in paths]
    store = ResultStore(store_dir)
    out = []
    for t in targets:
        cb = (lambda ph, d, n, _n=t.name: progress(_n, ph, d, n)) if progress else None
        try:
            run = run_target(t, protocol, cb)
        except RuntimeUnavailable as e:
            out.append(HostOutcome(t, error=str(e)))
            continue
        out.append(HostOutcome(t, run, store.add_object(run.result, source=f"host:{t.path}")))
    return out
