#!/usr/bin/env python
"""The Almadan & Rattani grid on synthetic ocular data: EER per pruning method x ratio, and KD, with the two claims.

Almadan & Rattani, "Compact CNN Models for On-device Ocular-based User Recognition in Mobile Devices" (IEEE SSCI
2021) prune a ResNet50 ocular model with ShrinkBench's five unstructured methods (global/layer x magnitude/gradient,
and random) at compression 2, 4, 8, 16, 32 (ShrinkBench's whole-model count), and distil it into smaller students.
They report (1) layerwise magnitude pruning as the best of the five at 8x, and (2) knowledge distillation better
than pruning in verification accuracy and in deep-feature extraction time on the devices.

This script builds that grid on the toolchain's synthetic data: a ResNet50 teacher trained here, every method x
ratio pruned with ``ratio_of="shrinkbench"`` and fine-tuned with fixed masks, KD students (ResNet18, MobileNetV2),
each evaluated (EER, TAR@FAR=1e-3 on the subject-disjoint test protocol) and measured (both compression ratios,
FLOPs). Feature-extraction time is taken on the host runtimes (PyTorch eager, ONNX Runtime fp32, LiteRT fp32; 2
threads, one run each, raw samples kept) for the teacher, every method at the ``--time-ratios`` and every student:
unstructured pruning keeps every tensor's shape, so a pruned model runs as fast as the dense teacher on these
runtimes (shared/FINDINGS.md: 87.5 % sparsity made no runtime faster); timing all 25 pruned rows would only repeat
that. It prints the grid and the verdict on each claim and writes JSON. Synthetic data is not VISOB/UFPR: whether
the claims hold here says what the *tool* shows at this scale, not whether the paper is right.

    .venv/bin/python benchmarks/almadan_grid.py --scale tiny            # smoke scale; claims not meaningful (~1 h on 2 busy cores)
    .venv/bin/python benchmarks/almadan_grid.py --scale tiny --methods layer-magnitude,global-magnitude --ratios 8   # minutes
    .venv/bin/python benchmarks/almadan_grid.py --scale medium --work /tmp/almadan   # the synthetic medium scale, hours on 2 cores

Reuses benchmarks/compression.py (training configuration, evaluation + measurement of each row).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compression as C  # noqa: E402 - benchmarks/compression.py, beside this file

console = C.console
RATIOS = [2, 4, 8, 16, 32]
SCALES = {
    # a smoke run: the teacher stays near chance, so the claims are not tested (the JSON says so)
    "tiny": {"subjects": 12, "images": 4, "size": 64, "teacher_epochs": 2, "finetune_epochs": 1, "kd_epochs": 2,
             "batch_size": 16, "latency_iterations": 10, "students": ["resnet18"]},
    # compression.py's MEDIUM data and epochs (the demo's size: a teacher that learns), all five ratios
    "medium": {**{k: C.MEDIUM[k] for k in ("subjects", "images", "size", "teacher_epochs", "finetune_epochs",
                                           "kd_epochs", "batch_size", "latency_iterations")},
               "students": ["resnet18", "mobilenet_v2"]},
}
HOST_RUNTIMES = ("pytorch", "onnxruntime", "litert")
CLAIM_RATIO = 8


def build(work: Path, p: dict) -> tuple[Path, Path, list[dict]]:
    """Teacher, the 5 x 5 pruning grid (ShrinkBench ratios, fine-tuned), KD students; finished rows are reused."""
    from toolchain.compress import run
    from toolchain.compress.config import METHODS
    from toolchain.compress.distill import LossSpec
    from toolchain.data.synth import generate
    from toolchain.train.run import train

    data = work / "data"
    if not data.is_dir():
        generate(data, subjects=p["subjects"], images_per_subject=p["images"], size=p["size"], seed=0)
    teacher_run = work / "teacher"
    if not (teacher_run / "bundle" / "model.json").is_file():
        train("resnet50_ocular", data, teacher_run, C._cfg(p["teacher_epochs"], p["batch_size"]), input_size=p["size"],
              progress=C._epochs("teacher"))
    teacher = teacher_run / "bundle"
    spec = run.DataSpec(data)
    rows = [{"name": "teacher", "kind": "teacher", "method": "baseline", "ratio": 1, "bundle": teacher}]

    def once(row: dict, fn) -> None:
        out = work / row["name"].replace(" ", "_").replace("@", "_")
        if not (out / "bundle" / "model.json").is_file():
            t = time.perf_counter()
            fn(out=out, progress=C._epochs(row["name"]))
            console.print(f"{row['name']}: {time.perf_counter() - t:.0f} s")
        rows.append({**row, "bundle": out / "bundle"})

    ft = C._cfg(p["finetune_epochs"], p["batch_size"], lr=3e-4)
    for method in p.get("methods") or METHODS.names():
        for ratio in p.get("ratios") or RATIOS:
            once({"name": f"{method}@{ratio}", "kind": "unstructured", "method": method, "ratio": ratio},
                 lambda out, progress, m=method, r=ratio: run.prune_unstructured(
                     teacher, out, m, float(r), data=spec, cfg=ft, ratio_of="shrinkbench", progress=progress))
    kd = C._cfg(p["kd_epochs"], p["batch_size"])
    losses = [LossSpec("hinton", 0.9, {"temperature": 4.0}), LossSpec("feature-cosine", 1.0)]
    for student in p["students"]:
        once({"name": f"kd {student}", "kind": "student", "method": "KD", "ratio": None},
             lambda out, progress, s=student: run.distill(teacher, s, out, spec, kd, losses=losses, ce_weight=0.1,
                                                          progress=progress))
    return data, teacher_run / "protocol-test.json", rows


def time_rows(rows: list[dict], work: Path, p: dict, time_ratios: list[int], runtimes: list[str]) -> None:
    """Median feature-extraction time per host runtime (PyTorch: the bundle; ONNX Runtime / LiteRT: fp32 exports
    with parity checked; an export whose parity did not pass is not timed)."""
    import numpy as np

    from toolchain.bench.host import TimingProtocol, resolve_target, run_target
    from toolchain.export.base import ExportRequest, export_bundle

    proto = TimingProtocol(warmup=5, iterations=p["latency_iterations"], threads=2)
    exports = {"onnxruntime": ("onnx", None), "litert": ("tflite", "fp32")}
    for r in rows:
        if r["kind"] == "unstructured" and r["ratio"] not in time_ratios:
            continue
        r["latency_ms"], r["latency_ns"], r["export"] = {}, {}, {}
        for rt in runtimes:
            folder = r["bundle"]
            if rt in exports:
                target, precision = exports[rt]
                out = work / "export" / r["bundle"].parent.name / target
                try:
                    (o,) = export_bundle(ExportRequest(r["bundle"], target, out, precision=precision, force=True))
                except Exception as e:  # noqa: BLE001 - a row records the failure and goes on
                    r["export"][rt] = {"error": f"{type(e).__name__}: {e}"[:300]}
                    continue
                r["export"][rt] = {"parity": o.manifest.parity.status, "cosine_min": o.manifest.parity.cosine_min}
                if o.manifest.parity.status != "passed":
                    continue
                folder = o.folder
            try:
                res = run_target(resolve_target(folder), proto).result
            except Exception as e:  # noqa: BLE001
                r["export"].setdefault(rt, {})["timing_error"] = f"{type(e).__name__}: {e}"[:300]
                continue
            if res["latency_ns"]:
                r["latency_ns"][rt] = res["latency_ns"]
                r["latency_ms"][rt] = float(np.median(res["latency_ns"])) / 1e6


def claims(rows: list[dict], runtimes: list[str]) -> dict:
    """The paper's two claims, checked on these rows (None where a number is missing)."""
    teacher = rows[0]
    at = {r["method"]: r for r in rows if r["kind"] == "unstructured" and r["ratio"] == CLAIM_RATIO}
    ranking = sorted(at, key=lambda m: at[m]["eer"])
    best = ranking[0] if ranking else None
    c1 = {"claim": f"layer-magnitude has the lowest EER of the five methods at {CLAIM_RATIO}x",
          "ranking_by_eer": [(m, round(at[m]["eer"], 4)) for m in ranking],
          "holds": None if "layer-magnitude" not in at else at["layer-magnitude"]["eer"] <= at[best]["eer"]}
    pruned = [r for r in rows if r["kind"] == "unstructured"]
    students = []
    for s in (r for r in rows if r["kind"] == "student"):
        comp = s["measure"].get("compression_shrinkbench") or 1.0
        # the pruned rows of the nearest ShrinkBench ratio at or above the student's own compression (as small or smaller)
        run_ratios = sorted({r["ratio"] for r in pruned})
        ratio = min((q for q in run_ratios if q >= comp), default=max(run_ratios, default=None))
        peers = [r for r in pruned if r["ratio"] == ratio]
        best_peer = min(peers, key=lambda r: r["eer"]) if peers else None
        timed_peers = [r for r in pruned if r.get("latency_ms")]
        speed = {}
        for rt in runtimes:
            mine = (s.get("latency_ms") or {}).get(rt)
            theirs = [r["latency_ms"][rt] for r in timed_peers if rt in r["latency_ms"]]
            speed[rt] = None if mine is None or not theirs else {
                "student_ms": round(mine, 3), "fastest_pruned_ms": round(min(theirs), 3),
                "student_faster": mine < min(theirs)}
        students.append({"student": s["name"], "compression_shrinkbench": round(comp, 2), "compared_ratio": ratio,
                         "student_eer": round(s["eer"], 4),
                         "best_pruned_at_ratio": None if best_peer is None else
                         {"row": best_peer["name"], "eer": round(best_peer["eer"], 4)},
                         "more_accurate": None if best_peer is None else s["eer"] < best_peer["eer"],
                         "time_per_runtime": speed})
    acc = [s["more_accurate"] for s in students if s["more_accurate"] is not None]
    fast = [v["student_faster"] for s in students for v in s["time_per_runtime"].values() if v]
    meaningful = teacher["eer"] <= C.MEANINGFUL_TEACHER_EER
    return {"teacher_eer": teacher["eer"], "meaningful": meaningful,
            "note": None if meaningful else f"teacher EER {teacher['eer']:.1%} > {C.MEANINGFUL_TEACHER_EER:.0%}: "
                    "a barely trained teacher, so neither claim is tested by this run",
            "claim_1_layer_magnitude_best_at_8x": c1,
            "claim_2_kd_beats_pruning": {"students": students,
                                         "accuracy_holds": (all(acc) if acc else None),
                                         "time_holds": (all(fast) if fast else None)}}


