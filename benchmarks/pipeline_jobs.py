#!/usr/bin/env python
"""`deploy pipeline run --jobs 1` against `--jobs 2`: four independent compression stages of one tiny recipe.

The recipe's data and teacher stages run once (untimed) into a template work folder; each timed run starts from a
copy of it and runs only the four ``[[compress]]`` stages (each a layerwise or global magnitude / random prune of
tiny_ocular with a short fine-tune), which depend on the teacher alone, so ``--jobs 2`` can run two at a time.
``--jobs 1`` is the tool's default (stages in this process, one after another); ``--jobs 2`` starts a worker
process per stage, which pays its own imports. Every stage uses one thread (``[teacher] threads = 1``), so two
jobs fit two cores. The outputs of both runs are compared (sha256 of every weights file): they must be equal.
On a machine other sessions keep busy, Linux's per-session fair share (``/proc/sys/kernel/sched_autogroup_enabled``)
gives this run's workers one session's slice between them, so the ratio there says little about an idle machine.

    .venv/bin/python benchmarks/pipeline_jobs.py --out benchmarks/results/pipeline_jobs.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
import tomllib
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RECIPE = """
[pipeline]
work_dir = "w"
seed = 0
[data]
synth = {{ subjects = {subjects}, images_per_subject = 6, size = 32 }}
fractions = [0.6, 0.2, 0.2]
[teacher]
model = "tiny_ocular"
input_size = 32
epochs = 2
batch_size = 8
threads = 1
[[compress]]
name = "layer-magnitude-2x"
prune = {{ method = "layer-magnitude", ratio = 2 }}
finetune_epochs = {epochs}
[[compress]]
name = "global-magnitude-2x"
prune = {{ method = "global-magnitude", ratio = 2 }}
finetune_epochs = {epochs}
[[compress]]
name = "layer-magnitude-4x"
prune = {{ method = "layer-magnitude", ratio = 4 }}
finetune_epochs = {epochs}
[[compress]]
name = "random-2x"
prune = {{ method = "random", ratio = 2 }}
finetune_epochs = {epochs}
"""


def _weights(work: Path) -> dict[str, str]:
    return {p.relative_to(work).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((work / "compress").rglob("*.safetensors"))}


def _autogroup() -> str | None:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=16, help="Synthetic subjects (6 images each, 32 px).")
    ap.add_argument("--finetune-epochs", type=int, default=2, help="Fine-tuning epochs of each compression stage.")
    ap.add_argument("--out", type=Path, default=None, help="Write the JSON here.")
    args = ap.parse_args()

    from toolchain.pipeline.config import parse
    from toolchain.pipeline.schedule import run
    from toolchain.pipeline.stages import build_stages

    tmp = Path(tempfile.mkdtemp(prefix="pipeline-jobs-"))
    try:
        cfg = parse(tomllib.loads(RECIPE.format(subjects=args.subjects, epochs=args.finetune_epochs)), base=tmp)
        template = tmp / "template"
        cfg.pipeline.work_dir = str(template)
        run(build_stages(cfg), template, only={"data", "train"})
        rows = []
        for jobs in (1, 2):
            work = tmp / f"jobs{jobs}"
            shutil.copytree(template, work)
            cfg.pipeline.work_dir = str(work)
            load_before = os.getloadavg()[0]
            t0 = time.perf_counter()
            reports = run(build_stages(cfg), work, only={"compress"}, jobs=jobs)
            wall_s = time.perf_counter() - t0
            ran = [r for r in reports if r.status == "ran"]
            assert len(ran) == 4, [(r.name, r.status) for r in reports]
            rows.append({"jobs": jobs, "wall_s": round(wall_s, 2), "stages": {r.name: round(r.seconds, 2) for r in ran},
                         "load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2),
                         "weights_sha256": _weights(work)})
        same = rows[0]["weights_sha256"] == rows[1]["weights_sha256"]
        ratio = rows[0]["wall_s"] / rows[1]["wall_s"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{'jobs':>4} {'wall s':>8} {'sum of stage s':>15} {'load before/after':>18}")
    for r in rows:
        print(f"{r['jobs']:>4} {r['wall_s']:>8.1f} {sum(r['stages'].values()):>15.1f} "
              f"{r['load_1min_before']:>8.2f} / {r['load_1min_after']:<8.2f}")
    print(f"speed-up --jobs 2 over --jobs 1: {ratio:.2f}x (one run each); outputs identical: {same}")
    doc = {"benchmark": "pipeline_jobs", "cpus": os.cpu_count(), "platform": platform.platform(),
           "python": platform.python_version(), "subjects": args.subjects, "finetune_epochs": args.finetune_epochs,
           "runs": rows, "speedup_jobs2_over_jobs1": round(ratio, 3), "outputs_identical": same,
           "sched_autogroup": _autogroup(),
           "note": "one run each, on a machine shared with other jobs (see the load averages)"}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    if not same:
        raise SystemExit("the --jobs 2 outputs differ from --jobs 1")


if __name__ == "__main__":
    main()
