"""`deploy evaluate`: verification accuracy of a bundle or an exported artifact, or several overlaid."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.text import Text

from toolchain.cli import app
from toolchain.cli._common import ForceOpt, console, progress, styled


@app.command("evaluate")
def evaluate(
    models: Annotated[list[Path], typer.Argument(
        help="A model bundle folder (model.json) or an exported artifact folder (manifest.json: ONNX, TFLite, Core ML). "
             "With --compare: two or more of those, or finished evaluation folders / metrics.json files.",
        show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: metrics.json, scores.npz, roc.png, det.png, "
                                                          "scores_hist.png (with --compare: compare_*.png, compare.json).")],
    data: Annotated[Optional[Path], typer.Option("--data", help="Data set folder the protocol's image paths are relative to.")] = None,
    protocol: Annotated[Optional[Path], typer.Option("--protocol", help="Verification protocol file (see `deploy data`).")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Overlay several models on one ROC and one DET.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")] = 32,
    far: Annotated[Optional[list[float]], typer.Option("--far", help="FAR target for TAR at FAR (repeatable). "
                                                                     "Default: 1e-2, 1e-3, 1e-4.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="PyTorch CPU threads (default: PyTorch's).")] = None,
    closed_set: Annotated[Optional[Path], typer.Option("--closed-set", help="closed-set.json for top-1/top-5 "
                          "identification accuracy (default: the one beside --protocol, written by `deploy data split "
                          "--closed-set K`).")] = None,
    force: ForceOpt = False,
    allow_parity_failed: Annotated[bool, typer.Option(
        "--allow-parity-failed", help="Evaluate an artifact whose export parity failed (refused otherwise).")] = False,
) -> None:
    """Measure verification accuracy (EER, TAR at FAR, AUC, d') of a model, before or after export."""
    from toolchain.errors import UsageError
    from toolchain.evaluate import run
    from toolchain.evaluate.metrics import DEFAULT_FARS

    fars = tuple(far) if far else DEFAULT_FARS
    if threads:
        import torch

        torch.set_num_threads(threads)
    if compare:
        with progress() as bar:
            tasks: list[Any] = []

            def tick(stage: str, done: int, total: int, info) -> None:
                if not tasks or done <= bar.tasks[-1].completed:  # counts only grow within one model
                    tasks.append(bar.add_task(f"features ({len(tasks) + 1})", total=total, status=""))
                bar.update(tasks[-1], completed=done, total=total, status=stage)

            result = run.compare(models, out, data, protocol, batch_size, fars,
                                 progress=lambda m: console.print(m), extract_progress=tick, force=force,
                                 allow_parity_failed=allow_parity_failed)
        _print_compare(result.summary)
        console.print(f"wrote {out / 'compare_roc.png'}, {out / 'compare_det.png'}, {out / 'compare.json'}")
        return
    if len(models) != 1:
        raise UsageError(f"give one MODEL (got {len(models)}); to overlay several, add --compare")
    if data is None or protocol is None:
        raise UsageError("--data and --protocol are required to evaluate a model")
    with progress() as bar:
        task = bar.add_task(f"features of {models[0].name}", total=None, status="")

        def tick(stage: str, done: int, total: int, info) -> None:
            bar.update(task, completed=done, total=total, status=stage)

        ev = run.evaluate_model(models[0], data, protocol, out, batch_size, fars, progress=tick, force=force,
                                allow_parity_failed=allow_parity_failed, closed_set=closed_set)
    for w in ev.document["model"].get("warnings", []):
        console.print(styled(("warning:", "yellow"), f" {w}"))
    _print_metrics(ev.document)
    console.print(f"wrote {ev.out / run.METRICS_FILE} and plots in {ev.out}")


def _print_metrics(doc: dict[str, Any]) -> None:
    from rich.table import Table

    from toolchain.evaluate.run import protocol_label

    m, d, model = doc["metrics"], doc["data"], doc["model"]
    console.print(f"{model['name']} ({model['kind']}, {model.get('format')} {model.get('precision')}, "
                  f"{model['runtime']}): {d['num_images']} images, {d['num_genuine']} genuine / {d['num_impostor']} "
                  f"impostor pairs, {doc['timing']['images_per_second']} images/s")
    console.print(f"verification protocol: {protocol_label(doc)}")
    t = Table(show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("note")
    t.add_row("EER", f"{m['eer'] * 100:.3f} %")
    t.add_row("EER threshold", f"{m['eer_threshold']:.4f}")
    for key, p in m["operating_points"].items():
        note = Text("" if p["supported"] else f"unsupported: needs {p['min_impostor_pairs']} impostor pairs", style="yellow")
        t.add_row(f"TAR @ FAR {key}", f"{p['tar'] * 100:.2f} %", note)
    t.add_row("ROC AUC", f"{m['auc']:.5f}")
    t.add_row("d'", "undefined" if m["d_prime"] is None else f"{m['d_prime']:.3f}")
    t.add_row("genuine mean ± std", f"{m['genuine']['mean']:.4f} ± {m['genuine']['std']:.4f}")
    t.add_row("impostor mean ± std", f"{m['impostor']['mean']:.4f} ± {m['impostor']['std']:.4f}")
    cs = doc.get("closed_set")
    if cs:
        how = "classification head" if cs["method"] == "head" else "nearest class mean"
        t.add_row("closed-set top-1", f"{cs['top1'] * 100:.2f} %", f"{cs['images']} images, {cs['classes']} classes, {how}")
        t.add_row("closed-set top-5", f"{cs['top5'] * 100:.2f} %", cs.get("note", ""))
    console.print(t)
    for w in m["warnings"]:
        console.print(styled(("warning:", "yellow"), f" {w}"))


def _print_compare(summary: dict[str, Any]) -> None:
    from rich.table import Table

    rows = summary["models"]
    keys = list(rows[0]["tar_at_far"]) if rows else []
    t = Table(show_header=True, header_style="bold")
    for col in ["model", "runtime", "EER %", *[f"TAR@{k} %" for k in keys], "AUC", "d'"]:
        t.add_column(col, justify="left" if col in ("model", "runtime") else "right")
    for r in rows:
        dp = r["d_prime"]
        t.add_row(r["label"], r["model"].get("runtime", ""), f"{r['eer'] * 100:.3f}",
                  *[_pct(r['tar_at_far'].get(k)) for k in keys], f"{r['auc']:.5f}",
                  "—" if dp is None else f"{dp:.3f}")
    console.print(t)
    for w in summary["warnings"]:
        console.print(styled(("warning:", "yellow"), f" {w}"))


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.2f}"
