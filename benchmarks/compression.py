#!/usr/bin/env python
"""Compression benchmark — the seed papers' table on synthetic ocular data.

Teacher ResNet50 (trained here) vs every unstructured method at several compression ratios,
structured variants (channel pruning, depth, width 0.5), KD students (MobileNetV2, ResNet18,
width-0.5 ResNet50) and prune -> KD. For each: EER and TAR@FAR=1e-3 on the test protocol,
parameters, non-zeros, both compression ratios (``compression_deployed``: the trunk that ships;
``compression_shrinkbench``: the whole model with its classifier head, as ShrinkBench counts), FLOPs,
artifact sizes (Core ML fp16 sparse / palettized, TFLite int8) and
host latency (LiteRT fp32, 2 threads; teacher and students timed in the same run). Prints a
table, writes JSON and two plots (EER vs size, EER vs latency), and says whether the targets
are met: an artifact >= 16x smaller than the fp32 teacher, and a student >= 10x faster, each at
<= 1 point EER cost.

    .venv/bin/python benchmarks/compression.py --quick --out benchmarks/results/compression
    .venv/bin/python benchmarks/compression.py --medium --out benchmarks/results/compression   # ~30 min
    .venv/bin/python benchmarks/compression.py --out benchmarks/results/compression   # full (hours on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(stderr=True, width=200)
QUICK = {"subjects": 24, "images": 6, "size": 64, "teacher_epochs": 3, "finetune_epochs": 1, "kd_epochs": 2,
         "ratios": [8], "batch_size": 16, "latency_iterations": 20,
         "export_rows": ["teacher", "layer-magnitude@8", "kd mobilenet_v2", "kd resnet50 w0.5"]}
# The demo's size (deploy demo): a teacher that learns something in ~2 min on 2 cores, so the accuracy side of
# the targets can be judged here; every method at 8x, 16x, 32x.
MEDIUM = {"subjects": 40, "images": 10, "size": 64, "teacher_epochs": 20, "finetune_epochs": 3, "kd_epochs": 20,
          "ratios": [8, 16, 32], "batch_size": 16, "latency_iterations": 50,
          "export_rows": ["teacher", "layer-magnitude@8", "layer-magnitude@32", "global-magnitude@32", "kd mobilenet_v2",
                          "kd resnet18", "kd resnet50 w0.5", "prune->kd layer-magnitude"]}
MEANINGFUL_TEACHER_EER = 0.25
FULL = {"subjects": 100, "images": 12, "size": 112, "teacher_epochs": 20, "finetune_epochs": 5, "kd_epochs": 20,
        "ratios": [2, 4, 8, 16, 32], "batch_size": 32, "latency_iterations": 100, "export_rows": None}


def _cfg(epochs: int, batch_size: int, lr: float = 1e-3, device: str = "cpu"):
    """AdamW, weight decay 0.05: SGD at lr 0.05 diverged for a from-scratch ResNet50 on small synthetic sets."""
    from toolchain.train.loop import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adamw", weight_decay=0.05, device=device,
                       warmup_epochs=min(1.0, epochs / 3))


def _epochs(what: str):
    """The training loop's progress callback: one line per finished epoch."""
    def report(stage: str, done: int, total: int, info: dict) -> None:
        if stage == "train" and done == total:
            console.print(f"  {what}: epoch {info['epoch']}/{info['epochs']} loss {info['loss']:.3f} "
                          f"acc {info['accuracy']:.1%}")
    return report


