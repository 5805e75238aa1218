"""ROC, DET and score-histogram plots as PNG (matplotlib, Agg canvas; no pyplot global state).

One function per plot kind; each takes one or several :class:`Scores` so the same code draws
a single model and the ``--compare`` overlays. Curves join the swept operating points with
straight lines, the same interpolation that defines the EER (see ``metrics``), so each
curve meets the FAR = FRR diagonal at its EER. Files are written atomically.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from toolchain.evaluate.metrics import DEFAULT_FARS, det_curve, equal_error_rate, far_key, roc_curve
from toolchain.fsutil import atomic_write_bytes

#: plots never need more points than this per curve; larger curves are thinned evenly
MAX_POINTS = 4000
DET_TICKS = (1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 0.99)


@dataclass
class Scores:
    """A labelled set of genuine and impostor similarity scores."""

    label: str
    genuine: np.ndarray
    impostor: np.ndarray


def _figure(width_in: float = 6.0, height_in: float = 5.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path, dpi: int = 120) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _thin(*arrays: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, ...]:
    n = len(arrays[0])
    if n <= max_points:
        return arrays
    idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    return tuple(a[idx] for a in arrays)


#: legends with more curves than this go outside the axes (a report's ROC of every variant), line styles cycle
LEGEND_INSIDE_MAX = 8
_STYLES = ("-", "--", ":", "-.")


def _style(i: int) -> dict:
    """Colour and line style of the i-th curve: tab10's ten colours, then the next line style (40 distinct)."""
    return {"color": f"C{i % 10}", "ls": _STYLES[(i // 10) % len(_STYLES)]}


def _legend(fig, ax, n: int, loc: str) -> None:
    if n > LEGEND_INSIDE_MAX:
        fig.legend(loc="outside right upper", fontsize=7)
    else:
        ax.legend(loc=loc, fontsize=8)


def _size(n: int) -> tuple[float, float]:
    return (9.5, 6.0) if n > LEGEND_INSIDE_MAX else (6.0, 5.0)


def _percent(p: float) -> str:
    return f"{p * 100:g}%"


def plot_roc(curves: Sequence[Scores], path: str | Path, fars: Sequence[float] = DEFAULT_FARS,
             title: str | None = "ROC") -> Path:
    """ROC: TAR against FAR on a log FAR axis (the low-FAR end is what matters), one line per model.

    ``title`` None: no title in the image (a report captions it once itself).
    """
    fig = _figure(*_size(len(curves)))
    ax = fig.add_subplot()
    lo = 1.0
    for i, c in enumerate(curves):
        far, tar, _ = roc_curve(c.genuine, c.impostor)
        lo = min(lo, 1.0 / len(c.impostor))
        keep = far > 0  # log axis: FAR 0 cannot be drawn
        x, y = _thin(far[keep], tar[keep])
        eer, _ = equal_error_rate(c.genuine, c.impostor)
        ax.plot(x, y, label=f"{c.label} (EER {_percent(round(eer, 4))})", **_style(i))
    for f in fars:
        ax.axvline(f, color="0.8", lw=0.8, ls="--", zorder=0)
        ax.text(f, 0.01, f" FAR {far_key(f)}", rotation=90, va="bottom", fontsize=7, color="0.5")
    ax.set_xscale("log")
    ax.set_xlim(max(lo / 2, 1e-6), 1.0)
    ax.set_ylim(0.0, 1.005)
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR)")
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    _legend(fig, ax, len(curves), "lower right")
    return _save(fig, path)


def plot_det(curves: Sequence[Scores], path: str | Path, title: str | None = "DET") -> Path:
    """DET: FRR against FAR on normal-deviate (probit) axes, where Gaussian scores give straight lines."""
    from scipy.special import ndtr, ndtri

    fig = _figure(*_size(len(curves)))
    ax = fig.add_subplot()
    eers = []
    lo = 1.0
    for i, c in enumerate(curves):
        far, frr, _ = det_curve(c.genuine, c.impostor)
        eer, _ = equal_error_rate(c.genuine, c.impostor)
        eers.append(eer)
        lo = min(lo, 1.0 / len(c.impostor), 1.0 / len(c.genuine))
        x, y = _thin(far, frr)
        ax.plot(x, y, label=f"{c.label} (EER {_percent(round(eer, 4))})", **_style(i))
    lo = float(np.clip(lo / 2, 1e-5, 1e-2))
    hi = 0.5 if max(eers) < 0.2 else 0.99
    # probit axes: matplotlib's "function" scale maps rates through the normal quantile; clipping keeps 0 and 1 finite
    fwd = lambda p: ndtri(np.clip(p, lo / 10, 1 - 1e-9))  # noqa: E731
    ax.set_xscale("function", functions=(fwd, ndtr))
    ax.set_yscale("function", functions=(fwd, ndtr))
    ticks = [t for t in DET_TICKS if lo <= t <= hi]
    ax.set_xticks(ticks, [_percent(t) for t in ticks], fontsize=8)
    ax.set_yticks(ticks, [_percent(t) for t in ticks], fontsize=8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.plot([lo, hi], [lo, hi], color="0.7", lw=0.8, ls=":", zorder=0, label="FAR = FRR")
    ax.set_xlabel("false accept rate (FAR), normal-deviate scale")
    ax.set_ylabel("false reject rate (FRR), normal-deviate scale")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    _legend(fig, ax, len(curves) + 1, "lower left")
    return _save(fig, path)


def plot_histograms(scores: Scores, path: str | Path, threshold: float | None = None, bins: int = 60) -> Path:
    """Genuine and impostor score densities on shared bins, with the EER threshold marked."""
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    g, i = np.asarray(scores.genuine), np.asarray(scores.impostor)
    lo, hi = float(min(g.min(), i.min())), float(max(g.max(), i.max()))
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    ax.hist(i, bins=edges, density=True, alpha=0.55, color="tab:red", label=f"impostor (n={i.size:,})")
    ax.hist(g, bins=edges, density=True, alpha=0.55, color="tab:green", label=f"genuine (n={g.size:,})")
    if threshold is not None:
        ax.axvline(threshold, color="k", lw=1, ls="--", label=f"EER threshold {threshold:.4f}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(f"Score distributions: {scores.label}")
    ax.legend(fontsize=8)
    return _save(fig, path)
