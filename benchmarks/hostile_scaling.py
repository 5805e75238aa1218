#!/usr/bin/env python
"""Scaling of the two paths issue 29 found quadratic: `data split` on a large CSV index and `collect dir` on a
folder of thousands of results files, each through the real CLI entry point, timed at growing sizes.

Before the fix: `collect dir` took 3.7 s for 500 files, 22.8 s for 2,000 and 210 s for 10,000 (each stored file
globbed the whole store and rescanned it for stale temps); `data split` on 20,000 rows naming 6 images did not
finish in 120 s. Then (stop 31): 10,000 files 107 s (half schema validation, half one fsync per file) and 20,000
rows 65 s (the protocol's pairs written through Python's indenting JSON encoder). Now: one sync per 1,000 stored
files (`fsutil.WriteBatch`) and compact protocol files. The JSON records the load average: on this shared 2-core
host the same run varies 2-3x with it.

    .venv/bin/python benchmarks/hostile_scaling.py --out benchmarks/results/hostile_scaling.json
    .venv/bin/python benchmarks/hostile_scaling.py --quick      # smaller sizes, seconds
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _cli(*args: str | Path) -> int:
    from toolchain.cli import main

    old = sys.argv
    sys.argv = ["deploy", *map(str, args)]
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        sys.argv = old
    return 0


def split_rows(root: Path, rows: int) -> dict:
    """`data split --no-check-images` on a CSV index of ``rows`` distinct images (10 per subject)."""
    from PIL import Image

    data = root / f"data-{rows}"
    (data / "img").mkdir(parents=True)
    im = Image.new("RGB", (8, 8), (90, 60, 30))
    lines = ["path,subject"]
    for i in range(rows):
        im.save(data / "img" / f"{i:06d}.png")
        lines.append(f"img/{i:06d}.png,s{i // 10:05d}")
    (data / "index.csv").write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    code = _cli("data", "split", data, "--out", root / f"split-{rows}", "--no-check-images")
    return {"case": "data split", "size": rows, "unit": "rows", "exit": code, "seconds": time.perf_counter() - t0}


def collect_files(root: Path, files: int) -> dict:
    """`collect dir` of ``files`` small valid results files into a new store."""
    from tests.bench._results import dumps, result

    src = root / f"in-{files}"
    src.mkdir()
    for i in range(files):
        (src / f"r{i:06d}.json").write_bytes(dumps(result(f"run-{i:06d}", [1000 + i % 13] * 5)))
    t0 = time.perf_counter()
    code = _cli("collect", "dir", src, "--out", root / f"store-{files}")
    return {"case": "collect dir", "size": files, "unit": "files", "exit": code, "seconds": time.perf_counter() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="500/2,000 of each instead of up to 20,000/10,000")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/hostile_scaling.json"))
    a = ap.parse_args()
    rows = [2000, 5000] if a.quick else [5000, 20000]
    files = [500, 2000] if a.quick else [2000, 10000]
    out: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in rows:
            out.append(split_rows(root, n))
        for n in files:
            out.append(collect_files(root, n))
    for r in out:
        r["per_1000_s"] = r["seconds"] / r["size"] * 1000
    print(f"{'case':<12} {'size':>8} {'unit':<6} {'exit':>4} {'seconds':>9} {'s/1000':>8}")
    for r in out:
        print(f"{r['case']:<12} {r['size']:>8} {r['unit']:<6} {r['exit']:>4} {r['seconds']:>9.2f} {r['per_1000_s']:>8.3f}")
    doc = {"benchmark": "hostile_scaling", "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                                                   "python": platform.python_version(),
                                                   "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
           "note": "wall time through toolchain.cli:main in one process; the host may be shared (load varies)",
           "results": out}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0 if all(r["exit"] == 0 for r in out) else 1


if __name__ == "__main__":
    raise SystemExit(main())