def build_rows(work: Path, p: dict) -> tuple[Path, Path, list[dict]]:
    """Train the teacher and every compressed variant; returns (data, test protocol, rows)."""
    from toolchain.compress import run
    from toolchain.compress.distill import LossSpec
    from toolchain.compress.config import WidthConfig
    from toolchain.compress.config import METHODS
    from toolchain.data.synth import generate
    from toolchain.train.run import train

    data = work / "data"
    if not data.is_dir():
        generate(data, subjects=p["subjects"], images_per_subject=p["images"], size=p["size"], seed=0)
    t0 = time.perf_counter()
    teacher_run = work / "teacher"
    if not (teacher_run / "bundle" / "model.json").is_file():
        train("resnet50_ocular", data, teacher_run, _cfg(p["teacher_epochs"], p["batch_size"]), input_size=p["size"],
              progress=_epochs("teacher"))
    console.print(f"teacher trained in {time.perf_counter() - t0:.0f} s")
    teacher = teacher_run / "bundle"
    spec = run.DataSpec(data)
    ft = _cfg(p["finetune_epochs"], p["batch_size"], lr=3e-4)
    rows = [{"name": "teacher", "kind": "teacher", "bundle": teacher}]

    def once(name: str, kind: str, fn, *args, **kw) -> Path:
        out = work / name.replace(" ", "_").replace("@", "_")
        if not (out / "bundle" / "model.json").is_file():
            t = time.perf_counter()
            fn(*args, out=out, progress=_epochs(name), **kw)
            console.print(f"{name}: {time.perf_counter() - t:.0f} s")
        rows.append({"name": name, "kind": kind, "bundle": out / "bundle"})
        return out / "bundle"

    for method in METHODS.names():
        for ratio in p["ratios"]:
            once(f"{method}@{ratio}", "unstructured", lambda out, progress, m=method, r=ratio: run.prune_unstructured(
                teacher, out, m, float(r), data=spec, cfg=ft, progress=progress))
    once("channel params/2", "structured", lambda out, progress: run.prune_structured(
        teacher, out, width=WidthConfig(ratio=2.0), data=spec, cfg=ft, progress=progress))
    once("depth 2/stage", "structured", lambda out, progress: run.prune_structured(
        teacher, out, keep_per_stage=2, data=spec, cfg=ft, progress=progress))
    once("width 0.5", "structured", lambda out, progress: run.prune_structured(
        teacher, out, multiplier=0.5, data=spec, cfg=ft, progress=progress))
    kd = _cfg(p["kd_epochs"], p["batch_size"])
    losses = [LossSpec("hinton", 0.9, {"temperature": 4.0}), LossSpec("feature-cosine", 1.0)]
    for student, mult in [("mobilenet_v2", None), ("resnet18", None), ("resnet50_ocular", 0.5)]:
        label = f"kd {student.replace('_ocular', '')}" + (f" w{mult:g}" if mult else "")
        once(label, "student", lambda out, progress, s=student, m=mult: run.distill(
            teacher, s, out, spec, kd, losses=losses, ce_weight=0.1, multiplier=m, progress=progress))
    pruned = next(r["bundle"] for r in rows if r["name"].startswith("layer-magnitude@"))
    once("prune->kd layer-magnitude", "prune->kd", lambda out, progress: run.distill(
        teacher, str(pruned), out, spec, kd, losses=[LossSpec("feature-cosine")], ce_weight=1.0, progress=progress))
    return data, teacher_run / "protocol-test.json", rows


def evaluate_rows(rows: list[dict], data: Path, protocol: Path, teacher: Path, work: Path) -> None:
    from toolchain.compress.measure import measure_bundle
    from toolchain.errors import MetricsError
    from toolchain.evaluate.run import evaluate_model

    for r in rows:
        r["measure"] = measure_bundle(r["bundle"], teacher).to_json()
        try:
            ev = evaluate_model(r["bundle"], data, protocol, work / "eval" / r["bundle"].parent.name, plot=False)
        except MetricsError as e:  # e.g. pruned until a layer is all zeros: constant features
            console.print(f"[yellow]{r['name']}: {e}; counted as EER 50 % (chance)[/]")
            r["eer"], r["tar_at_far_1e-3"], r["collapsed"] = 0.5, 0.0, str(e)
            continue
        r["eer"] = ev.metrics["eer"]
        r["tar_at_far_1e-3"] = ev.metrics["tar_at_far"].get("1e-3")
        r["top1"] = (ev.document.get("closed_set") or {}).get("top1")  # with a closed-set.json beside the protocol


