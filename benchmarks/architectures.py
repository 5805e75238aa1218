#!/usr/bin/env python
"""Architecture matrix: every torchvision classification family and the timm students, through every target.

For each model: a bundle (seeded random weights, BatchNorm statistics re-estimated; or, with ``--weights
imagenet``, torchvision's ImageNet weights from its local cache) -> export for ONNX,
Core ML on each of the five Apple devices (iPhone 6: NeuralNetwork spec 3; iPhone X: ML Program iOS 16;
iPhone XR and iPad 7: iOS 18; iPad Air 2: iOS 15) and TFLite fp32/fp16/int8 -> parity against PyTorch ->
evaluation (the artifact run again through ``load_artifact_model``, the path ``deploy evaluate ARTIFACT`` uses,
on the fixed input, against the manifest's reference features). Each cell is passed, failed (parity ran
and missed its threshold) or skipped/refused with the one-line reason the toolchain gave.

Each model runs in its own process (a converter that crashes takes one model down, not the matrix), and
finished models are kept in the JSON, so an interrupted run resumes where it stopped.

    .venv/bin/python benchmarks/architectures.py --size 64                 # the README table
    .venv/bin/python benchmarks/architectures.py --models resnet18,squeezenet1_1 --size 64
    .venv/bin/python benchmarks/architectures.py --list
    .venv/bin/python benchmarks/architectures.py --size 64 --redo tflite:int8   # re-measure one column
    .venv/bin/python benchmarks/architectures.py --weights imagenet --size 224  # trained weights (see below)

Random weights measure the converters, but some random networks amplify rounding so much that PyTorch's own
fp16, int8 or even float64 variant misses the parity thresholds (the cells say so). ``--weights imagenet``
runs the torchvision models on their ImageNet weights instead, read from torchvision's cache
(``$TORCH_HOME/hub/checkpoints``, never downloaded; a missing file is an error cell naming the URL to fetch)
and written to ``benchmarks/results/architectures_imagenet.json``. timm models are left out there: bring their
weights with ``deploy model import``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolchain.policy import min_cosine  # noqa: E402 - light (numbers only); the path above finds it

from architecture_checks import (  # noqa: E402 - beside this file (sys.path[0])
    evaluate_again,
    input_noise_cosine,
    int8_diagnosis,
    torch_fp16_cosine,
    torch_fp64_cosine,
)

#: label -> (card, minimum input size in pixels). A minimum is the size where the network's own pooling
#: is what it is at 224 (VGG/AlexNet's adaptive pool is an identity at 224 only; ViT's position
#: embedding and Swin's windows are built for 224; Inception v3 needs 75+).
MODELS: dict[str, tuple[str, int]] = {
    "resnet18": ("torchvision:resnet18", 0),
    "resnet50": ("resnet50_ocular", 0),
    "resnext50_32x4d": ("torchvision:resnext50_32x4d", 0),
    "wide_resnet50_2": ("torchvision:wide_resnet50_2", 0),
    "mobilenet_v2": ("torchvision:mobilenet_v2", 0),
    "mobilenet_v3_small": ("torchvision:mobilenet_v3_small", 0),
    "mobilenet_v3_large": ("torchvision:mobilenet_v3_large", 0),
    "shufflenet_v2_x0_5": ("torchvision:shufflenet_v2_x0_5", 0),
    "squeezenet1_0": ("torchvision:squeezenet1_0", 0),
    "squeezenet1_1": ("torchvision:squeezenet1_1", 0),
    "mnasnet0_5": ("torchvision:mnasnet0_5", 0),
    "regnet_x_400mf": ("torchvision:regnet_x_400mf", 0),
    "regnet_y_400mf": ("torchvision:regnet_y_400mf", 0),
    "efficientnet_b0": ("torchvision:efficientnet_b0", 0),
    "efficientnet_v2_s": ("torchvision:efficientnet_v2_s", 0),
    "densenet121": ("torchvision:densenet121", 0),
    "googlenet": ("torchvision:googlenet", 0),
    "inception_v3": ("torchvision:inception_v3", 96),
    "convnext_tiny": ("torchvision:convnext_tiny", 0),
    "vgg11_bn": ("torchvision:vgg11_bn", 224),
    "alexnet": ("torchvision:alexnet", 224),
    "vit_b_16": ("torchvision:vit_b_16", 224),
    "swin_t": ("torchvision:swin_t", 224),
    "timm:resnet18": ("timm:resnet18", 0),
    "timm:resnet50": ("timm:resnet50", 0),
    "timm:mobilenetv2_100": ("timm:mobilenetv2_100", 0),
    "timm:mobilenetv3_small_100": ("timm:mobilenetv3_small_100", 0),
    "timm:mobilenetv3_large_100": ("timm:mobilenetv3_large_100", 0),
    "timm:efficientnet_b0": ("timm:efficientnet_b0", 0),
}
APPLE = ["iphone6", "iphonex", "iphonexr", "ipadair2", "ipad7"]
#: (target, precision, devices) per export request; Core ML devices that share an artifact share one export.
REQUESTS = [("onnx", "fp32", []), ("coreml", "fp32", APPLE),
            ("tflite", "fp32", ["android"]), ("tflite", "fp16", ["android"]), ("tflite", "int8", ["android"])]


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def diagnose_one(label: str, size: int, seed: int = 0, int8: bool = True, weights: str = "random") -> dict:
    """The diagnosis of one model whose stored cells predate it: the bundle again (same seed, same weights),
    :func:`input_noise_cosine` and :func:`torch_fp64_cosine`, and with ``int8`` its int8 TFLite export again
    and :func:`int8_diagnosis`."""
    from toolchain.errors import ParityError
    from toolchain.export.base import ExportRequest, export_bundle
    from toolchain.models.bundle import init_bundle

    card, min_size = MODELS[label]
    with tempfile.TemporaryDirectory() as tmp:
        bundle = init_bundle(card, Path(tmp) / "bundle", seed=seed, input_size=max(size, min_size), weights=weights)
        model = {"fp32_noise_cosine": input_noise_cosine(bundle), "torch_fp64_cosine": torch_fp64_cosine(bundle)}
        if not int8:
            return model
        out = Path(tmp) / "int8"
        try:
            export_bundle(ExportRequest(bundle, "tflite", out, devices=["android"], precision="int8"))
        except ParityError:
            pass  # the artifact and its manifest are written; the diagnosis is about why it failed
        folder = next(out.glob("*/manifest.json")).parent
        return {**model, **int8_diagnosis(bundle, folder)}


def run_one(label: str, size: int, seed: int = 0, coreml_precision: str = "fp32",
            only: set[tuple[str, str]] | None = None, weights: str = "random") -> list[dict]:
    """Every cell of one model (in this process); with ``only``, just those (target, precision) requests."""
    from toolchain.errors import ParityError, ToolchainError
    from toolchain.export.base import ExportRequest, export_bundle, plan_choices
    from toolchain.artifact.manifest import read as read_manifest
    from toolchain.models.bundle import init_bundle, load_bundle

    card, min_size = MODELS[label]
    size = max(size, min_size)
    cells: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        try:
            bundle = init_bundle(card, Path(tmp) / "bundle", seed=seed, input_size=size, weights=weights)
            meta = load_bundle(bundle).meta
        except ToolchainError as e:
            return [{"model": label, "target": t, "device": d, "status": "error", "reason": f"init: {_first_line(e)}"}
                    for t, _, devs in REQUESTS for d in (devs or ["host"])]
        base = {"model": label, "input_size": size, "parameters": meta["weights"]["num_parameters"],
                "feature_dim": meta["feature_dim"], "init_seconds": round(time.perf_counter() - t0, 2)}
        try:
            base["torch_fp16_cosine"] = torch_fp16_cosine(bundle)
        except Exception as e:  # noqa: BLE001 - informational only
            base["torch_fp16_cosine"] = f"n/a ({type(e).__name__})"
        for key, fn in (("fp32_noise_cosine", input_noise_cosine), ("torch_fp64_cosine", torch_fp64_cosine)):
            try:
                base[key] = fn(bundle)
            except Exception as e:  # noqa: BLE001 - informational only
                base[key] = f"n/a ({type(e).__name__})"
        for target, precision, devices in REQUESTS:
            if target == "coreml":
                precision = coreml_precision
            if only is not None and (target, precision) not in only:
                continue
            groups = [[d.key for d in g] for _, g in plan_choices(ExportRequest(bundle, target, Path(tmp), devices))] \
                if devices else [[]]
            for group in groups:
                out = Path(tmp) / f"out-{len(cells)}"
                cell = {**base, "target": target, "precision": precision}
                t1 = time.perf_counter()
                folder = None
                try:
                    (o,) = export_bundle(ExportRequest(bundle, target, out, devices=group, precision=precision))
                    folder, m = o.folder, o.manifest.to_json()
                except ParityError as e:
                    folder = next(out.glob("*/manifest.json")).parent
                    m = read_manifest(folder).to_json()
                    cell["reason"] = _first_line(e) + " " + " | ".join(str(e).splitlines()[1:])[:300]
                except ToolchainError as e:
                    m = None
                    cell.update(status="error", reason=_first_line(e))
                except Exception as e:  # noqa: BLE001 - a traceback here is a toolchain bug: record it as one
                    m = None
                    cell.update(status="error", reason=f"BUG {type(e).__name__}: {_first_line(e)}")
                cell["total_seconds"] = round(time.perf_counter() - t1, 2)
                if m is not None:
                    p = m["parity"]
                    cell.update(status=p["status"], artifact=m["name"], precision=m["precision"],
                                spec_version=(m.get("coreml") or {}).get("spec_version"), size_bytes=m["size_bytes"],
                                convert_seconds=m["convert_seconds"], cosine_min=p["cosine_min"],
                                max_abs=p["max_abs"], reference=p["reference"])
                    if p["status"] == "skipped":
                        cell["reason"] = p["reason"]
                    try:
                        cell.update(evaluate_again(folder))
                    except Exception as e:  # noqa: BLE001
                        cell.update(status="error", reason=f"evaluate: {type(e).__name__}: {_first_line(e)}")
                    if target == "tflite" and precision == "int8":
                        try:
                            cell.update(int8_diagnosis(bundle, folder))
                        except Exception as e:  # noqa: BLE001 - informational only
                            cell["int8_diagnosis_error"] = f"{type(e).__name__}: {_first_line(e)}"
                for d in group or ["host"]:
                    cells.append({**cell, "device": d})
                    print(json.dumps({k: cell.get(k) for k in ("model", "target", "status", "cosine_min", "reason")}
                                     | {"device": d}), flush=True)
    return cells


def _cell_key(c: dict) -> tuple:
    return c["target"], c.get("precision"), c["device"]


def _legacy(cell: dict) -> dict:
    """A cell stored before evaluation accepted parity-failed artifacts: its export's parity ran and failed, and
    the evaluation step then refused the artifact (``open_artifact``'s rule). That is a *failed* cell (parity
    measured, below threshold), with the export's cosine kept; no evaluation cosine was measured for it."""
    reason = cell.get("reason") or ""
    if cell.get("status") == "error" and reason.startswith("evaluate: ArtifactError") \
            and "parity with PyTorch failed at export" in reason:
        return {**cell, "status": "failed", "reason": "parity failed: " + reason.split("failed at export", 1)[1]
                .split(";", 1)[0].strip(" ()")}
    return cell