def grid_table(rows: list[dict], runtimes: list[str]):
    from rich.table import Table

    ratios = sorted({r["ratio"] for r in rows if r["kind"] == "unstructured"})
    t = Table(title="EER % (synthetic ocular data; ratios: ShrinkBench's whole-model count)")
    t.add_column("method")
    for q in ratios:
        t.add_column(f"{q}x", justify="right")
    for rt in runtimes:
        t.add_column(f"{rt} ms", justify="right")
    t.add_row("teacher", *[f"{100 * rows[0]['eer']:.2f}" if q == ratios[0] else "" for q in ratios],
              *[_ms(rows[0], rt) for rt in runtimes])
    for m in sorted({r["method"] for r in rows if r["kind"] == "unstructured"}):
        by = {r["ratio"]: r for r in rows if r["method"] == m}
        timed = next((r for r in by.values() if r.get("latency_ms")), None)
        t.add_row(m, *[f"{100 * by[q]['eer']:.2f}" if q in by else "-" for q in ratios],
                  *[_ms(timed, rt) + (f" @{timed['ratio']}x" if timed else "") for rt in runtimes])
    for s in (r for r in rows if r["kind"] == "student"):
        comp = s["measure"].get("compression_shrinkbench") or 1.0
        t.add_row(f"{s['name']} ({comp:.1f}x)", *[f"{100 * s['eer']:.2f}" if q == ratios[0] else "" for q in ratios],
                  *[_ms(s, rt) for rt in runtimes])
    return t


