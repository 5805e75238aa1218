"""`deploy bench plan`: a run plan + the folder the harness apps bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from toolchain.bench.timing import TimingProtocol
from toolchain.cli._common import DEVICE_KEYS, ForceOpt, console, err_console, styled
from toolchain.cli.bench import bench_app
from toolchain.cli.bench_run import AllowParityFailedOpt


@bench_app.command("plan")
def plan(
    artifacts: Annotated[list[Path], typer.Argument(help="Artifact folders written by `deploy export` (each with manifest.json).")],
    device: Annotated[str, typer.Option("--device", "-d", help=f"Catalog key: {DEVICE_KEYS}.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Plan folder to write (replaced as a whole), e.g. ios_harness/BenchPlan "
                                                          "or android_harness/app/src/main/assets/bench_plan.")],
    compute_units: Annotated[Optional[str], typer.Option("--compute-units", "-u", help="Comma list: all, cpu, gpu, ane (iOS; default all); cpu, gpu, nnapi (Android; default cpu).")] = None,
    warmup: Annotated[int, typer.Option(help="Untimed runs before timing.")] = TimingProtocol.warmup,
    iterations: Annotated[int, typer.Option(help="Timed runs; each is one latency_ns sample.")] = TimingProtocol.iterations,
    input_source: Annotated[Literal["image", "random"], typer.Option("--input", help="image (the artifact's fixed input) or random (seeded).")] = "image",
    seed: Annotated[Optional[int], typer.Option(help="Seed of random inputs (--input random).")] = None,
    cooldown_ms: Annotated[int, typer.Option("--cooldown-ms", help="Pause between runs of the plan, in ms.")] = TimingProtocol.cooldown_ms,
    threads: Annotated[Optional[int], typer.Option(help="LiteRT CPU threads (Android; default 4).")] = None,
    plan_id: Annotated[Optional[str], typer.Option("--plan-id", help="Default: DEVICE-YYYYmmddTHHMMSS.")] = None,
    allow_parity_failed: AllowParityFailedOpt = False,
    force: ForceOpt = False,
) -> None:
    """Check artifacts against the device and write plan.json + artifacts + fixed inputs for the apps."""
    from toolchain.bench.plan import PlanRequest, make_plan

    req = PlanRequest(artifact_dirs=list(artifacts), device=device, out=out,
                      compute_units=[c for c in compute_units.split(",") if c.strip()] if compute_units else None, warmup=warmup,
                      iterations=iterations, input_source=input_source, input_seed=seed, cooldown_ms=cooldown_ms,
                      threads=threads, plan_id=plan_id, allow_parity_failed=allow_parity_failed, force=force)
    path, p = make_plan(req, progress=lambda msg: err_console.print(msg))
    for w in p.get("warnings", []):
        err_console.print(styled(("warning:", "yellow"), f" {w}"))
    console.print(f"wrote {path}: plan {p['plan_id']}, {len(p['runs'])} runs on {p['device']} "
                  f"({p['protocol']['warmup']} warm-up + {p['protocol']['iterations']} timed each)")
    where = ("drag it into Xcode as a folder reference named BenchPlan (ios_harness/README.md)"
             if p["platform"] == "ios" else "put it in android_harness/app/src/main/assets/bench_plan or adb push it "
             "(android_harness/README.md)")
    console.print(f"next: {where}")
