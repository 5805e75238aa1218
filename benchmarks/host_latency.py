#!/usr/bin/env python
"""Host runner benchmark: its overhead against a bare loop, and teacher vs students per runtime.

1. Overhead: the runner's timed loop (``toolchain.bench.host.time_session``: progress callback,
   sample list, cooldown check) against a bare ``perf_counter_ns`` loop over the *same* open
   session in the same process, in interleaved blocks so drift hits both. Target: the
   runner's median is at most 2 % above the bare loop's.
2. Latency: each model card (teacher first) is exported to ONNX and TFLite and timed with the
   runner on ONNX Runtime, LiteRT and PyTorch eager, all in one run; statistics from
   ``toolchain.report.stats``.

    .venv/bin/python benchmarks/host_latency.py --teacher resnet50_ocular --students mobilenet_v2 \\
        --iterations 100 --threads 2 --out benchmarks/results/host_latency.json
    .venv/bin/python benchmarks/host_latency.py --quick        # tiny models, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from toolchain.bench.timing import TimingProtocol  # noqa: E402  (light: the defaults the CLI shows too)


def overhead(target, threads: int, iterations: int, rounds: int) -> dict:
    from toolchain import runtimes
    from toolchain.bench.host import TimingProtocol, time_session
    from toolchain.report.stats import summarize

    _, session = runtimes.open_session(target.artifact.ref, target.format, timing=True, threads=threads)
    infer = bare_call = session.prepare(target.pixels_nchw)  # the same prepared call the runner times
    proto = TimingProtocol(warmup=0, iterations=iterations, threads=threads)
    for _ in range(max(10, iterations // 5)):
        infer()
    runner, bare = [], []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        runner += time_session(infer, proto, progress=lambda *a: None)[1]
        for _ in range(iterations):
            t0 = clock()
            bare_call()
            bare.append(clock() - t0)
    r, b = summarize(runner), summarize(bare)
    return {"artifact": target.name, "runtime": session.runtime["name"], "samples_each": len(bare),
            "runner_median_ns": r.median_ns, "bare_median_ns": b.median_ns,
            "overhead_pct": 100.0 * (r.median_ns - b.median_ns) / b.median_ns}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", default="resnet50_ocular")
    ap.add_argument("--students", nargs="*", default=["mobilenet_v2"])
    ap.add_argument("--input-size", type=int, default=None, help="square input (default: each card's)")
    ap.add_argument("--iterations", type=int, default=TimingProtocol.iterations)
    ap.add_argument("--warmup", type=int, default=TimingProtocol.warmup)
    ap.add_argument("--threads", type=int, default=TimingProtocol.threads)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved runner/bare blocks for the overhead")
    ap.add_argument("--quick", action="store_true", help="tiny_ocular teacher at 64 px, 30 iterations")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = ap.parse_args()
    if args.quick:
        args.teacher, args.students, args.iterations, args.input_size = "tiny_ocular", [], 30, 64

    from rich.console import Console
    from rich.table import Table

    from toolchain.bench.host import resolve_target, run_target
    from toolchain.export.base import ExportRequest, export_bundle
    from toolchain.models.bundle import init_bundle, load_bundle
    from toolchain.report.stats import summarize

    console = Console()
    cards = [args.teacher, *args.students]
    proto = TimingProtocol(args.warmup, args.iterations, args.threads)
    rows, overheads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, card in enumerate(cards):
            bundle = init_bundle(card, Path(tmp) / card, seed=0, input_size=args.input_size)
            params = load_bundle(bundle).meta["weights"]["num_parameters"]
            targets = [bundle]
            for fmt in ("onnx", "tflite"):
                targets.append(export_bundle(ExportRequest(bundle_dir=bundle, target=fmt, out=Path(tmp) / "art",
                                                           devices=["android"] if fmt == "tflite" else []))[0].folder)
            for path in targets:
                t = resolve_target(path)
                r = run_target(t, proto).result
                s = summarize(r["latency_ns"])
                rows.append({"model": card, "role": "teacher" if i == 0 else "student", "parameters": params,
                             "runtime": r["runtime"]["name"], "format": t.format, "median_ms": s.median_ns / 1e6,
                             "ci_ms": [s.ci_low_ns / 1e6, s.ci_high_ns / 1e6], "p90_ms": s.p90_ns / 1e6,
                             "first_inference_ms": r["first_inference_ns"] / 1e6, "load_ms": r["load_ns"] / 1e6})
                if i == 0 and t.artifact is not None:  # an exported artifact, not the bundle
                    overheads.append(overhead(t, args.threads, args.iterations, args.rounds))
    tab = Table("model", "role", "params", "runtime", "median ms", "95% CI ms", "p90 ms", "first ms", "load ms",
                title=f"Host latency ({args.threads} threads, {args.iterations} iterations)")
    for r in rows:
        tab.add_row(r["model"], r["role"], f"{r['parameters']:,}", r["runtime"], f"{r['median_ms']:.3f}",
                    f"[{r['ci_ms'][0]:.3f}, {r['ci_ms'][1]:.3f}]", f"{r['p90_ms']:.3f}",
                    f"{r['first_inference_ms']:.2f}", f"{r['load_ms']:.1f}")
    console.print(tab)
    ot = Table("artifact", "runtime", "samples", "runner median ms", "bare median ms", "overhead %", "≤ 2 %",
               title="Runner overhead vs a bare loop (same session, interleaved)")
    for o in overheads:
        ot.add_row(o["artifact"], o["runtime"], str(o["samples_each"]), f"{o['runner_median_ns'] / 1e6:.4f}",
                   f"{o['bare_median_ns'] / 1e6:.4f}", f"{o['overhead_pct']:+.2f}",
                   "yes" if o["overhead_pct"] <= 2.0 else "NO")
    console.print(ot)
    doc = {"host": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "platform": platform.platform()}, "threads": args.threads, "iterations": args.iterations,
           "latency": rows, "overhead": overheads}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({"overhead_pct": {o["runtime"]: round(o["overhead_pct"], 3) for o in overheads}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