def _ptq_loss(c: dict) -> bool:
    """A failed int8 cell whose loss PyTorch's own int8 model (no converter involved) shows as well."""
    return c["status"] == "failed" and c.get("precision") == "int8" and isinstance(c.get("int8_torch_cosine"), float) \
        and c["int8_torch_cosine"] < min_cosine("int8")


def _reason(c: dict) -> str:
    reason = c.get("reason", "")
    if _ptq_loss(c):
        cos = c["cosine_min"]
        return (f"int8 cosine {cos:.4f} < {min_cosine('int8')}: PyTorch's own int8 model (same quantiser and "
                f"calibration, no converter) misses too, at {c['int8_torch_cosine']:.4f} against fp32 (the artifact "
                f"against it: {c['int8_converter_cosine']:.4f}); fp32 under ±1 px input noise: "
                f"{c['fp32_noise_cosine']:.4f}")
    fp16, noise, fp64 = (c.get(k) for k in ("torch_fp16_cosine", "fp32_noise_cosine", "torch_fp64_cosine"))
    noisy = f"; fp32 under ±1 px input noise: {noise:.4f}" if isinstance(noise, float) else ""
    tq = c.get("int8_torch_cosine")
    if c["status"] == "failed" and c.get("precision") == "int8" and isinstance(tq, float):
        return (f"int8 cosine {c['cosine_min']:.4f} < {min_cosine('int8')} while PyTorch's own int8 model passes "
                f"({tq:.4f} against fp32; the artifact against it: {c['int8_converter_cosine']:.4f}): the loss is "
                "in the conversion to LiteRT or its integer kernels (not yet traced to an op)")
    if c["status"] != "failed" or c.get("precision") == "int8":
        return reason
    if c.get("precision") == "fp16" and isinstance(fp16, float) and fp16 < min_cosine("fp16"):
        return (f"fp16 cosine {c['cosine_min']:.4f} < {min_cosine('fp16')}: PyTorch's own fp16 model (no converter) "
                f"misses the threshold too, at {fp16:.4f} against fp32{noisy}")
    if isinstance(fp64, float) and fp64 < min_cosine("fp32"):
        return (f"cosine {c['cosine_min']:.6f}: these random weights amplify rounding so much that PyTorch misses "
                f"the fp32 threshold against itself — its own float64 vs float32 gives {fp64:.6f} "
                f"(fp32 parity asks {min_cosine('fp32')}){noisy}")
    return reason


