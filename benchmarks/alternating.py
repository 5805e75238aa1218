"""Latency ratios within one run: several exported models timed in alternating blocks on one runtime, medians.

Shared by ``channel_speedup.py`` and ``students.py``. Why alternate: on a shared machine the load changes
over minutes; timing model A for a minute and then model B would fold that drift into the ratio. Round-robin
blocks of a few inferences each spread it over every model alike, so a *ratio* of medians means something even
when the absolute milliseconds do not (the load averages before/after are recorded next to them).

Each artifact is opened through the project's own runtime registry (``toolchain.runtimes.open_session``), with
the same prepared call and fixed input that ``deploy bench host`` times.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Callable

def load_averages() -> list[float] | None:
    """``os.getloadavg()`` (1, 5, 15 min) rounded, or None where the platform has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def open_timed(folder: str | Path, threads: int) -> tuple[str, Callable[[], object]]:
    """(runtime name, prepared inference) of an exported artifact folder, as ``deploy bench host`` opens it."""
    from toolchain import runtimes
    from toolchain.bench.host import resolve_target

    target = resolve_target(folder)
    _, session = runtimes.open_session(target.artifact.ref, target.format, timing=True, threads=threads)
    return session.runtime["name"], session.prepare(target.pixels_nchw)


def alternate(calls: dict[str, Callable[[], object]], rounds: int, per_round: int, warmup: int,
              clock: Callable[[], int] = time.perf_counter_ns) -> dict[str, list[int]]:
    """Time every call ``rounds * per_round`` times, round-robin in blocks of ``per_round``; ns samples per key.

    ``warmup`` untimed runs of each call first (also round-robin), so no model is timed cold.
    """
    if rounds < 1 or per_round < 1 or warmup < 0:
        raise ValueError(f"need rounds >= 1, per_round >= 1, warmup >= 0; got {rounds}, {per_round}, {warmup}")
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples: dict[str, list[int]] = {k: [] for k in calls}
    for _ in range(rounds):
        for key, call in calls.items():
            for _ in range(per_round):
                t0 = clock()
                call()
                samples[key].append(clock() - t0)
    return samples


def median_ms(samples: list[int]) -> float:
    return statistics.median(samples) / 1e6


def ratios(medians_ms: dict[str, float], reference: str) -> dict[str, float]:
    """``reference``'s median over each key's: how many times faster than the reference (> 1 = faster)."""
    ref = medians_ms[reference]
    return {k: ref / v for k, v in medians_ms.items()}


def time_artifacts(folders: dict[str, dict[str, str | Path]], formats: tuple[str, ...], threads: int, rounds: int,
                   per_round: int, warmup: int, reference: str) -> dict[str, dict]:
    """Per format: every model's artifact (``folders[model][format]``) in one alternating loop on one runtime.

    Returns format -> {runtime, median_ms, speedup (``reference``'s median over each model's), samples_ns}.
    """
    out = {}
    for fmt in formats:
        calls, runtime = {}, None
        for name, by_format in folders.items():
            runtime, calls[name] = open_timed(by_format[fmt], threads)
        samples = alternate(calls, rounds, per_round, warmup)
        med = {k: median_ms(v) for k, v in samples.items()}
        out[fmt] = {"runtime": runtime, "median_ms": med, "speedup": ratios(med, reference), "samples_ns": samples}
    return out
