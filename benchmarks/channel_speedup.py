#!/usr/bin/env python
"""Channel pruning's real speed-up: ResNet50 at 2x and 4x fewer FLOPs, latency ratio vs dense per runtime.

Unstructured sparsity buys size, never speed, on the runtimes here; channel (width) pruning really shrinks the
tensors, but a FLOPs ratio is not a latency ratio (memory traffic, per-layer overheads, kernels tuned for some
channel counts). This measures the gap. ResNet50 (the ``resnet50_ocular`` card, seeded random weights with
BatchNorm statistics re-estimated: latency depends on shapes, not on what the weights learned) at 224 px is
channel-pruned with the project's own width pruning (``deploy prune --method channel --target flops --ratio R``:
Torch-Pruning's dependency graph, the pruning ratio solved by bisection to R x fewer FLOPs), for each ``--scopes``
(``uniform``: the same fraction of every layer, a width multiplier; ``global``: one L1 ranking over all layers,
whose layer mix on random weights is not a trained net's). Dense and pruned go through ``deploy export`` (ONNX
fp32, TFLite fp32, parity checked) and are timed in the same run on ONNX Runtime and LiteRT: alternating blocks,
warm-up, medians, the same thread count (``alternating.py``).

    .venv/bin/python benchmarks/channel_speedup.py                      # ~10-15 min on 2 shared cores
    .venv/bin/python benchmarks/channel_speedup.py --scopes uniform global   # also the L1-global layer mix
    .venv/bin/python benchmarks/channel_speedup.py --ratios 2 --scopes uniform --rounds 3 --size 112   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from alternating import load_averages, time_artifacts  # noqa: E402

FORMATS = ("onnx", "tflite")


def row_name(scope: str | None, ratio: float | None) -> str:
    return "dense" if ratio is None else f"channel {scope} flops/{ratio:g}"


def build(work: Path, size: int, ratios_: list[float], scopes: list[str], say) -> list[dict]:
    """Dense bundle + one channel-pruned bundle per (scope, ratio), each measured (params, FLOPs)."""
    from toolchain.compress import run
    from toolchain.compress.config import WidthConfig
    from toolchain.compress.measure import measure_bundle
    from toolchain.models.bundle import init_bundle

    dense = init_bundle("resnet50_ocular", work / "dense", seed=0, input_size=size)
    rows = [{"name": "dense", "scope": None, "flops_ratio_target": 1.0, "bundle": dense}]
    for scope in scopes:
        for r in ratios_:
            t0 = time.perf_counter()
            res = run.prune_structured(dense, work / f"{scope}-{r:g}", width=WidthConfig(ratio=r, target="flops",
                                                                                         scope=scope))
            say(f"pruned {row_name(scope, r)} in {time.perf_counter() - t0:.0f} s")
            rows.append({"name": row_name(scope, r), "scope": scope, "flops_ratio_target": r, "bundle": res.bundle,
                         "width": res.meta["provenance"]["compression"].get("width")})
    for row in rows:
        m = measure_bundle(row["bundle"])
        row.update(parameters=m.parameters, flops=m.flops)
    return rows


def export(rows: list[dict], work: Path, say) -> None:
    from toolchain.export.base import ExportRequest, export_bundle

    for row in rows:
        row["artifacts"] = {}
        for fmt in FORMATS:
            t0 = time.perf_counter()
            (o,) = export_bundle(ExportRequest(row["bundle"], fmt, work / "export" / row["bundle"].parent.name / fmt,
                                               precision="fp32"))
            row["artifacts"][fmt] = {"folder": o.folder, "size_bytes": o.manifest.size_bytes,
                                     "parity": o.manifest.parity.status}
            say(f"exported {row['name']} {fmt} in {time.perf_counter() - t0:.0f} s "
                f"(parity {o.manifest.parity.status})")


def summarize(rows: list[dict], timing: dict) -> list[dict]:
    """One line per row: params, FLOPs and their ratios, and the latency ratio per runtime (pure: testable)."""
    dense = rows[0]
    lines = []
    for row in rows:
        line = {"name": row["name"], "parameters": row["parameters"], "flops": row["flops"],
                "params_ratio": dense["parameters"] / row["parameters"], "flops_ratio": dense["flops"] / row["flops"]}
        for fmt, t in timing.items():
            rt = t["runtime"]
            line[f"{rt}_median_ms"] = t["median_ms"][row["name"]]
            line[f"{rt}_speedup"] = t["speedup"][row["name"]]
            line[f"{rt}_speedup_over_flops_ratio"] = t["speedup"][row["name"]] / line["flops_ratio"]
        lines.append(line)
    return lines


def table(lines: list[dict], runtimes: list[str]):
    from rich.table import Table

    t = Table(title="ResNet50 channel pruning: FLOPs ratio vs measured latency ratio (same run)")
    for c in ("model", "params M", "params ratio", "GFLOPs", "FLOPs ratio",
              *[f"{rt} {what}" for rt in runtimes for what in ("ms", "speed-up")]):
        t.add_column(c, justify="left" if c == "model" else "right")
    for ln in lines:
        t.add_row(ln["name"], f"{ln['parameters'] / 1e6:.2f}", f"{ln['params_ratio']:.2f}x", f"{ln['flops'] / 1e9:.2f}",
                  f"{ln['flops_ratio']:.2f}x",
                  *[v for rt in runtimes for v in (f"{ln[f'{rt}_median_ms']:.1f}", f"{ln[f'{rt}_speedup']:.2f}x")])
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=224, help="square input, pixels")
    ap.add_argument("--ratios", type=float, nargs="+", default=[2.0, 4.0], help="FLOPs reduction targets")
    ap.add_argument("--scopes", nargs="+", default=["uniform"], choices=["uniform", "global"])
    ap.add_argument("--threads", type=int, default=2, help="runtime threads, the same for every model")
    ap.add_argument("--rounds", type=int, default=8, help="alternating rounds")
    ap.add_argument("--per-round", type=int, default=4, help="timed inferences per model per round")
    ap.add_argument("--warmup", type=int, default=3, help="untimed inferences per model first")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/channel_speedup.json"))
    ap.add_argument("--work", type=Path, default=None, help="keep bundles and artifacts here")
    args = ap.parse_args()

    import torch
    from rich.console import Console

    torch.set_num_threads(args.threads)
    console = Console(stderr=True, width=160)
    say = console.print
    load_before = load_averages()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="channel-speedup-") as tmp:
        work = args.work or Path(tmp)
        rows = build(work, args.size, args.ratios, args.scopes, say)
        export(rows, work, say)
        load_timing = load_averages()
        timing = time_artifacts({r["name"]: {f: a["folder"] for f, a in r["artifacts"].items()} for r in rows},
                                FORMATS, args.threads, args.rounds, args.per_round, args.warmup, "dense")
    lines = summarize(rows, timing)
    runtimes = [timing[f]["runtime"] for f in FORMATS]
    console.print(table(lines, runtimes))
    doc = {"benchmark": "channel_speedup", "model": "resnet50_ocular (seeded random weights, BatchNorm re-estimated)",
           "input_px": args.size, "threads": args.threads,
           "protocol": {"rounds": args.rounds, "per_round": args.per_round, "warmup": args.warmup,
                        "order": "alternating blocks, all models of one runtime in one loop", "statistic": "median"},
           "runtimes": {f: timing[f]["runtime"] for f in FORMATS},
           "load_average": {"before": load_before, "before_timing": load_timing, "after": load_averages()},
           "host": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]},
           "seconds": round(time.perf_counter() - t0, 1),
           "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
           "rows": lines,
           "pruning": {r["name"]: r.get("width") for r in rows},
           "artifacts": {r["name"]: {f: {k: v for k, v in a.items() if k != "folder"}
                                     for f, a in r["artifacts"].items()} for r in rows},
           "samples_ns": {timing[f]["runtime"]: timing[f]["samples_ns"] for f in FORMATS}}
    from toolchain.fsutil import atomic_write_text

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(doc, indent=2) + "\n")
    say(f"wrote {args.out} in {doc['seconds']:.0f} s; load average {doc['load_average']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