def _table(cells: list[dict], size: int) -> str:
    """The Markdown matrix: one row per model, one column per target x device."""
    cols = [("onnx", "fp32", "host")] + [("coreml", None, d) for d in APPLE] + \
        [("tflite", p, "android") for p in ("fp32", "fp16", "int8")]
    head = ["model", "params M", "torch fp16 cos"] + [f"{t} {d}" if t == "coreml" else f"{t} {p}" for t, p, d in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {}
    for c in cells:
        key = (c["target"], None if c["target"] == "coreml" else c.get("precision"), c["device"])
        by[(c["model"], key)] = c
    notes: list[str] = []
    for model in dict.fromkeys(c["model"] for c in cells):
        row = [model]
        any_cell = next(c for c in cells if c["model"] == model)
        row.append(f"{any_cell.get('parameters', 0) / 1e6:.1f}" if any_cell.get("parameters") else "-")
        fp16 = any_cell.get("torch_fp16_cosine")
        row.append(f"{fp16:.4f}" if isinstance(fp16, float) else "-")
        for t, p, d in cols:
            c = by.get((model, (t, p, d)))
            if c is None:
                row.append("–")
                continue
            if c["status"] == "passed":
                row.append(f"✓ {c['cosine_min']:.4f}")
            else:
                notes.append(f"{model} / {t} {p or ''} {d}: {c['status']} — {_reason(c)}")
                row.append(f"**{c['status']}** [{len(notes)}]")
        lines.append("| " + " | ".join(row) + " |")
    passed = sum(c["status"] == "passed" for c in cells)
    ptq = sum(_ptq_loss(c) for c in cells)
    lines.append("")
    lines.append(f"{passed}/{len(cells)} cells passed ({100 * passed / max(len(cells), 1):.1f} %), input {size} px "
                 "(larger where a model needs it: see the JSON)." + (
                     f" {ptq} of the {len(cells) - passed} others are int8 cells that PyTorch's own int8 model "
                     "misses too (post-training quantisation's own loss, before any converter)." if ptq else ""))
    lines += [f"{i}. {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines)


def env_with_root() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated labels (see --list)")
    ap.add_argument("--size", type=int, default=64, help="input pixels (each model's minimum still applies)")
    ap.add_argument("--out", type=Path, help="results JSON (default benchmarks/results/architectures.json, "
                    "architectures_imagenet.json with --weights imagenet)")
    ap.add_argument("--weights", default="random", choices=["random", "imagenet"],
                    help="random: seeded init (the README table); imagenet: torchvision's cached ImageNet weights, "
                         "torchvision models only")
    ap.add_argument("--fresh", action="store_true", help="ignore models already in --out")
    ap.add_argument("--coreml-precision", default="fp32", choices=["fp32", "fp16"],
                    help="Core ML cells' precision (fp32: converter correctness, see torch_fp16_cosine)")
    ap.add_argument("--redo", default="",
                    help="comma-separated TARGET:PRECISION (e.g. tflite:int8): measure those cells again for the "
                         "--models and replace them in --out, keeping every other stored cell")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one model, print JSON cells
    ap.add_argument("--diagnose", help=argparse.SUPPRESS)  # internal: one model's diagnosis, print JSON
    ap.add_argument("--no-int8", action="store_true", help=argparse.SUPPRESS)  # internal: --diagnose without int8
    args = ap.parse_args()
    if args.out is None:
        name = "architectures.json" if args.weights == "random" else f"architectures_{args.weights}.json"
        args.out = ROOT / "benchmarks/results" / name
    if args.weights != "random" and args.models == ap.get_default("models"):
        args.models = ",".join(k for k, (card, _) in MODELS.items() if not card.startswith("timm:"))
    if args.list:
        for k, (card, s) in MODELS.items():
            print(f"{k:28} {card:34} min {s or '-'} px")
        return 0
    if args.diagnose:
        print("DIAG " + json.dumps(diagnose_one(args.diagnose, args.size, int8=not args.no_int8, weights=args.weights)),
              flush=True)
        return 0
    redo = {tuple(r.split(":", 1)) for r in args.redo.split(",") if r.strip()}
    known = {(t, args.coreml_precision if t == "coreml" else p) for t, p, _ in REQUESTS}
    if any(len(r) != 2 or r not in known for r in redo):
        print(f"--redo takes TARGET:PRECISION from {sorted(':'.join(k) for k in known)}", file=sys.stderr)
        return 2
    if args.one:
        cells = run_one(args.one, args.size, coreml_precision=args.coreml_precision, only=redo or None,
                        weights=args.weights)
        print("CELLS " + json.dumps(cells), flush=True)
        return 0

    from toolchain.fsutil import atomic_write_json

    done: dict = {}
    if args.out.is_file() and not args.fresh:
        prev = json.loads(args.out.read_text())
        if prev.get("size") == args.size and prev.get("coreml_precision", "fp32") == args.coreml_precision \
                and prev.get("weights", "random") == args.weights:
            done = {c["model"]: [] for c in prev["cells"]}
            for c in prev["cells"]:
                done[c["model"]].append(_legacy(c))
    header = {"size": args.size, "coreml_precision": args.coreml_precision, "weights": args.weights,
              "host": platform.machine(), "python": sys.version.split()[0]}
    cells: list[dict] = []
    labels = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in labels if m not in MODELS]
    if unknown:
        print(f"unknown models {unknown}; see --list", file=sys.stderr)
        return 2
    for label in labels:
        kept = [c for c in done.get(label, []) if (c["target"], c.get("precision")) not in redo] if redo else []
        if label in done and not redo:
            cells += done[label]
            continue
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, __file__, "--one", label, "--size", str(args.size),
                            "--coreml-precision", args.coreml_precision, "--weights", args.weights]
                           + (["--redo", args.redo] if redo and label in done else []),
                           capture_output=True, text=True, env=env_with_root())
        line = next((ln for ln in r.stdout.splitlines() if ln.startswith("CELLS ")), None)
        if line is None:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            new = [{"model": label, "target": t, "precision": p, "device": d, "status": "error",
                    "reason": f"BUG: process exited {r.returncode}: {tail[0][:300]}"}
                   for t, p, devs in REQUESTS for d in (devs or ["host"])
                   if not (redo and label in done) or (t, p) in redo]
        else:
            new = json.loads(line[6:])
        if kept:  # the stored cells stay in their order, the re-measured ones take their places
            rank = {_cell_key(c): i for i, c in enumerate(done[label])}
            new = sorted(kept + new, key=lambda c: rank.get(_cell_key(c), len(rank)))
        cells += new
        print(f"{label}: {sum(c['status'] == 'passed' for c in new)}/{len(new)} passed in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        atomic_write_json(args.out, {**header, "cells": [*cells, *(c for m, cs in done.items() if m not in labels
                                                                   for c in cs)]})
    # failures stored before the diagnosis existed: measure it now (seeded, so the same weights)
    for model in dict.fromkeys(c["model"] for c in cells if c["status"] == "failed"):
        mine = [c for c in cells if c["model"] == model]
        int8 = [c for c in mine if c.get("precision") == "int8" and c["status"] == "failed"
                and "int8_torch_cosine" not in c]
        if all("torch_fp64_cosine" in c for c in mine) and not int8:
            continue
        cmd = [sys.executable, __file__, "--diagnose", model, "--size", str(args.size), "--weights", args.weights] \
            + ([] if int8 else ["--no-int8"])
        r = subprocess.run(cmd, capture_output=True, text=True, env=env_with_root())
        line = next((ln for ln in r.stdout.splitlines() if ln.startswith("DIAG ")), None)
        if line is None:
            for c in mine:
                c["diagnosis_error"] = ((r.stderr or r.stdout).strip().splitlines() or ["no output"])[-1][:300]
            continue
        diag = json.loads(line[5:])
        print(f"{model}: diagnosis {line[5:]}", flush=True)
        for c in mine:
            c.update({k: v for k, v in diag.items() if not k.startswith("int8_")})
        for c in int8:
            c.update(diag)
    table = _table(cells, args.size)
    print(table)
    atomic_write_json(args.out, {**header, "cells": [*cells, *(c for m, cs in done.items() if m not in labels
                                                               for c in cs)], "table_markdown": table})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
