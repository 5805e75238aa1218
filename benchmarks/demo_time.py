#!/usr/bin/env python
"""How long `deploy demo` takes, stage by stage: wall and CPU seconds, the load around each stage, the EERs.

Runs the embedded demo (``--quick``: the tiny one) in a fresh work folder, in this process, exactly as ``deploy demo``
does (inline executor, one stage at a time), timing each stage's ``execute`` with ``time.perf_counter`` and
``resource.getrusage`` (this process and its children: CPU seconds are what a busy machine cannot inflate much,
wall seconds what a user waits). The 1-minute load average is recorded before and after every stage: timings taken
while other jobs run are several times the quiet ones, and say so. Prints a table and writes JSON.

    .venv/bin/python benchmarks/demo_time.py                  # the full demo (issue 28: <= 4 min on an idle 2-core machine)
    .venv/bin/python benchmarks/demo_time.py --quick          # deploy demo --quick (< 60 s idle)
    .venv/bin/python benchmarks/demo_time.py --work /tmp/d    # keep the work folder (must not exist: a fresh run)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="time `deploy demo --quick` instead of the full demo")
    ap.add_argument("--work", type=Path, help="work folder (must not exist; default: a temporary one)")
    ap.add_argument("--out", type=Path, help="JSON file (default: benchmarks/results/demo_time[_quick].json)")
    args = ap.parse_args()
    out = args.out or REPO / "benchmarks" / "results" / f"demo_time{'_quick' if args.quick else ''}.json"
    if args.work is not None and args.work.exists():
        ap.error(f"--work {args.work} exists: give a new folder (a cached stage would time nothing)")
    from toolchain.cli._waitpolicy import sleep_when_busy

    policy_set = sleep_when_busy()  # as `deploy` does, before torch loads
    t_start, cpu_start, load_start = time.perf_counter(), _cpu(), os.getloadavg()
    from toolchain.pipeline import executors

    rows: list[dict] = []
    real = executors.execute

    def timed(task, progress):
        w0, c0, l0 = time.perf_counter(), _cpu(), os.getloadavg()[0]
        try:
            return real(task, progress)
        finally:
            rows.append({"stage": task.name, "kind": task.kind, "wall_s": round(time.perf_counter() - w0, 2),
                         "cpu_s": round(_cpu() - c0, 2), "load1_before": round(l0, 2),
                         "load1_after": round(os.getloadavg()[0], 2)})
            print(f"  {task.name:<36} {rows[-1]['wall_s']:8.1f} s wall {rows[-1]['cpu_s']:8.1f} s CPU  "
                  f"load {l0:.1f} -> {rows[-1]['load1_after']:.1f}", file=sys.stderr, flush=True)

    executors.execute = timed
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp) / "demo"
        from typer.testing import CliRunner

        from toolchain.cli import app

        r = CliRunner().invoke(app, ["demo", *(["--quick"] if args.quick else []), "--work", str(work)])
        if r.exit_code != 0:
            print(r.output[-3000:], file=sys.stderr)
            raise SystemExit(f"deploy demo failed (exit {r.exit_code})")
        eers = [line.split() for line in r.output.splitlines() if " EER " in line]
    doc = {"command": "deploy demo" + (" --quick" if args.quick else ""), "wall_s": round(time.perf_counter() - t_start, 1),
           "cpu_s": round(_cpu() - cpu_start, 1), "load_before": load_start, "load_after": os.getloadavg(),
           "cpus": os.cpu_count(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "policy_set_by_tool": policy_set,
           "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
           "stages": rows, "eer": {f"{e[0]} {e[1]}": e[-1] for e in eers}}
    print(f"\n{'stage':<36} {'wall s':>8} {'CPU s':>8}  load 1-min")
    for row in rows:
        print(f"{row['stage']:<36} {row['wall_s']:8.1f} {row['cpu_s']:8.1f}  {row['load1_before']:.1f} -> {row['load1_after']:.1f}")
    print(f"{'total (process)':<36} {doc['wall_s']:8.1f} {doc['cpu_s']:8.1f}  {load_start[0]:.1f} -> {doc['load_after'][0]:.1f}")
    for k, v in doc["eer"].items():
        print(f"EER {v:>8}  {k}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
