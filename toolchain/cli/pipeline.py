"""`deploy pipeline run` and `deploy demo`: data -> train -> compress -> evaluate -> export -> bench -> plan -> report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from toolchain.cli import app
from toolchain.cli._common import console, err_console

pipeline_app = typer.Typer(help="Run a whole experiment from a pipeline.toml, skipping what is already done.",
                           no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")


def _status_table(reports):
    from rich.table import Table

    t = Table(title="Pipeline stages", title_justify="left")
    for c in ("stage", "kind", "status", "seconds", "output"):
        t.add_column(c)
    colour = {"ran": "green", "cached": "cyan", "failed": "red", "blocked": "magenta", "would run": "yellow",
              "not selected": "dim"}
    for r in reports:
        t.add_row(r.name, r.kind, Text(r.status, style=colour.get(r.status, "white")),
                  f"{r.seconds:.1f}" if r.seconds else "", str(r.path))
    return t


def _run(config, dry_run: bool, only: list[str] | None, force: list[str] | None, ci: bool, jobs: int | None = None,
         executor: str | None = None) -> list:
    """Run a validated :class:`~toolchain.pipeline.config.PipelineConfig`."""
    from toolchain.pipeline import executors
    from toolchain.pipeline.cluster import check_stage_names
    from toolchain.pipeline.schedule import run
    from toolchain.pipeline.stages import build_stages

    work = Path(config.pipeline.work_dir)
    name = executor or ("inline" if (jobs or 1) == 1 else "local")
    ex = executors.make(name, work, config.cluster)

    def say(msg: str) -> None:
        err_console.log(msg)

    if dry_run and config.data is not None and config.data.path is not None and not Path(config.data.path).is_dir():
        err_console.print(Text.assemble(("warning:", "yellow"), f" [data] path {config.data.path} does not exist: "
                                        "the plan below is what would run once it does (the data stage and all "
                                        "after it show as 'would run')"), soft_wrap=True)
    stages = build_stages(config, missing_data_ok=dry_run)
    check_stage_names(config.cluster, stages)
    try:
        reports = run(stages, work, only=set(only) if only else None, force=set(force or []),
                      dry_run=dry_run, progress=say, jobs=jobs, executor=ex)
    except BaseException as e:
        reports = getattr(e, "reports", None)
        if reports:
            (err_console if ci else console).print(_status_table(reports))
        if ci:
            from toolchain import jsonio

            print(jsonio.dumps(_summary(reports or [], work, failed=str(e)), indent=2))
        raise
    if ci:
        from toolchain import jsonio

        print(jsonio.dumps(_summary(reports, work), indent=2))
    else:
        console.print(_status_table(reports))
    return reports


def _summary(reports, work: Path, failed: str | None = None) -> dict:
    """Machine-readable summary for CI (`--ci`): every stage, every artifact with its parity."""
    stages = [{"name": r.name, "kind": r.kind, "status": r.status, "path": str(r.path), "seconds": round(r.seconds, 2),
               "summary": r.summary, "error": r.error} for r in reports]
    artifacts = [a for r in reports if r.kind == "export" for a in r.summary.get("artifacts", [])]
    return {"ok": failed is None and all(a["parity"] != "failed" for a in artifacts), "error": failed,
            "work_dir": str(work), "stages": stages, "artifacts": artifacts,
            "parity_failed": [a["artifact"] for a in artifacts if a["parity"] == "failed"]}


@pipeline_app.command("run")
def run_cmd(
    file: Annotated[Path, typer.Argument(help="pipeline.toml (see examples/pipeline.toml).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the stages and what is cached; run nothing.")] = False,
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Run only this stage kind or name (repeatable); its inputs must be done.")] = None,
    force: Annotated[Optional[list[str]], typer.Option("--force", help="Rerun this stage kind or name even if done (repeatable).")] = None,
    ci: Annotated[bool, typer.Option("--ci", help="Print a machine-readable JSON summary on stdout; exit 1 on any parity failure.")] = False,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Run up to N ready stages (all inputs done) at once; a failed stage stops only its dependants. Default: 1 (with --executor slurm: every ready stage).")] = None,
    scale: Annotated[str, typer.Option("--scale", help="full (the file as written) or tiny (CI size: synthetic data, "
                                       "64 px, 1 epoch per training, under WORK-tiny; architectures, methods, ratios "
                                       "and targets as written; toolchain/pipeline/scale.py).")] = "full",
    executor: Annotated[Optional[str], typer.Option("--executor", help="Where stages run: inline (this process; default for --jobs 1), local (a subprocess per stage; default for --jobs >1), slurm (a Slurm job per stage via submitit, resources from the recipe's cluster section), local-submitit (submitit's local executor, for testing the Slurm path).")] = None,
) -> None:
    """Run the pipeline: every stage is keyed by a hash of its config and inputs, so reruns skip what is done.

    The whole file is validated first (types, names, values), --dry-run included: every problem in one error.
    With --jobs N, stages whose inputs are done run in parallel; --executor slurm sends each to Slurm (see README).
    """
    from toolchain.pipeline.config import load

    reports = _run(load(file, scale), dry_run, only, force, ci, jobs, executor)
    report = next((r for r in reports if r.kind == "report" and r.status in ("ran", "cached")), None)
    if report is not None and not ci:
        console.print(f"report: {report.path / 'report' / 'report.html'} (and report.md)")


@app.command("demo")
def demo(
    quick: Annotated[bool, typer.Option("--quick", help="A tiny teacher and data set: the whole path in a few minutes.")] = False,
    work: Annotated[Optional[Path], typer.Option("--work", help="Work folder (default: runs/demo or runs/demo-quick).")] = None,
    force: Annotated[Optional[list[str]], typer.Option("--force", help="Rerun this stage kind or name.")] = None,
) -> None:
    """The embedded demo, with no data set and no network: synthetic ocular data -> ResNet50 teacher ->
    layerwise magnitude pruning 8x and a distilled MobileNetV2 -> evaluation -> exports for the five iPhones/iPads
    and Android (parity-checked) -> host timings -> app plans -> report. Reruns skip finished stages."""
    import tomllib
    from importlib import resources

    from toolchain.pipeline.config import parse

    name = "demo_quick.toml" if quick else "demo.toml"
    cfg = parse(tomllib.loads((resources.files("toolchain.pipeline") / name).read_text()), source=name)
    cfg.pipeline.work_dir = str((work or Path(cfg.pipeline.work_dir)).resolve())
    reports = _run(cfg, False, None, force, False)
    report = next(r for r in reports if r.kind == "report")
    md = report.path / "report" / "report.md"
    evals = {r.name: r.summary.get("evaluations", {}) for r in reports if r.kind == "evaluate"}
    for stage, ev in evals.items():
        for what, m in ev.items():
            console.print(f"{stage:<32} {what:<44} EER {m['eer']:.2%}")
    console.print(f"\nreport: {md}\n        {report.path / 'report' / 'report.html'}")
