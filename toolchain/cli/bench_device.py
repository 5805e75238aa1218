"""`deploy bench ios|android|farm`: launch a plan on devices and wait for exactly that launch's runs.

Each exits 1 when an expected run produced no results file (naming it) or a file was rejected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from toolchain.bench.apps import APP_ID, WAIT_TIMEOUT_S
from toolchain.cli._common import DEVICE_KEYS, console, err_console, styled
from toolchain.cli.bench import bench_app

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Results store folder.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for every run of the plan.")]
PlanDir = Annotated[Path, typer.Option("--plan", help="Plan folder from `deploy bench plan`.")]
LaunchOpt = Annotated[Optional[str], typer.Option("--launch-id", help="Default: a fresh one (UTC time + random hex).")]


def _progress(what: str):
    last = {"found": -1}

    def on(report) -> None:
        if len(report.found) != last["found"]:  # one line per change, not per poll
            last["found"] = len(report.found)
            console.print(f"{what}: {len(report.found)}/{report.expected} results of this launch")
    return on


@bench_app.command("ios")
def ios(
    plan: PlanDir,
    app_path: Annotated[Path, typer.Option("--app", help="The harness built with this plan (.app or .ipa).")],
    bundle_id: Annotated[str, typer.Option("--bundle-id", help="The harness app's bundle identifier (as built from ios_harness).")] = APP_ID,
    udid: Annotated[Optional[str], typer.Option(help="Device UDID.")] = None,
    via: Annotated[Optional[Literal["pymobiledevice3", "devicectl"]], typer.Option(help="pymobiledevice3 (any iOS) or devicectl (macOS, iOS 17+). Default: chosen per device, and said why.")] = None,
    launch_id: LaunchOpt = None,
    out: OutOpt = Path("results"),
    timeout: TimeoutOpt = WAIT_TIMEOUT_S,
) -> None:
    """Install the iOS harness, launch it with the plan and collect this launch's results over USB."""
    from toolchain.bench.ios import bench_ios
    from toolchain.bench.store import ResultStore
    from toolchain.cli.collect import finish

    store = ResultStore(out)
    report = bench_ios(plan, app_path, store, bundle_id=bundle_id, udid=udid, via=via, launch_id=launch_id,
                       timeout_s=timeout, progress=_progress("iOS"),
                       on_via=lambda name, why: console.print(f"via {name}: {why}"))
    finish(report.outcomes, store.root, report)


@bench_app.command("android")
def android(
    plan: PlanDir,
    package: Annotated[str, typer.Option("--package", help="The harness app's package name (as built from android_harness).")] = APP_ID,
    activity: Annotated[str, typer.Option("--activity", help="The activity `adb shell am start` launches.")] = ".MainActivity",
    apk: Annotated[Optional[Path], typer.Option("--apk", help="Install this harness APK first (adb install -r).")] = None,
    serial: Annotated[Optional[str], typer.Option(help="adb device serial.")] = None,
    launch_id: LaunchOpt = None,
    out: OutOpt = Path("results"),
    timeout: TimeoutOpt = WAIT_TIMEOUT_S,
) -> None:
    """Push the plan, start the Android harness on it and wait for this launch's results (adb)."""
    from toolchain.bench.android import Adb, bench_android
    from toolchain.bench.store import ResultStore
    from toolchain.cli.collect import finish

    store = ResultStore(out)
    report = bench_android(plan, store, package=package, activity=activity, adb=Adb(serial=serial), apk=apk,
                           launch_id=launch_id, timeout_s=timeout, progress=_progress("Android"))
    finish(report.outcomes, store.root, report)


@bench_app.command("farm")
def farm(
    project_arn: Annotated[str, typer.Option("--project-arn", help="Device Farm project ARN.")],
    platform: Annotated[Literal["ios", "android"], typer.Option(help="ios (XCTEST) or android (INSTRUMENTATION).")],
    app_path: Annotated[Path, typer.Option("--app", help=".ipa or .apk of the harness.")],
    test_package: Annotated[Path, typer.Option("--test-package", help="Zipped XCTest runner or instrumentation .apk.")],
    plan: Annotated[Optional[Path], typer.Option("--plan", help="The plan bundled in the app: every run of it is expected from every device (without it: at least one results file per device).")] = None,
    device: Annotated[Optional[list[str]], typer.Option("--device", help=f"Catalog device keys ({DEVICE_KEYS} or all).")] = None,
    farm_device: Annotated[Optional[list[str]], typer.Option("--farm-device", help="Also any Device Farm device whose name contains this.")] = None,
    max_devices: Annotated[Optional[int], typer.Option(help="At most this many devices.")] = None,
    name: Annotated[str, typer.Option(help="Run name.")] = "ocular-bench",
    region: Annotated[str, typer.Option(help="AWS region (Device Farm lives in us-west-2).")] = "us-west-2",
    out: OutOpt = Path("results"),
    timeout: TimeoutOpt = 4 * 3600.0,
) -> None:
    """Run the harness on many devices at once on AWS Device Farm and collect the results."""
    from toolchain.bench import farm as farm_mod
    from toolchain.bench.store import ResultStore
    from toolchain.cli.collect import finish, load_plan_arg

    store = ResultStore(out)

    def on(stage: str, info: dict) -> None:
        if stage == "run":
            c = info.get("counters") or {}
            console.print(f"run {info.get('status')}: {info.get('completedJobs', 0)}/{info.get('totalJobs', '?')} jobs, "
                          f"{c.get('passed', 0)} passed, {c.get('failed', 0) + c.get('errored', 0)} failed; "
                          f"{info.get('found', 0)}/{info.get('expected', '?')} results")
        elif stage == "pool" and info.get("skipped"):
            for why in info["skipped"]:
                err_console.print(styled(("not in the pool:", "yellow"), f" {why}"))
        else:
            console.print(f"{stage}: {info}")

    run, report = farm_mod.bench_farm(farm_mod.client(region), project_arn, platform, app_path, test_package, store,
                                      device or [], farm_device or [], plan=load_plan_arg(plan), name=name,
                                      max_devices=max_devices, timeout_s=timeout, progress=on)
    console.print(f"run {run['arn']} finished: {run.get('result')}")
    finish(report.outcomes, store.root, report)
