"""Feature extraction speed (images per second) per runtime, as ``deploy evaluate`` runs it.

For each model card (default: resnet50_ocular and mobilenet_v2 at 224x224) this builds a
seeded random-weight bundle, exports it to ONNX and TFLite (fp32, parity-checked), then
times :class:`toolchain.evaluate.features.FeatureExtractor.extract` on the same raw-pixel images
for PyTorch eager (batched and one image at a time), ONNX Runtime and LiteRT.

Two numbers per runtime, both medians over ``--repeats``:

* ``images_per_s``: N images in one call, everything included (an artifact's runtime session
  is created once per call, as in ``deploy evaluate``);
* ``best_images_per_s``: the same from the fastest repeat (robust to other load on a shared CPU);
* ``steady_images_per_s``: (N - 1) / (t_N - t_1), the per-image rate with the one-off cost
  (session creation, first-run allocation) of a call subtracted; ``setup_ms`` is that cost.

Usage::

    python benchmarks/feature_extraction.py --images 16 --repeats 5 --out feature_extraction.json

Timings on a shared CPU are noisy; the JSON keeps every raw duration in nanoseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def time_ns(fn) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def bench_runtime(model, pixels, repeats: int, batch_size: int) -> dict:
    """Raw durations for 1 image and for all images; rates derived from their medians."""
    import numpy as np

    def run_all():
        for s in range(0, len(pixels), batch_size):
            model.extract(pixels[s:s + batch_size])

    model.extract(pixels[:1])  # warm-up: lazy imports, first allocation
    one_ns = [time_ns(lambda: model.extract(pixels[:1])) for _ in range(repeats)]
    all_ns = [time_ns(run_all) for _ in range(repeats)]
    n = len(pixels)
    t1, tn = statistics.median(one_ns), statistics.median(all_ns)
    calls = -(-n // batch_size)
    steady_ns = max((tn - calls * t1) / max(n - calls, 1), 1.0) if n > calls else tn / n
    setup_ns = max(t1 - steady_ns, 0.0)
    return {"runtime": model.runtime, "batch_size": batch_size, "images": n, "one_image_ns": one_ns, "all_images_ns": all_ns,
            "images_per_s": round(n / (tn / 1e9), 2), "best_images_per_s": round(n / (min(all_ns) / 1e9), 2), "steady_images_per_s": round(1e9 / steady_ns, 2),
            "setup_ms": round(setup_ns / 1e6, 1), "feature_dim": int(np.asarray(model.extract(pixels[:1])).shape[1])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cards", nargs="+", default=["resnet50_ocular", "mobilenet_v2"])
    ap.add_argument("--size", type=int, default=224, help="input size in pixels")
    ap.add_argument("--images", type=int, default=16, help="images per timed call")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16, help="PyTorch batch (artifacts run one image per invoke)")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch threads (LiteRT uses 2, ONNX Runtime its default)")
    ap.add_argument("--runtimes", nargs="+", default=["pytorch", "pytorch_b1", "onnx", "tflite"])
    ap.add_argument("--work", type=Path, default=None, help="folder for bundles and artifacts (default: a temp folder)")
    ap.add_argument("--out", type=Path, default=Path("feature_extraction.json"))
    args = ap.parse_args(argv)

    import torch

    from toolchain.evaluate.features import open_model
    from toolchain.export.base import ExportRequest, export_bundle
    from toolchain.artifact.inputs import smooth_random_images
    from toolchain.fsutil import atomic_write_json
    from toolchain.models.bundle import init_bundle

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_fe_"))
    pixels = smooth_random_images(args.images, args.size, seed=5)
    rows, skipped = [], []
    for card in args.cards:
        bundle = init_bundle(card, work / card, seed=0, input_size=args.size)
        for rt in args.runtimes:
            if rt in ("pytorch", "pytorch_b1"):
                folder, batch = bundle, (args.batch_size if rt == "pytorch" else 1)
            else:
                try:
                    t0 = time.perf_counter()
                    with contextlib.redirect_stdout(sys.stderr):  # converters print progress; stdout is the table
                        [outcome] = export_bundle(ExportRequest(bundle_dir=bundle, target=rt, out=work / f"{card}_{rt}",
                                                                precision="fp32"))
                    print(f"  exported {card} to {rt} in {time.perf_counter() - t0:.1f} s "
                          f"(parity {outcome.parity.get('status')})", file=sys.stderr)
                except Exception as e:  # noqa: BLE001 - a missing exporter is reported, not fatal
                    skipped.append({"card": card, "runtime": rt, "reason": f"{type(e).__name__}: {e}"})
                    print(f"  skipped {card} {rt}: {e}", file=sys.stderr)
                    continue
                folder, batch = outcome.folder, len(pixels)  # one call: the artifact runs one image per invoke
            model = open_model(folder)
            r = bench_runtime(model, pixels, args.repeats, batch)
            rows.append({"card": card, "size": args.size, "runtime_key": rt, **r})
            print(f"  {card} {rt}: {r['images_per_s']} images/s", file=sys.stderr)

    header = f"{'model':<18}{'runtime':<26}{'batch':>6}{'images/s':>10}{'best/s':>10}{'steady/s':>10}{'setup ms':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        rt = r["runtime"] if r["runtime_key"] != "pytorch_b1" else r["runtime"] + " (b1)"
        print(f"{r['card']:<18}{rt:<26}{r['batch_size']:>6}{r['images_per_s']:>10.1f}{r['best_images_per_s']:>10.1f}"
              f"{r['steady_images_per_s']:>10.1f}{r['setup_ms']:>10.1f}")
    for s in skipped:
        print(f"skipped: {s['card']} {s['runtime']}: {s['reason']}")
    doc = {"benchmark": "feature_extraction", "host": {"machine": platform.machine(), "processor": platform.processor(),
                                                       "cpu_count": os.cpu_count(), "python": platform.python_version()},
           "torch_threads": args.threads, "images": args.images, "repeats": args.repeats, "results": rows,
           "skipped": skipped, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_json(args.out, doc)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
