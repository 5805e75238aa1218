#!/usr/bin/env python
"""Models as users have them (issue 24), each brought in the way a user would and exported to every target.

    .venv/bin/python benchmarks/user_models.py                      # the whole matrix (~20-40 min on 2 cores)
    .venv/bin/python benchmarks/user_models.py --models gray-resnet18 --targets onnx,iphone6

The models:
  iresnet50       insightface's IResNet-50 (PReLU, final BatchNorm1d; tests/export/_iresnet.py, its own .py file
                  via --arch FILE.py:iresnet50) at 112x112, arcface preprocessing (mean 0.5, std 0.5), weights from
                  its own init with BatchNorm statistics re-estimated on smooth images (shared/FINDINGS.md: random
                  weights), imported from a state dict
  gray-resnet18   a 1-channel ResNet18 at 64x128 (`model init resnet18 --channels 1 --input-size 64x128`)
  mobilenet-v2    MobileNetV2 at 96x192 (`model init mobilenet_v2 --input-size 96x192`)
  onnx-0.5        a ResNet18 trunk exported to ONNX by torch.onnx (input normalised with 0.5/0.5), imported with
                  `model import m.onnx --mean 0.5 --std 0.5`
Targets: ONNX fp32; TFLite fp32; TFLite int8 (calibrated on synthetic images of the model's own channels and
size); Core ML for the iPhone 6 (NeuralNetwork spec 3, fp16) and the iPhone XR (ML Program, fp16). Every export gets
`--data` (parity on held-out images, never calibration ones). Each cell is the export's exit code, parity verdict
and cosines from its manifest, and its wall time; all run through the real CLI in subprocesses.
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

REPO = Path(__file__).resolve().parents[1]
DEPLOY = [sys.executable, "-m", "toolchain.cli"]

#: target key -> export arguments
TARGETS: dict[str, list[str]] = {
    "onnx": ["--target", "onnx"],
    "tflite-fp32": ["--target", "tflite", "--precision", "fp32"],
    "tflite-int8": ["--target", "tflite", "--precision", "int8"],
    "iphone6": ["--target", "coreml", "--device", "iphone6"],
    "iphonexr": ["--target", "coreml", "--device", "iphonexr"],
}


def _run(args: list[str], log: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    with open(log, "ab") as fh:
        fh.write(("$ deploy " + " ".join(map(str, args)) + "\n").encode())
        fh.flush()
        code = subprocess.run([*DEPLOY, *map(str, args)], stdout=fh, stderr=subprocess.STDOUT, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}).returncode
    return code, time.perf_counter() - t0


def _data(work: Path, channels: int, size: int, log: Path) -> Path:
    out = work / f"data-c{channels}-{size}"
    if not out.exists():
        code, _ = _run(["data", "synth", "--out", out, "--subjects", "6", "--images-per-subject", "4", "--size",
                        str(size), "--channels", str(channels), "--seed", "3"], log)
        if code:
            raise SystemExit(f"data synth failed (exit {code}); see {log}")
    return out


def _iresnet50(work: Path, log: Path) -> tuple[Path, list[str]]:
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(REPO))
    from tests.export._iresnet import calibrated, iresnet50

    torch.manual_seed(0)
    weights = work / "iresnet50.safetensors"
    save_file(calibrated(iresnet50(), 112).state_dict(), str(weights))
    out = work / "b-iresnet50"
    return out, ["model", "import", weights, "--arch", f"{REPO / 'tests/export/_iresnet.py'}:iresnet50",
                 "--input-size", "112", "--mean", "0.5", "--std", "0.5", "--out", out, "--force"]


def _onnx_half(work: Path, log: Path) -> tuple[Path, list[str]]:
    import torch

    from toolchain.models.bundle import load_bundle

    src = work / "b-onnx-src"
    code, _ = _run(["model", "init", "resnet18", "--input-size", "112", "--out", src, "--force"], log)
    if code:
        raise SystemExit(f"model init resnet18 failed (exit {code}); see {log}")
    trunk = load_bundle(src).model.eval()  # takes normalised pixels, as a user's ONNX file does
    onnx_file = work / "user_resnet18.onnx"
    torch.onnx.export(trunk, (torch.zeros(1, 3, 112, 112),), str(onnx_file), input_names=["input"],
                      output_names=["embedding"], dynamo=False, opset_version=17)
    out = work / "b-onnx-0.5"
    return out, ["model", "import", onnx_file, "--mean", "0.5", "--std", "0.5", "--out", out, "--force"]


MODELS = {
    # name -> (how the bundle is made, channels, data size)
    "iresnet50": (_iresnet50, 3, 112),
    "gray-resnet18": (lambda w, log: (w / "b-gray-resnet18", ["model", "init", "resnet18", "--channels", "1",
                                                             "--input-size", "64x128", "--out",
                                                             w / "b-gray-resnet18", "--force"]), 1, 128),
    "mobilenet-v2": (lambda w, log: (w / "b-mobilenet-v2", ["model", "init", "mobilenet_v2", "--input-size",
                                                           "96x192", "--out", w / "b-mobilenet-v2", "--force"]),
                     3, 192),
    "onnx-0.5": (_onnx_half, 3, 112),
}


def _manifest_cells(folder: Path) -> dict:
    mans = sorted(folder.glob("*/manifest.json"))
    if not mans:
        return {}
    m = json.loads(mans[0].read_text())
    p = m.get("parity") or {}
    return {"parity": p.get("status"), "cosine": p.get("cosine_min"), "converter_cosine": p.get("converter_cosine"),
            "reduced_cosine": p.get("reduced_cosine"), "inputs": p.get("inputs"), "reason": p.get("reason"),
            "size_bytes": m.get("size_bytes")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma list of {', '.join(TARGETS)}")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/user_models.json")
    a = ap.parse_args()
    models = [m for m in a.models.split(",") if m]
    targets = [t for t in a.targets.split(",") if t]
    for m in models:
        if m not in MODELS:
            ap.error(f"unknown model {m!r}")
    for t in targets:
        if t not in TARGETS:
            ap.error(f"unknown target {t!r}")
    tmp = None if a.work else tempfile.TemporaryDirectory()
    work = a.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    rows = []
    for m in models:
        make, channels, size = MODELS[m]
        data = _data(work, channels, size, log)
        bundle, cmd = make(work, log)
        code, secs = _run(cmd, log)
        row = {"model": m, "import_exit": code, "import_s": round(secs, 1), "cells": {}}
        rows.append(row)
        print(f"{m}: bundle exit {code} in {secs:.0f} s", flush=True)
        if code:
            continue
        for t in targets:
            out = work / f"x-{m}-{t}"
            extra = ["--calibration", data] if t == "tflite-int8" else []
            code, secs = _run(["export", bundle, *TARGETS[t], "--data", data, *extra, "--out", out, "--force"], log)
            cell = {"exit": code, "seconds": round(secs, 1), **_manifest_cells(out)}
            row["cells"][t] = cell
            print(f"  {t:<12} exit {code}  parity {cell.get('parity')}  cosine {cell.get('cosine')}  "
                  f"converter {cell.get('converter_cosine')}  {secs:.0f} s", flush=True)
    print()
    print("| model | " + " | ".join(targets) + " |")
    print("|---|" + "---|" * len(targets))
    for r in rows:
        def fmt(c: dict | None) -> str:
            if not c:
                return "not run"
            cos = c.get("converter_cosine") if c.get("converter_cosine") is not None else c.get("cosine")
            return f"{c.get('parity') or 'exit ' + str(c['exit'])}" + (f" {cos:.5f}" if isinstance(cos, float) else "")
        cells = [fmt(r["cells"].get(t)) if not r["import_exit"] else f"import exit {r['import_exit']}" for t in targets]
        print(f"| {r['model']} | " + " | ".join(cells) + " |")
    doc = {"benchmark": "user_models", "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                                                "python": platform.python_version(),
                                                "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
           "note": "cells: export exit code, parity verdict and cosines from each manifest, wall seconds",
           "results": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {a.out}; commands and their output: {log}")
    if tmp is not None:
        tmp.cleanup()
    ok = all(not r["import_exit"] and all(c["exit"] == 0 and c.get("parity") == "passed" for c in r["cells"].values())
             for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
