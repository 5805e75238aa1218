"""`deploy report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from toolchain.cli import app
from toolchain.cli._common import MULTI_VALUE, ForceOpt, console, err_console, styled
from toolchain.policy import MIN_TIMED_ITERATIONS


MULTI_VALUE[("report",)] = frozenset({"--results", "-r", "--artifacts", "-a", "--bundles", "-b", "--metrics", "-m"})


@app.command("report")
def report(
    results: Annotated[list[Path], typer.Option("--results", "-r", help="Results stores / folders / files: several values (results/*) or repeated.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (report.md, report.html, *.csv, plots/).")] = Path("report"),
    artifacts: Annotated[Optional[list[Path]], typer.Option("--artifacts", "-a", help="Exported artifact folders (manifest.json searched recursively): several values or repeated.")] = None,
    bundles: Annotated[Optional[list[Path]], typer.Option("--bundles", "-b", help="Model bundle folders (model.json searched recursively): several values (runs/*/bundle) or repeated.")] = None,
    metrics: Annotated[Optional[list[Path]], typer.Option("--metrics", "-m", help="metrics.json files or folders from `deploy evaluate`: several values (eval/*) or repeated.")] = None,
    min_iterations: Annotated[int, typer.Option(help="Flag runs with fewer timed iterations.", min=1)] = MIN_TIMED_ITERATIONS,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write PNG and SVG figures.")] = True,
    flops: Annotated[bool, typer.Option("--flops/--no-flops", help="Count FLOPs on each bundle whose weights are in its folder (loads the model; seconds each).")] = True,
    force: ForceOpt = False,
) -> None:
    """Statistics, the paper-style table, checks and plots from raw results (Markdown, HTML, CSV)."""
    from toolchain.report.build import build_report, write_report

    from toolchain.fsutil import check_output_dir

    check_output_dir(out, "report", force)  # before reading every results file
    rep = build_report(results, artifacts or [], bundles or [], metrics or [], min_iterations=min_iterations,
                       with_flops=flops)
    files = write_report(rep, out, plots=plots, force=force)
    flagged = sum(1 for vw in rep.runs if any(f.level in ("warn", "fail") for f in vw.flags))
    for p in rep.problems:
        # the whole reason: a schema error's first line only says how many problems follow
        err_console.print(styled(("not used:", "yellow"), f" {p}"), soft_wrap=True)
    console.print(f"report of {len(rep.runs)} runs ({len(rep.rows)} device · runtime rows, {len(rep.variants)} variants, "
                  f"{flagged} runs flagged): {out / 'report.md'}, {out / 'report.html'} and {len(files) - 2} more files")
