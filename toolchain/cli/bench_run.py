"""`deploy bench host|ios|android|farm`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from toolchain.bench.timing import TimingProtocol
from toolchain.cli._common import console, err_console, progress, styled
from toolchain.cli.bench import bench_app

AllowParityFailedOpt = Annotated[bool, typer.Option(
    "--allow-parity-failed", help="Time an artifact whose export parity failed (refused otherwise; warned about).")]

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Results store folder.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for every run of the plan.")]


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
    failed = 0
    for o in outcomes:
        for w in o.warnings:
            err_console.print(styled(("warning:", "yellow"), f" {w}"), soft_wrap=True)
    for o in outcomes:
        if o.error:
            failed += 1
            err_console.print(styled((f"{o.target.name}:", "red"), f" {o.error}"), soft_wrap=True)
            continue
        r = o.run.result
        lat = sorted(r["latency_ns"])
        med = (lat[(len(lat) - 1) // 2] + lat[len(lat) // 2]) / 2e6 if lat else float("nan")
        console.print(f"{o.target.name} [{r['runtime']['name']} x{threads}]: {r['status']}, median {med:.3f} ms over "
                      f"{len(lat)} runs, load {r['load_ns'] / 1e6:.1f} ms -> {o.stored.path or o.stored.message}")
    if failed:
        raise typer.Exit(2)


def _plan_progress(what: str):
    def on(got: int, want: int) -> None:
        console.print(f"{what}: {got}/{want} results collected")
    return on


@bench_app.command("ios")
def ios(
    plan: Annotated[Path, typer.Option("--plan", help="Plan folder from `deploy bench plan`.")],
    app_path: Annotated[Path, typer.Option("--app", help="The harness built with this plan (.app or .ipa).")],
    bundle_id: Annotated[str, typer.Option("--bundle-id")] = "org.oculardeploy.bench",
    udid: Annotated[Optional[str], typer.Option(help="Device UDID.")] = None,
    via: Annotated[Optional[str], typer.Option(help="devicectl (macOS) or house-arrest (pymobiledevice3).")] = None,
    out: OutOpt = Path("results"),
    timeout: TimeoutOpt = 1800.0,
) -> None:
    """Install the iOS harness, launch it with the plan and collect its results over USB."""
    from toolchain.bench.ios import bench_ios
    from toolchain.bench.store import ResultStore
    from toolchain.cli.collect import print_outcomes

    store = ResultStore(out)
    outcomes = bench_ios(plan, app_path, store, bundle_id=bundle_id, udid=udid, via=via, timeout_s=timeout,
                         progress=_plan_progress("iOS"))
    print_outcomes(outcomes, store.root)


@bench_app.command("android")
def android(
    plan: Annotated[Path, typer.Option("--plan", help="Plan folder from `deploy bench plan`.")],
    package: Annotated[str, typer.Option("--package")] = "org.oculardeploy.bench",
    activity: Annotated[str, typer.Option("--activity")] = ".MainActivity",
    serial: Annotated[Optional[str], typer.Option(help="adb device serial.")] = None,
    out: OutOpt = Path("results"),
    timeout: TimeoutOpt = 1800.0,
) -> None:
    """Push the plan, start the Android harness with it and wait for every result (adb)."""
    from toolchain.bench.android import Adb, bench_android
    from toolchain.bench.store import ResultStore
    from toolchain.cli.collect import print_outcomes

    store = ResultStore(out)
    outcomes = bench_android(plan, store, package=package, activity=activity, adb=Adb(serial=serial),
                             timeout_s=timeout, progress=_plan_progress("Android"))
    print_outcomes(outcomes, store.root)


@bench_app.command("farm")
def farm(
    project_arn: Annotated[str, typer.Option("--project-arn", help="Device Farm project ARN.")],
    platform: Annotated[str, typer.Option(help="ios (XCTEST) or android (INSTRUMENTATION).")],
    app_path: Annotated[Path, typer.Option("--app", help=".ipa or .apk of the harness.")],
    test_package: Annotated[Path, typer.Option("--test-package", help="Zipped XCTest runner or instrumentation .apk.")],
    device: Annotated[Optional[list[str]], typer.Option("--device", help="Catalog device keys (iphonexr, ipad7, ... or all).")] = None,
    farm_device: Annotated[Optional[list[str]], typer.Option("--farm-device", help="Also any Device Farm device whose name contains this.")] = None,
    max_devices: Annotated[Optional[int], typer.Option(help="At most this many devices.")] = None,
    name: Annotated[str, typer.Option(help="Run name.")] = "ocular-bench",
    region: Annotated[str, typer.Option()] = "us-west-2",
    out: OutOpt = Path("results"),
) -> None:
    """Run the harness on many devices at once on AWS Device Farm and collect the results."""
    from toolchain.bench import farm as farm_mod
    from toolchain.bench.store import ResultStore
    from toolchain.cli.collect import print_outcomes

    store = ResultStore(out)

    def on(stage: str, info: dict) -> None:
        if stage == "run":
            c = info.get("counters") or {}
            console.print(f"run {info.get('status')}: {info.get('completedJobs', 0)}/{info.get('totalJobs', '?')} jobs, "
                          f"{c.get('passed', 0)} passed, {c.get('failed', 0) + c.get('errored', 0)} failed")
        else:
            console.print(f"{stage}: {info}")

    run, outcomes = farm_mod.bench_farm(farm_mod.client(region), project_arn, platform, app_path, test_package, store,
                                        device or [], farm_device or [], name=name, max_devices=max_devices, progress=on)
    console.print(f"run {run['arn']} finished: {run.get('result')}")
    print_outcomes(outcomes, store.root)