def export_rows(rows: list[dict], work: Path, p: dict) -> None:
    """Core ML fp16 (sparse for pruned rows), 6-bit palettes (joint sparse + palette for pruned rows, iOS 18),
    TFLite int8 and fp32 (for latency)."""
    from toolchain.export.base import ExportRequest, export_bundle

    for r in rows:
        if p["export_rows"] is not None and r["name"] not in p["export_rows"]:
            continue
        out = work / "export" / r["bundle"].parent.name
        sparse = r["measure"]["sparsity"] > 0.1
        variants = [("coreml_fp16" + ("_sparse" if sparse else ""), "coreml", None, "sparse" if sparse else None),
                    # 6-bit: 4-bit palettes fail parity on trained weights (cosine 0.92-0.97)
                    ("coreml_palettize6", "coreml", None, "sparse-palettize6" if sparse else "palettize6"),
                    ("tflite_int8", "tflite", "int8", None), ("tflite_fp32", "tflite", "fp32", None)]
        r["artifacts"] = {}
        for label, target, precision, compress in variants:
            try:
                (o,) = export_bundle(ExportRequest(r["bundle"], target, out / label, devices=["iphonexr"] if target == "coreml" else [],
                                                   precision=precision, compress=compress))
                r["artifacts"][label] = {"size_bytes": o.manifest.size_bytes, "parity": o.manifest.parity.status,
                                         "compress": compress, "folder": str(o.folder)}
            except Exception as e:  # noqa: BLE001 - a benchmark row records the failure and goes on
                r["artifacts"][label] = {"error": f"{type(e).__name__}: {e}"[:300]}


def time_rows(rows: list[dict], p: dict) -> None:
    """LiteRT fp32, 2 threads, every exported row in the same run, raw samples kept."""
    import numpy as np

    from toolchain.bench.host import TimingProtocol, resolve_target, run_target

    proto = TimingProtocol(warmup=5, iterations=p["latency_iterations"], threads=2)
    for r in rows:
        art = (r.get("artifacts") or {}).get("tflite_fp32", {})
        if "folder" not in art:
            continue
        res = run_target(resolve_target(art["folder"]), proto).result
        r["latency_ns"] = res["latency_ns"]
        r["latency_median_ns"] = int(np.median(res["latency_ns"])) if res["latency_ns"] else None


def targets(rows: list[dict]) -> dict:
    t = rows[0]
    fp32_bytes = t["measure"]["dense_bytes"]
    ok_eer = t["eer"] + 0.01
    best_small = None
    for r in rows:
        for label, a in (r.get("artifacts") or {}).items():
            if "size_bytes" in a and a.get("parity") == "passed" and r["eer"] <= ok_eer:
                factor = fp32_bytes / a["size_bytes"]
                if best_small is None or factor > best_small["factor"]:
                    best_small = {"row": r["name"], "artifact": label, "factor": round(factor, 2), "eer": r["eer"]}
    best_fast = None
    if t.get("latency_median_ns"):
        for r in rows[1:]:
            if r.get("latency_median_ns") and r["eer"] <= ok_eer:
                f = t["latency_median_ns"] / r["latency_median_ns"]
                if best_fast is None or f > best_fast["factor"]:
                    best_fast = {"row": r["name"], "factor": round(f, 2), "eer": r["eer"]}
    # A teacher near chance (EER ~50 %) makes "within 1 point of the teacher" say nothing.
    meaningful = t["eer"] <= MEANINGFUL_TEACHER_EER
    return {"teacher_eer": t["eer"], "teacher_fp32_bytes": fp32_bytes, "meaningful": meaningful,
            "note": None if meaningful else f"teacher EER {t['eer']:.1%} > {MEANINGFUL_TEACHER_EER:.0%}: the teacher "
                    "is barely trained (quick mode, or too few epochs), so the accuracy side of the targets is not tested",
            "smallest_within_1pt": best_small,
            "size_target_met": bool(meaningful and best_small and best_small["factor"] >= 16),
            "fastest_within_1pt": best_fast,
            "speed_target_met": bool(meaningful and best_fast and best_fast["factor"] >= 10)}