def _ms(r: dict | None, rt: str) -> str:
    v = ((r or {}).get("latency_ms") or {}).get(rt)
    return "-" if v is None else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="medium")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/almadan_grid"))
    ap.add_argument("--work", type=Path, default=None, help="keep intermediate runs here (reused when present)")
    ap.add_argument("--time-ratios", default=str(CLAIM_RATIO), help="comma-separated ratios whose pruned rows are timed")
    ap.add_argument("--runtimes", default=",".join(HOST_RUNTIMES), help="host runtimes to time on")
    ap.add_argument("--methods", default="", help="comma-separated subset of the five methods (a smoke run; the "
                    "JSON records it, and claim 1 then ranks only these)")
    ap.add_argument("--ratios", default="", help="comma-separated subset of 2,4,8,16,32 (a smoke run)")
    ap.add_argument("--students", default="", help="comma-separated KD students (default: the scale's)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    p = dict(SCALES[args.scale])
    p["methods"] = [x for x in args.methods.split(",") if x] or None
    p["ratios"] = [int(x) for x in args.ratios.split(",") if x] or None
    p["students"] = [x for x in args.students.split(",") if x] or p["students"]
    subset = bool(p["methods"] or p["ratios"])
    runtimes = [x for x in args.runtimes.split(",") if x]
    time_ratios = [int(x) for x in args.time_ratios.split(",") if x]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="almadan-") as tmp:
        work = args.work or Path(tmp)
        data, protocol, rows = build(work, p)
        C.evaluate_rows(rows, data, protocol, rows[0]["bundle"], work)
        time_rows(rows, work, p, time_ratios, runtimes)
    verdict = claims(rows, runtimes)
    console.print(grid_table(rows, runtimes))
    if verdict["note"]:
        console.print(f"[yellow]{verdict['note']}[/]")
    c1, c2 = verdict["claim_1_layer_magnitude_best_at_8x"], verdict["claim_2_kd_beats_pruning"]
    console.print(f"claim 1 ({c1['claim']}): {_word(c1['holds'])}; ranking {c1['ranking_by_eer']}")
    console.print(f"claim 2 (KD beats pruning): accuracy {_word(c2['accuracy_holds'])}, "
                  f"feature-extraction time on {', '.join(runtimes)} {_word(c2['time_holds'])}")
    if subset:
        console.print("[yellow]a subset of the grid (--methods/--ratios): not the Almadan grid, a smoke run[/]")
    doc = {"scale": args.scale, "subset_of_the_grid": subset, "params": p, "seconds": round(time.perf_counter() - t0, 1),
           "host": {"platform": platform.platform(), "python": sys.version.split()[0]},
           "runtimes": runtimes, "time_ratios": time_ratios, "claims": verdict,
           "rows": [{k: (str(v) if isinstance(v, Path) else v) for k, v in r.items()} for r in rows]}
    path = args.out / f"almadan_grid_{args.scale}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"wrote {path} in {doc['seconds']:.0f} s")


def _word(holds: bool | None) -> str:
    return {True: "holds", False: "does NOT hold", None: "not tested"}[holds]


if __name__ == "__main__":
    main()
