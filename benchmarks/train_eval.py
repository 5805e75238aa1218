#!/usr/bin/env python
"""Training throughput: images/second of the real training loop (``toolchain.train.loop.fit``).

For each (card, input size) it renders a small synthetic set, then runs ``fit`` for a short
epoch (``--batches`` steps of ``--batch-size``, warm-up steps first) with augmentation, the
loss, the backward pass and the optimizer step: what ``deploy train`` does per image. Prints a
table and writes JSON. Feature-extraction speed per runtime is ``deploy evaluate``'s timing.

    .venv/bin/python benchmarks/train_eval.py --out benchmarks/results/train_eval.json
    .venv/bin/python benchmarks/train_eval.py --cards tiny_ocular --sizes 64   # seconds
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


def measure(card: str, size: int, batch_size: int, batches: int, warmup: int, workdir: Path) -> dict:
    import torch

    from toolchain.data.images import ImageDataset
    from toolchain.data.layouts import scan
    from toolchain.data.synth import generate
    from toolchain.models.bundle import new_model
    from toolchain.models.cards import load_card
    from toolchain.train.loop import TrainConfig, fit

    n_images = batch_size * (batches + warmup)
    subjects = max(2, n_images // 4)
    data = generate(workdir / f"synth{size}", subjects=subjects, images_per_subject=4, size=size, seed=0)
    ds = scan(data)
    names = ds.subjects()
    samples = ds.samples[:n_images]
    c = load_card(card)
    train_ds = ImageDataset([s.path for s in samples], [names.index(s.subject) for s in samples], size,
                            c.mean, c.std, augment="ocular")
    step_s: list[float] = []
    last = [time.perf_counter()]

    def on_step(stage: str, done: int, total: int, info: dict) -> None:
        now = time.perf_counter()
        if stage == "train":
            step_s.append(now - last[0])
        last[0] = now

    model, _ = new_model(c, seed=0, input_size=size)
    cfg = TrainConfig(epochs=1, batch_size=batch_size, lr=0.01, warmup_epochs=0, device="cpu", seed=0)
    last[0] = time.perf_counter()
    fit(model.train(), train_ds, None, cfg, workdir / f"run_{card}_{size}", progress=on_step)
    timed = step_s[warmup:]
    return {"card": card, "input_size": size, "batch_size": batch_size, "batches_timed": len(timed),
            "warmup_batches": warmup, "step_seconds": [round(s, 4) for s in timed],
            "images_per_second": round(batch_size * len(timed) / sum(timed), 2),
            "threads": torch.get_num_threads()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cards", nargs="+", default=["resnet50_ocular"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[224, 112])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--batches", type=int, default=3, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--out", type=Path, help="JSON file to write")
    args = ap.parse_args()

    from toolchain.fsutil import atomic_write_json

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for card in args.cards:
            for size in args.sizes:
                rows.append(measure(card, size, args.batch_size, args.batches, args.warmup, Path(tmp)))
    table = Table(title="training throughput (CPU, augmentation + forward + backward + SGD step)")
    for col in ("card", "input", "batch", "timed steps", "images/s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["card"], f"{r['input_size']}", str(r["batch_size"]), str(r["batches_timed"]),
                      f"{r['images_per_second']:.1f}")
    Console().print(table)
    result = {"benchmark": "train_eval", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "python": sys.version.split()[0]}, "results": rows}
    if args.out:
        atomic_write_json(args.out, result)
        Console().print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