def plot(rows: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key, xlabel, fname in [("size", "smallest artifact (MB)", "eer_vs_size.png"),
                               ("latency", "LiteRT fp32 latency, 2 threads (ms)", "eer_vs_latency.png")]:
        fig, ax = plt.subplots(figsize=(7, 5))
        for r in rows:
            if key == "size":
                sizes = [a["size_bytes"] for a in (r.get("artifacts") or {}).values() if "size_bytes" in a]
                x = (min(sizes) if sizes else r["measure"]["gzip_bytes"]) / 1e6
            else:
                if not r.get("latency_median_ns"):
                    continue
                x = r["latency_median_ns"] / 1e6
            ax.scatter(x, 100 * r["eer"], label=r["name"])
            ax.annotate(r["name"], (x, 100 * r["eer"]), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("EER (%)")
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=120)
        plt.close(fig)
        paths.append(out / fname)
    return paths


def table(rows: list[dict]) -> Table:
    t = Table(title="compression on synthetic ocular data")
    for c in ("model", "EER %", "TAR@1e-3", "params", "non-zero", "ratio deployed", "ratio ShrinkBench", "MFLOPs",
              "CoreML fp16 KB",
              "CoreML pal6 KB", "TFLite int8 KB", "LiteRT ms"):
        t.add_column(c, justify="right" if c != "model" else "left")
    for r in rows:
        m, a = r["measure"], r.get("artifacts") or {}

        def kb(label: str) -> str:
            for k, v in a.items():
                if k.startswith(label) and "size_bytes" in v:
                    return f"{v['size_bytes'] / 1e3:,.0f}"
            return "-"
        tar = r.get("tar_at_far_1e-3")
        t.add_row(r["name"], f"{100 * r['eer']:.2f}", "-" if tar is None else f"{tar:.3f}", f"{m['parameters']:,}",
                  f"{m['nonzero_parameters']:,}", f"{m.get('compression_deployed', m['compression_ratio']):.2f}",
                  "n/a" if m.get("compression_shrinkbench") is None else f"{m['compression_shrinkbench']:.2f}",
                  f"{m['flops'] / 1e6:,.0f}",
                  kb("coreml_fp16"), kb("coreml_palettize6"), kb("tflite_int8"),
                  "-" if not r.get("latency_median_ns") else f"{r['latency_median_ns'] / 1e6:.2f}")
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small data, one ratio, few exports (< 10 min on 2 cores); "
                      "the teacher stays near chance, so only the size/speed side is meaningful")
    mode.add_argument("--medium", action="store_true", help="the demo's data size, ratios 8/16/32, a teacher that "
                      "learns (~30 min on 2 cores)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/compression"))
    ap.add_argument("--work", type=Path, default=None, help="keep intermediate runs here (reused when present)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    p = QUICK if args.quick else MEDIUM if args.medium else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="compression-") as tmp:
        work = args.work or Path(tmp)
        data, protocol, rows = build_rows(work, p)
        evaluate_rows(rows, data, protocol, rows[0]["bundle"], work)
        export_rows(rows, work, p)
        time_rows(rows, p)
    summary = targets(rows)
    console.print(table(rows))
    s, f = summary["smallest_within_1pt"], summary["fastest_within_1pt"]
    if summary["note"]:
        console.print(f"[yellow]{summary['note']}[/]")
    console.print(f"size target (>= 16x smaller than fp32 teacher at <= 1 pt EER): "
                  f"{'met' if summary['size_target_met'] else 'NOT met'} — best {s}")
    console.print(f"speed target (student >= 10x faster at <= 1 pt EER): "
                  f"{'met' if summary['speed_target_met'] else 'NOT met'} — best {f}")
    plots = plot(rows, args.out)
    doc = {"mode": "quick" if args.quick else "medium" if args.medium else "full", "params": p, "seconds": round(time.perf_counter() - t0, 1),
           "host": {"platform": platform.platform(), "python": sys.version.split()[0]},
           "targets": summary, "plots": [str(x) for x in plots],
           "rows": [{k: (str(v) if isinstance(v, Path) else v) for k, v in r.items()} for r in rows]}
    (args.out / "compression.json").write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"wrote {args.out / 'compression.json'} and {', '.join(str(x) for x in plots)} "
                  f"in {doc['seconds']:.0f} s")


if __name__ == "__main__":
    main()
