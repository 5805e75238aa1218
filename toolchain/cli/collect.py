"""`deploy collect ios|android|farm|dir` and `deploy results list|show|rm`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from toolchain.bench.apps import APP_ID
from toolchain.cli import app
from toolchain.cli._common import console, err_console, styled

collect_app = typer.Typer(help="Fetch results files from devices into a results store (validated, de-duplicated).",
                          no_args_is_help=True)
results_app = typer.Typer(help="Inspect a results store: list, show, remove runs.", no_args_is_help=True)
app.add_typer(collect_app, name="collect")
app.add_typer(results_app, name="results")

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Results store folder.")]
StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="Results store folder.")]


PlanOpt = Annotated[Optional[Path], typer.Option(
    "--plan", help="The plan (folder or plan.json) whose runs are expected: exit 1 naming any run without a results file.")]
LaunchOpt = Annotated[Optional[str], typer.Option(
    "--launch-id", help="Count only results of this launch (what `deploy bench` printed); others are stale.")]


def print_outcomes(outcomes: list, store_root: Path) -> bool:
    """One line per file that was not simply stored, and a summary. True when a file was rejected or conflicted."""
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
        if o.status in ("rejected", "conflict"):
            err_console.print(styled((f"{o.status}:", "red"), f" {o.message}"), soft_wrap=True)
        elif o.status == "duplicate":
            console.print(styled((f"duplicate: {o.message}", "dim")))
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no results files found"
    console.print(f"{summary} -> {store_root}")
    return bool(counts.get("rejected") or counts.get("conflict"))


def print_plan_report(report) -> bool:
    """Found/expected, stale and foreign results, and every missing run by name. True when runs are missing."""
    exp = report.expectation
    what = f"plan {exp.plan_id}" if exp.plan_id else "this run"
    launch = f" (launch {exp.launch_id})" if exp.launch_id else ""
    console.print(f"{what}{launch}: {len(report.found)} of {report.expected} expected results")
    if report.stale:
        console.print(styled((f"{len(report.stale)} result(s) of plan {exp.plan_id} from earlier launches stored, "
                              "not counted", "dim")))
    if report.foreign:
        err_console.print(styled(("warning:", "yellow"),
                                 f" this launch wrote results of another plan ({', '.join(report.foreign[:3])}"
                                 f"{'...' if len(report.foreign) > 3 else ''}): the app runs a plan other than "
                                 f"{exp.plan_id}; rebuild or re-push it with this plan"), soft_wrap=True)
    missing = report.missing
    if missing:
        why = " after the timeout" if report.timed_out else ""
        err_console.print(styled((f"missing{why}:", "red"),
                                 f" no results file for {len(missing)} run(s): {', '.join(missing)}"), soft_wrap=True)
        if report.problem:
            err_console.print(styled((f"last problem: {report.problem}", "dim")), soft_wrap=True)
    failures = getattr(report, "failures", [])
    for f in failures:
        err_console.print(styled(("failed:", "red"), f" {f}"), soft_wrap=True)
    if getattr(report, "retries", 0):
        console.print(styled((f"{report.retries} transient error(s) (device offline, stream cut, throttled) "
                              "were retried on the way", "dim")))
    return bool(missing or failures)


def finish(outcomes: list, store_root: Path, report=None) -> None:
    """Print outcomes (and the plan report); exit 1 when a file was rejected or an expected run has no file."""
    bad = print_outcomes(outcomes, store_root)
    if report is not None:
        bad = print_plan_report(report) or bad
    if bad:
        raise typer.Exit(1)


def load_plan_arg(path: Path | None) -> dict | None:
    from toolchain.bench.schema import load_plan

    if path is None:
        return None
    return load_plan(path / "plan.json" if path.is_dir() else path)


def _collect_with(transport, store, plan: Path | None, launch_id: str | None) -> None:
    from toolchain.bench.wait import expect, match
    from toolchain.bench.transport import collect

    with transport:
        collected = collect(transport, store)
        groups = transport.groups()
    plan_obj = load_plan_arg(plan)
    report = match(expect(plan_obj, launch_id), collected, groups) if plan_obj is not None else None
    finish([c.outcome for c in collected], store.root, report)


@collect_app.command("dir")
def collect_dir(
    paths: Annotated[list[Path], typer.Argument(help="Folders (searched recursively for *.json) or files, copied by hand, AirDrop, Finder.")],
    out: OutOpt = Path("results"),
) -> None:
    """Add results files from local folders or files."""
    from toolchain.bench.store import ResultStore, find_results_files
    from toolchain.errors import CollectError

    store = ResultStore(out)
    files: list[Path] = []
    skipped: list[str] = []
    for p in paths:
        if p.is_dir():
            found, passed_over = find_results_files(p)
            files += found
            skipped += passed_over
        elif p.is_file():
            files.append(p)
        else:
            raise CollectError(f"{p}: no such file or folder")
    for line in skipped:
        console.print(styled(("skipped", "yellow"), f" {line}"))
    with store.batch():  # one lock and one listing for all the files: linear in their number
        outcomes = [store.add_file(f) for f in files]
    finish(outcomes, store.root)


@collect_app.command("ios")
def collect_ios(
    bundle_id: Annotated[str, typer.Option("--bundle-id", help="The harness app's bundle identifier.")] = APP_ID,
    out: OutOpt = Path("results"),
    udid: Annotated[Optional[str], typer.Option(help="Device UDID (default: the one connected device).")] = None,
    via: Annotated[Optional[Literal["pymobiledevice3", "devicectl"]], typer.Option(help="pymobiledevice3 (any iOS, Linux or macOS) or devicectl (macOS, iOS 17+). Default: chosen per device, and said why.")] = None,
    plan: PlanOpt = None,
    launch_id: LaunchOpt = None,
) -> None:
    """Pull Documents/results/*.json from the iOS harness over USB."""
    from toolchain.bench import ios
    from toolchain.bench.store import ResultStore

    store = ResultStore(out)
    plan_obj = load_plan_arg(plan)
    name, why = ios.choose_via(udid, plan_obj["device"] if plan_obj else None, via)
    console.print(f"via {name}: {why}")
    _collect_with(ios.transport_for(bundle_id, udid, name), store, plan, launch_id)


@collect_app.command("android")
def collect_android(
    package: Annotated[str, typer.Option("--package", help="The harness app's package name.")] = APP_ID,
    out: OutOpt = Path("results"),
    serial: Annotated[Optional[str], typer.Option(help="adb device serial (default: the one connected device).")] = None,
    plan: PlanOpt = None,
    launch_id: LaunchOpt = None,
) -> None:
    """Pull the Android harness's results files over adb (its external files folder; run-as for debug builds)."""
    from toolchain.bench.android import Adb, AdbTransport
    from toolchain.bench.store import ResultStore

    store = ResultStore(out)
    _collect_with(AdbTransport(package, Adb(serial=serial)), store, plan, launch_id)


@collect_app.command("farm")
def collect_farm(
    run_arn: Annotated[str, typer.Option("--run-arn", help="The Device Farm run to fetch.")],
    out: OutOpt = Path("results"),
    region: Annotated[str, typer.Option(help="AWS region (Device Farm lives in us-west-2).")] = "us-west-2",
    plan: PlanOpt = None,
) -> None:
    """Download a Device Farm run's customer artifacts and extract the results files (exit 1 for a job without any)."""
    from toolchain.bench import farm
    from toolchain.bench.store import ResultStore

    store = ResultStore(out)
    report = farm.collect_farm(farm.client(region), run_arn, store, plan=load_plan_arg(plan))
    finish(report.outcomes, store.root, report)


@results_app.command("list")
def results_list(store: StoreOpt = Path("results"),
                 as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False) -> None:
    """List the runs in a store."""
    from rich.table import Table

    from toolchain.bench.store import ResultStore

    s = ResultStore(store)
    results, problems = s.load_all()
    if as_json:
        for r in results:
            console.print_json(json.dumps({k: r[k] for k in ("run_id", "status", "created_at", "artifact", "device")}))
    else:
        t = Table("run_id", "status", "device", "runtime", "artifact", "n", "median ms")
        for r in sorted(results, key=lambda r: r["created_at"]):
            lat = sorted(r["latency_ns"])
            med = f"{(lat[(len(lat) - 1) // 2] + lat[len(lat) // 2]) / 2e6:.3g}" if lat else "–"
            t.add_row(r["run_id"], r["status"], r["device"]["marketing_name"] or r["device"]["identifier"],
                      r["runtime"]["name"], r["artifact"]["name"], str(len(lat)), med)
        console.print(t)
        rej = s.rejected()
        console.print(f"{len(results)} runs in {s.root}" + (f"; {len(rej)} rejected files in {s.root / 'rejected'}" if rej else ""))
    for p in problems:
        err_console.print(styled(("invalid:", "red"), f" {p}"), soft_wrap=True)


@results_app.command("show")
def results_show(run_id: Annotated[str, typer.Argument(help="run_id (see `deploy results list`).")],
                 store: StoreOpt = Path("results")) -> None:
    """Print one run's results file."""
    from toolchain.bench.store import ResultStore

    console.print_json(json.dumps(ResultStore(store).get(run_id)))


@results_app.command("rm")
def results_rm(run_ids: Annotated[list[str], typer.Argument(help="run_id(s) to remove.")],
               store: StoreOpt = Path("results")) -> None:
    """Remove runs from a store."""
    from toolchain.bench.store import ResultStore

    s = ResultStore(store)
    for rid in run_ids:
        console.print(f"removed {s.remove(rid)}")
