"""`deploy bench host` (the device runs, `deploy bench ios|android|farm`, are in bench_device.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolchain.bench.timing import TimingProtocol
from toolchain.cli._common import console, err_console, progress, styled
from toolchain.cli.bench import bench_app

AllowParityFailedOpt = Annotated[bool, typer.Option(
    "--allow-parity-failed", help="Time an artifact whose export parity failed (refused otherwise; warned about).")]

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Results store folder.")]


@bench_app.command("host")
def host(
    targets: Annotated[list[Path], typer.Argument(help="Exported artifact folders (manifest.json) and/or model bundles (model.json).")],
    warmup: Annotated[int, typer.Option(help="Untimed runs after the first inference.")] = TimingProtocol.warmup,
    iterations: Annotated[int, typer.Option(help="Timed runs.")] = TimingProtocol.iterations,
    threads: Annotated[int, typer.Option(help="Runtime threads (ONNX Runtime intra-op, LiteRT num_threads, torch).")] = TimingProtocol.threads,
    cooldown_ms: Annotated[int, typer.Option("--cooldown-ms", help="Pause between timed runs (ms).")] = TimingProtocol.cooldown_ms,
    allow_parity_failed: AllowParityFailedOpt = False,
    out: OutOpt = Path("results"),
) -> None:
    """Time feature extraction on this computer (ONNX Runtime, LiteRT, PyTorch eager; Core ML on macOS).

    Each artifact is checked as `deploy bench plan` checks it: its bytes against the manifest's sha256, its
    export parity, its file inside its folder.
    """
    from toolchain.bench.host import bench_host

    proto = TimingProtocol(warmup, iterations, threads, cooldown_ms)
    with progress() as bar:
        tasks: dict[str, int] = {}

        def on(phase: str, done: int, total: int, info) -> None:
            name = info["target"]
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=1 + warmup + iterations, status="")
            step = {"load": 0, "warmup": 1, "timed": 1 + warmup}[phase] + done
            bar.update(tasks[name], completed=step, status=phase)

        outcomes = bench_host(targets, proto, out, progress=on, allow_parity_failed=allow_parity_failed)
    failed = timed = 0
    for o in outcomes:
        for w in o.warnings:
            err_console.print(styled(("warning:", "yellow"), f" {w}"), soft_wrap=True)
    for o in outcomes:
        if o.skipped:  # one line each; the others are still timed
            why = o.skipped.splitlines()[0]
            why = why if why.startswith(f"{o.target.name}:") else f"{o.target.name}: {why}"
            err_console.print(styled(("skipped", "yellow"), f" {why}"), soft_wrap=True)
            continue
        if o.error:
            failed += 1
            err_console.print(styled((f"{o.target.name}:", "red"), f" {o.error}"), soft_wrap=True)
            continue
        r = o.run.result
        lat = sorted(r["latency_ns"])
        med = (lat[(len(lat) - 1) // 2] + lat[len(lat) // 2]) / 2e6 if lat else float("nan")
        console.print(f"{o.target.name} [{r['runtime']['name']} x{threads}]: {r['status']}, median {med:.3f} ms over "
                      f"{len(lat)} runs, load {r['load_ns'] / 1e6:.1f} ms -> {o.stored.path or o.stored.message}")
        timed += 1
    if timed:
        console.print(f"results: {out} (deploy report --results {out} ...)")
    if failed or not timed:
        if not timed and not failed:
            err_console.print(styled(("error:", "bold red"), " nothing could be timed on this machine"), soft_wrap=True)
        raise typer.Exit(2)
