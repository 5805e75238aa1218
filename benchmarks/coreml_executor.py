#!/usr/bin/env python
"""Core ML accuracy on Linux at runtime speed: whole ``deploy evaluate`` processes, Core ML vs ONNX.

For each model (default: MobileNetV2 at 112 px and ResNet50 at 224 px) this builds a bundle as
``deploy model init`` does (seeded random weights, BatchNorm re-estimated), exports it to ONNX (fp32) and
Core ML (ML Program fp32 and fp16 for the iPhone XR, NeuralNetwork for the iPhone 6), makes a small synthetic
data set and an all-pairs test protocol, then times one whole ``deploy evaluate`` process per artifact on the
same images, the processes of a round run back to back (ONNX first, then each Core ML artifact). The Core ML
artifacts run on the numpy Core ML executor (``coreml-ref``); the ratio is Core ML seconds / ONNX seconds of
the same round (target: at most 2).

    .venv/bin/python benchmarks/coreml_executor.py                    # ~100 images, both models
    .venv/bin/python benchmarks/coreml_executor.py --images 400 --repeats 3 --models mobilenet_v2:112

Prints a table and writes ``benchmarks/results/coreml_executor.json`` (every raw duration kept). Timings on a
shared machine are noisy: the JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_MODELS = "mobilenet_v2:112,resnet50_ocular:224"
#: (label, export arguments): what the issue asks about, as ``deploy export`` writes it
EXPORTS = [("onnx fp32", ["-t", "onnx", "--precision", "fp32"]),
           ("coreml", ["-t", "coreml", "-d", "iphonexr", "-d", "iphone6", "--precision", "fp32"]),
           ("coreml", ["-t", "coreml", "-d", "iphonexr", "-d", "iphone6"])]


def deploy(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """One ``deploy`` process (the console script beside this Python, else the CLI module)."""
    script = Path(sys.executable).with_name("deploy")
    cmd = [str(script)] if script.exists() else [sys.executable, "-c", "import sys; from toolchain.cli import main; sys.exit(main())"]
    cp = subprocess.run(cmd + list(args), capture_output=True, text=True)
    if check and cp.returncode != 0:
        raise SystemExit(f"deploy {' '.join(args)} failed ({cp.returncode}):\n{cp.stderr[-2000:]}")
    return cp


def label(manifest: dict) -> str:
    cm = manifest.get("coreml") or {}
    if manifest["format"] != "coreml":
        return f"{manifest['format']} {manifest['precision']}"
    kind = "NeuralNetwork" if (cm.get("spec_version") or 0) < 6 else "ML Program"
    return f"coreml {kind} {manifest['precision']} (spec {cm.get('spec_version')})"


def prepare(card: str, size: int, images: int, work: Path) -> tuple[list[tuple[str, Path]], Path, Path]:
    """Bundle, artifacts, data and protocol for one model (reused when ``work`` already has them)."""
    folder = work / f"{card}_{size}"
    bundle, exports = folder / "bundle", folder / "exports"
    if not (bundle / "model.json").exists():
        deploy("model", "init", card, "--out", str(bundle), "--input-size", str(size), "--force")
    for i, (_, args) in enumerate(EXPORTS):
        out = exports / str(i)
        if not out.exists():
            deploy("export", str(bundle), "--out", str(out), *args)
    data, split = folder / f"data{images}", folder / f"split{images}"
    if not (split / "protocol-test.json").exists():
        subjects = max(2, images // 10)
        deploy("data", "synth", "--out", str(data), "--subjects", str(subjects), "--images-per-subject",
               str(-(-images // subjects)), "--size", str(size), "--force")
        deploy("data", "split", str(data), "--out", str(split), "--fractions", "0,0,1", "--force")
    arts = sorted((label(json.loads(m.read_text())), m.parent) for m in exports.glob("*/*/manifest.json"))
    arts.sort(key=lambda a: (not a[0].startswith("onnx"), a[0]))
    return arts, data, split / "protocol-test.json"


def time_evaluate(artifact: Path, data: Path, protocol: Path, out: Path, threads: int | None = None) -> float:
    """Wall seconds of one whole ``deploy evaluate`` process (imports, opening, features, metrics, report)."""
    extra = ["--threads", str(threads)] if threads else []
    t0 = time.perf_counter()
    deploy("evaluate", str(artifact), "--data", str(data), "--protocol", str(protocol), "--out", str(out),
           "--allow-parity-failed", "--force", *extra)
    return time.perf_counter() - t0


def write(args: argparse.Namespace, rows: list[dict], load_before: tuple[float, ...]) -> None:
    from toolchain.fsutil import atomic_write_json

    doc = {"benchmark": "coreml_executor", "what": "whole `deploy evaluate` processes; ratio = Core ML s / ONNX s "
           "of the same round", "target_ratio_max": 2.0, "images": args.images, "repeats": args.repeats,
           "threads": args.threads or "runtime defaults (ONNX Runtime: one intra-op thread per core; numpy Core ML "
                                      "executor: 1 BLAS thread)",
           "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
           "host": {"machine": platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": [round(v, 2) for v in load_before],
                    "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
           "results": rows, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_json(args.out, doc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=DEFAULT_MODELS, help="CARD:SIZE,... (default: %(default)s)")
    ap.add_argument("--images", type=int, default=100, help="test images per model (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of processes; ratios are per round, medians")
    ap.add_argument("--threads", type=int, default=None,
                    help="--threads for every evaluate process, ONNX and Core ML alike (default: each runtime's own)")
    ap.add_argument("--work", type=Path, default=None, help="folder for bundles/artifacts/data (reused if present)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/coreml_executor.json"))
    args = ap.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_coreml_"))
    load_before = os.getloadavg()
    rows = []
    for spec in args.models.split(","):
        card, size = spec.split(":")
        t0 = time.perf_counter()
        arts, data, protocol = prepare(card, int(size), args.images, work)
        print(f"  {card} {size} px: {len(arts)} artifacts ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        load_model = os.getloadavg()
        runs: dict[str, list[float]] = {name: [] for name, _ in arts}
        ratios: dict[str, list[float]] = {name: [] for name, _ in arts}
        for r in range(args.repeats):
            this: dict[str, float] = {}
            for name, path in arts:
                this[name] = time_evaluate(path, data, protocol, work / "eval" / f"{card}_{r}_{path.name}",
                                           args.threads)
                runs[name].append(this[name])
                print(f"    round {r}: {name}: {this[name]:.1f} s", file=sys.stderr)
            onnx = next(v for k, v in this.items() if k.startswith("onnx"))
            for name in this:
                ratios[name].append(this[name] / onnx)
        for name, path in arts:
            rows.append({"model": card, "size_px": int(size), "artifact": name, "folder": path.name,
                         "images": args.images, "seconds": [round(s, 2) for s in runs[name]],
                         "median_s": round(statistics.median(runs[name]), 2),
                         "ratio_to_onnx": round(statistics.median(ratios[name]), 2),
                         "target_met": statistics.median(ratios[name]) <= 2.0,
                         "loadavg_before_after": [round(load_model[0], 2), round(os.getloadavg()[0], 2)]})
        write(args, rows, load_before)  # after each model: a long run that is stopped keeps what it measured
    header = f"{'model':<18}{'px':>5}  {'artifact':<40}{'images':>7}{'median s':>10}{'x ONNX':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model']:<18}{r['size_px']:>5}  {r['artifact']:<40}{r['images']:>7}{r['median_s']:>10.1f}"
              f"{r['ratio_to_onnx']:>8.2f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
