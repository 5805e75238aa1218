"""Checks the report flags for each run, registered by name so each one is tested.

- ``numerics``: the run's ``feature_sample`` against the PyTorch reference features of the same
  fixed input kept in the artifact's manifest (cosine and max-abs over the sample; the cosine
  floor is the export parity's, :func:`toolchain.policy.min_cosine` of the artifact's precision
  and weight compression).
- ``thermal``: the thermal state changed during the run, or the run started hot.
- ``iterations``: fewer timed samples than the report's minimum.
- ``artifact``: the artifact's sha256 matches no manifest (or bundle) given to the report.
- ``status``: the run failed or stopped early.
- ``parity``: the artifact's export parity (manifest ``parity.status``) is not "passed": the report does not time it.

Each check returns a :class:`Flag` (level ``ok``, ``warn``, ``fail`` or ``skipped`` with why).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from toolchain.artifact.compare import cosine_per_sample
from toolchain.policy import FIXED_INPUT_SEED, MIN_TIMED_ITERATIONS, min_cosine
from toolchain.registry import Registry
from toolchain.report.catalog import Catalog

DEFAULT_MIN_ITERATIONS = MIN_TIMED_ITERATIONS  # policy's; the CLI shows the same number
HOT = ("serious", "critical")


@dataclass(frozen=True)
class Flag:
    check: str
    level: str  # ok | warn | fail | skipped
    message: str


@dataclass(frozen=True)
class CheckContext:
    catalog: Catalog
    min_iterations: int = DEFAULT_MIN_ITERATIONS


CHECKS: Registry[Callable[[dict[str, Any], CheckContext], Flag]] = Registry("report check")


@CHECKS.register("numerics")
def check_numerics(r: dict[str, Any], ctx: CheckContext) -> Flag:
    sample = r.get("feature_sample")
    if not sample:
        return Flag("numerics", "skipped", "the run kept no feature sample")
    proto = r["protocol"]
    if not (proto["input_source"] == "image" or proto.get("input_seed") == FIXED_INPUT_SEED):
        return Flag("numerics", "skipped", f"the run used a random input (seed {proto.get('input_seed')}), "
                                           "not the artifact's fixed input")
    ref, where = ctx.catalog.reference_for(r)
    if ref is None:
        return Flag("numerics", "skipped", where)
    n = min(len(ref), len(sample))
    a = np.asarray(ref[:n], dtype=np.float64)
    b = np.asarray(sample[:n], dtype=np.float64)
    if not np.all(np.isfinite(b)):
        return Flag("numerics", "fail", "non-finite values in the device's features")
    cos, max_abs = float(cosine_per_sample(a[None], b[None])[0]), float(np.max(np.abs(a - b)))
    precision = r["artifact"].get("precision") or "fp32"
    compress = (ctx.catalog.manifest_for(r) or {}).get("compress")
    floor = min_cosine(precision, compress)
    text = f"first {n} features vs PyTorch ({where}): cosine {cos:.6f}, max abs {max_abs:.3g}"
    if not cos >= floor:  # a NaN cosine fails too
        what = precision + (f" with {compress} weights" if compress else "")
        return Flag("numerics", "fail", f"{text} < {floor} required for {what}")
    return Flag("numerics", "ok", text)


@CHECKS.register("thermal")
def check_thermal(r: dict[str, Any], ctx: CheckContext) -> Flag:
    d = r["device"]
    start, end = d["thermal_state_start"], d["thermal_state_end"]
    if start == "unknown" and end == "unknown":
        return Flag("thermal", "skipped", "thermal state not reported (hosts do not report one)")
    if start != end:
        return Flag("thermal", "warn", f"thermal state changed during the run: {start} -> {end}")
    if start in HOT:
        return Flag("thermal", "warn", f"the run started {start}: the device was throttling")
    return Flag("thermal", "ok", f"thermal state {start} throughout")


@CHECKS.register("iterations")
def check_iterations(r: dict[str, Any], ctx: CheckContext) -> Flag:
    n = len(r["latency_ns"])
    if n < ctx.min_iterations:
        return Flag("iterations", "warn", f"only {n} timed iterations (at least {ctx.min_iterations} wanted "
                                          "for a stable median and CI)")
    return Flag("iterations", "ok", f"{n} timed iterations")


@CHECKS.register("artifact")
def check_artifact(r: dict[str, Any], ctx: CheckContext) -> Flag:
    sha = r["artifact"]["sha256"]
    if ctx.catalog.is_known(r):
        man = ctx.catalog.manifest_for(r)
        return Flag("artifact", "ok", f"sha256 matches {'manifest ' + man['name'] if man else 'a bundle'}")
    if not ctx.catalog.manifests and not ctx.catalog.bundles:
        return Flag("artifact", "warn", f"sha256 {sha[:12]} not checked: no manifests or bundles given (--artifacts)")
    return Flag("artifact", "warn", f"sha256 {sha[:12]} matches no known manifest: the device ran a file "
                                    "this report cannot vouch for")


@CHECKS.register("status")
def check_status(r: dict[str, Any], ctx: CheckContext) -> Flag:
    if r["status"] == "ok":
        return Flag("status", "ok", "completed")
    return Flag("status", "fail" if r["status"] == "error" else "warn", f"{r['status']}: {r.get('error')}")


def run_checks(r: dict[str, Any], ctx: CheckContext) -> list[Flag]:
    return [CHECKS.get(name)(r, ctx) for name in CHECKS.names()]


@CHECKS.register("delegation")
def check_delegation(r: dict[str, Any], ctx: CheckContext) -> Flag:
    """An accelerator run that left part of the graph on the CPU times a mix, not the accelerator (v2 placement)."""
    from toolchain.bench.measures import partly_delegated

    p = r.get("placement") or {}
    partly = partly_delegated(r)
    if partly is None:
        return Flag("delegation", "skipped", "where the ops ran was not recorded"
                    + (f" ({p['note']})" if p.get("note") else " (results v1, or the runtime does not say)"))
    where = (f"{p['delegated_nodes']} of {p['total_nodes']} nodes delegated" if p.get("delegated_nodes") is not None
             else ", ".join(f"{k} {v}" for k, v in sorted((p.get("ops_by_device") or {}).items())) + " ops")
    return Flag("delegation", "warn" if partly else "ok", ("partly delegated: " if partly else "") + where)


@CHECKS.register("device_state")
def check_device_state(r: dict[str, Any], ctx: CheckContext) -> Flag:
    """A run that left the foreground or whose screen went off ran at background priority for part of it."""
    ds = r.get("device_state")
    if not ds:
        return Flag("device_state", "skipped", "device state not recorded (results v1, or a host run)")
    bad = [what for what, key in (("left the foreground", "stayed_foreground"), ("the screen went off", "screen_stayed_on"))
           if ds.get(key) is False]
    if bad:
        return Flag("device_state", "warn", " and ".join(bad) + " during the run: the numbers are not foreground numbers")
    unknown = [key for key in ("stayed_foreground", "screen_stayed_on") if ds.get(key) is None]
    return Flag("device_state", "ok", f"{len(ds.get('samples', []))} samples"
                + (f"; {', '.join(unknown)} unknown" if unknown else "; foreground, screen on throughout"))


@CHECKS.register("parity")
def check_parity(r: dict[str, Any], ctx: CheckContext) -> Flag:
    """Any export parity status but "passed" (failed, skipped, unverified) makes the artifact's timings untrusted."""
    man = ctx.catalog.manifest_for(r)
    if man is None:
        return Flag("parity", "skipped", "no manifest: the export parity is unknown" if r["artifact"]["format"] != "pytorch"
                    else "PyTorch itself is the parity reference")
    p = man.get("parity") or {}
    status = p.get("status") or "not recorded"
    text = parity_text(p)
    if status != "passed":
        return Flag("parity", "fail", f"export parity {status}{': ' + text if text else ''}: not timed in the report")
    return Flag("parity", "ok", f"export parity passed{': ' + text if text else ''}")


def parity_text(p: dict[str, Any]) -> str:
    """The cosines a manifest's parity records (the artifact's, PyTorch's own reduced model's, the converter's).

    >>> parity_text({"cosine_min": 0.91, "min_cosine_required": 0.999, "reduced_cosine": 0.99})
    'cosine 0.910000 (0.999 required), PyTorch reduced 0.990000'
    """
    bits = []
    if isinstance(p.get("cosine_min"), (int, float)):
        bits.append(f"cosine {p['cosine_min']:.6f}" + (f" ({p['min_cosine_required']:g} required)"
                                                       if isinstance(p.get("min_cosine_required"), (int, float)) else ""))
    for key, what in (("reduced_cosine", "PyTorch reduced"), ("converter_cosine", "converter")):
        if isinstance(p.get(key), (int, float)):
            bits.append(f"{what} {p[key]:.6f}")
    if p.get("reason"):
        bits.append(str(p["reason"]))
    return ", ".join(bits)
