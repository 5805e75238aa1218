#!/usr/bin/env python
"""Export benchmark: every target x precision (x Core ML compression) for ResNet50 and MobileNetV2.

Prints a table of conversion seconds, artifact size and parity numbers, and writes JSON.

    .venv/bin/python benchmarks/export.py --out benchmarks/results/export.json
    .venv/bin/python benchmarks/export.py --models resnet50_ocular --quick   # fewer variants
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

# (target, precision, extra request fields, label)
VARIANTS = [
    ("onnx", "fp32", {}, ""), ("onnx", "fp16", {}, ""), ("onnx", "int8", {}, ""),
    ("tflite", "fp32", {"devices": ["android"]}, ""), ("tflite", "fp16", {"devices": ["android"]}, ""),
    ("tflite", "int8", {"devices": ["android"]}, "static"),
    ("tflite", "int8", {"devices": ["android"], "int8_mode": "dynamic"}, "dynamic"),
    ("coreml", None, {"devices": ["iphone6"]}, ""), ("coreml", None, {"devices": ["iphonex"]}, ""),
    ("coreml", None, {"devices": ["iphonexr"]}, ""), ("coreml", None, {"devices": ["ipadair2"]}, ""),
    ("coreml", "fp32", {"devices": ["iphonexr"]}, ""), ("coreml", "int8", {"devices": ["iphonexr"]}, ""),
    ("coreml", None, {"devices": ["iphonexr"], "compress": "sparse"}, ""),
    ("coreml", None, {"devices": ["iphonexr"], "compress": "palettize8"}, ""),
    ("coreml", None, {"devices": ["iphonexr"], "compress": "palettize4"}, ""),
]
QUICK = [("onnx", "fp32", {}, ""), ("tflite", "fp32", {"devices": ["android"]}, ""),
         ("tflite", "int8", {"devices": ["android"]}, "static"), ("coreml", None, {"devices": ["iphone6"]}, ""),
         ("coreml", None, {"devices": ["iphonexr"]}, "")]


def _manifest_row(m: dict) -> dict:
    """A row from a manifest's JSON (``Manifest.to_json()``, or a manifest.json read back)."""
    p = m["parity"]
    return {"artifact": m["name"], "precision": m["precision"], "spec_version": (m.get("coreml") or {}).get("spec_version"),
            "size_bytes": m["size_bytes"], "convert_seconds": m["convert_seconds"], "parity": p["status"],
            "cosine_min": p["cosine_min"], "max_abs": p["max_abs"], "threshold": p.get("min_cosine_required"),
            "reference": p["reference"] or p["reason"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50_ocular,mobilenet_v2")
    ap.add_argument("--quick", action="store_true", help="five variants per model instead of all")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/export.json"))
    args = ap.parse_args()

    from toolchain.errors import ParityError, ToolchainError
    from toolchain.export.base import ExportRequest, export_bundle
    from toolchain.fsutil import atomic_write_json
    from toolchain.models.bundle import init_bundle

    rows = []
    console = Console(width=180)
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            bundle = init_bundle(model, Path(tmp) / model)
            for target, precision, extra, label in (QUICK if args.quick else VARIANTS):
                t0 = time.perf_counter()
                row = {"model": model, "target": target, "precision": precision, **extra, "int8": label or None}
                out = Path(tmp) / "out" / f"{model}-{len(rows)}"
                try:
                    (o,) = export_bundle(ExportRequest(bundle, target, out, precision=precision, **extra))
                    row.update(_manifest_row(o.manifest.to_json()))
                except ParityError as e:
                    # The failing artifact and its manifest stay on disk: report its numbers, not just "failed".
                    (failed,) = e.outcomes
                    row.update(_manifest_row(failed.manifest.to_json()), error=" | ".join(str(e).splitlines()[1:]))
                except ToolchainError as e:
                    row.update(error=" | ".join(str(e).splitlines()))
                row["total_seconds"] = round(time.perf_counter() - t0, 2)
                rows.append(row)
                console.print(f"{model} {row.get('artifact', target)}: {row.get('parity', row.get('error'))} "
                              f"in {row['total_seconds']} s")
    t = Table(title="Export benchmark (random-init weights, BN re-estimated; 2-core x86 host)")
    for c in ("model", "artifact", "spec", "size MB", "convert s", "total s", "parity", "cosine min", "max abs"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["model"], r.get("artifact", f"{r['target']} {r.get('error', '')}"[:60]), str(r.get("spec_version") or ""),
                  f"{r['size_bytes'] / 1e6:.1f}" if "size_bytes" in r else "-", str(r.get("convert_seconds", "-")),
                  str(r["total_seconds"]), r.get("parity", "error"),
                  f"{r['cosine_min']:.6f}" if r.get("cosine_min") is not None else "-",
                  f"{r['max_abs']:.1e}" if r.get("max_abs") is not None else "-")
    console.print(t)
    atomic_write_json(args.out, {"host": platform.processor() or platform.machine(), "python": sys.version.split()[0],
                                 "rows": rows})
    console.print(f"wrote {args.out}")
    return 1 if any(r.get("parity") == "failed" or "error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
