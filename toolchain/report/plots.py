"""The report's figures, each written as PNG and SVG (matplotlib, Agg backend, no display).

- ``latency_per_device``: median latency per device · runtime and variant, with the bootstrap CI.
- ``latency_distributions``: every cell's raw samples as box plots.
- ``eer_vs_latency``: accuracy against speed, one colour per device · runtime, its Pareto front joined.
- ``eer_vs_size``: accuracy against artifact size, the Pareto front marked.

- ``roc`` and ``det``: every evaluated variant's curves on one ROC and one DET, drawn by ``deploy evaluate``'s own
  :mod:`toolchain.evaluate.plots` from the ``scores.npz`` beside each metrics.json (PNG only).

A figure that has no data (no metrics were given, say) is skipped with the reason. Titles live in the page (the
caption / heading), never also inside the image: each figure is titled once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolchain.report.stats import pareto_front

if TYPE_CHECKING:  # pragma: no cover
    from toolchain.report.model import Report

MAX_BOXES = 40


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "toolchain-report", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _save(fig, folder: Path, name: str) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    png, svg = folder / f"{name}.png", folder / f"{name}.svg"
    fig.savefig(png, dpi=110, bbox_inches="tight")
    fig.savefig(svg, bbox_inches="tight", metadata={"Date": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return {"png": f"{folder.name}/{png.name}", "svg": f"{folder.name}/{svg.name}"}


def latency_per_device(report: "Report", folder: Path) -> dict[str, Any]:
    """One bar per measured cell, grouped by device · runtime, coloured by variant; log axis for wide ranges."""
    plt = _plt()
    import numpy as np

    colours = {v.label: plt.cm.tab10(i % 10) for i, v in enumerate(report.variants)}
    bars: list[tuple[float, str, str, Any]] = []
    y = 0.0
    for row in report.rows:
        for v in report.variants:
            c = report.cells.get((row, v.label))
            if c is not None and c.summary is not None:
                bars.append((y, row, v.label, c.summary))
                y += 1
        y += 0.6  # gap between device rows
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.32 * len(bars)))
    seen: set[str] = set()
    for yy, row, lab, s in bars:
        err = np.array([[(s.median_ns - s.ci_low_ns) / 1e6], [(s.ci_high_ns - s.median_ns) / 1e6]])
        ax.barh([yy], [s.median_ns / 1e6], xerr=err, capsize=3, color=colours[lab],
                label=None if lab in seen else lab)
        seen.add(lab)
    ax.set_yticks([b[0] for b in bars], [b[1] for b in bars])
    ax.invert_yaxis()
    meds = [b[3].median_ns for b in bars]
    if meds and max(meds) / max(min(meds), 1) > 50:
        ax.set_xscale("log")
    ax.set_xlabel("median feature extraction time (ms), 95 % bootstrap CI")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, folder, "latency_per_device")


def latency_distributions(report: "Report", folder: Path) -> dict[str, Any]:
    plt = _plt()
    cells = [c for c in report.cells.values() if c.summary is not None][:MAX_BOXES]
    data = [[x / 1e6 for vw in c.runs if vw.summary for x in vw.result["latency_ns"]] for c in cells]
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.4 * len(cells)))
    ax.boxplot(data, vert=False, showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(cells) + 1), [f"{c.row} | {c.variant}" for c in cells])
    ax.invert_yaxis()
    ax.set_xlabel("feature extraction time (ms), every timed iteration")
    return _save(fig, folder, "latency_distributions")


def eer_vs_latency(report: "Report", folder: Path) -> dict[str, Any]:
    points: dict[str, list[tuple[float, float, str]]] = {}
    for (row, lab), c in report.cells.items():
        v = report.variant(lab)
        if c.summary is not None and v.eer is not None:
            points.setdefault(row, []).append((c.summary.median_ns / 1e6, 100 * v.eer, lab))
    if not points:
        return {"skipped": "no variant has an EER (give --metrics)"}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row, pts in sorted(points.items()):
        sc = ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=row, s=30)
        front = sorted((pts[i] for i in pareto_front([(p[0], p[1]) for p in pts])), key=lambda p: p[0])
        ax.plot([p[0] for p in front], [p[1] for p in front], "--", color=sc.get_facecolor()[0], linewidth=1)
        ax.scatter([p[0] for p in front], [p[1] for p in front], s=90, facecolors="none",
                   edgecolors=sc.get_facecolor()[0], linewidths=1.2)
        for x, y, lab in pts:
            ax.annotate(lab, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("median latency (ms)")
    ax.set_ylabel("EER (%)")
    ax.legend(fontsize=7)
    return _save(fig, folder, "eer_vs_latency")


def eer_vs_size(report: "Report", folder: Path) -> dict[str, Any]:
    pts: list[tuple[float, float, str]] = []
    for v in report.variants:
        if v.eer is None:
            continue
        sizes = {f"{v.label} {fmt}": s for fmt, s in v.artifact_sizes.items()}
        if not sizes and v.bundle_size_bytes:
            sizes = {f"{v.label} (bundle)": v.bundle_size_bytes}
        pts += [(s / 1e6, 100 * v.eer, lab) for lab, s in sizes.items()]
    if not pts:
        return {"skipped": "no variant has both an EER and a known size (give --metrics and --artifacts/--bundles)"}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=30, color="tab:blue")
    front = sorted((pts[i] for i in pareto_front([(p[0], p[1]) for p in pts])), key=lambda p: p[0])
    ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="tab:red", linewidth=1, label="Pareto front")
    ax.scatter([p[0] for p in front], [p[1] for p in front], s=90, facecolors="none", edgecolors="tab:red")
    for x, y, lab in pts:
        ax.annotate(lab, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("size (MB)")
    ax.set_ylabel("EER (%)")
    ax.legend(fontsize=8)
    return _save(fig, folder, "eer_vs_size")


def _curves(report: "Report") -> list[Any]:
    from toolchain.errors import EvaluationError
    from toolchain.evaluate.features import load_scores
    from toolchain.evaluate.plots import Scores

    from toolchain.report.paper import sort_key

    out = []
    drawn: set[Path] = set()
    for v in sorted(report.variants, key=sort_key):  # the paper table's order: the legend groups by method
        # a curve per evaluation: an int8 variant that borrows its bundle's fp32 evaluation draws nothing new
        if v.metrics is not None and v.metrics.scores is not None and v.metrics.scores not in drawn:
            drawn.add(v.metrics.scores)
            try:
                out.append(Scores(v.label, *load_scores(v.metrics.scores)))
            except EvaluationError as e:
                msg = f"{e} (no ROC/DET curve for {v.label})"
                if msg not in report.problems:  # roc and det both read the scores
                    report.problems.append(msg)
    return out


def _curve_figure(report: "Report", folder: Path, kind: str) -> dict[str, Any]:
    from toolchain.evaluate import plots

    curves = _curves(report)
    if not curves:
        return {"skipped": "no metrics.json has its scores.npz beside it (give --metrics the evaluation folders)"}
    folder.mkdir(parents=True, exist_ok=True)
    getattr(plots, f"plot_{kind}")(curves, folder / f"{kind}.png", title=None)
    return {"png": f"{folder.name}/{kind}.png"}


def roc(report: "Report", folder: Path) -> dict[str, Any]:
    return _curve_figure(report, folder, "roc")


def det(report: "Report", folder: Path) -> dict[str, Any]:
    return _curve_figure(report, folder, "det")


FIGURES = {
    "roc": ("ROC of every evaluated variant", roc),
    "det": ("DET of every evaluated variant", det),
    "latency_per_device": ("Median latency per device with 95 % CI", latency_per_device),
    "eer_vs_latency": ("EER vs latency (circled and joined: Pareto front per device · runtime)", eer_vs_latency),
    "eer_vs_size": ("EER vs size", eer_vs_size),
    "latency_distributions": ("Latency distributions", latency_distributions),
}


def write_all(report: "Report", folder: Path) -> dict[str, dict[str, Any]]:
    """Every figure; returns name -> {"png", "svg", "title"} or {"skipped", "title"}."""
    has_samples = any(c.summary is not None for c in report.cells.values())
    out = {}
    for name, (title, fn) in FIGURES.items():
        if not has_samples and name.startswith("latency"):
            out[name] = {"skipped": "no run has timed samples", "title": title}
            continue
        out[name] = {**fn(report, folder), "title": title}
    return out
