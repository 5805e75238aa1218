"""Plots are real, non-blank PNGs, for one model and for overlays, including edge-case scores."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from toolchain.evaluate.plots import Scores, plot_det, plot_histograms, plot_roc


def _assert_png(path):
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
        px = np.asarray(im.convert("L"), dtype=float)
    assert px.std() > 5  # axes, curves and labels drawn, not a blank canvas


@pytest.fixture
def curves():
    r = np.random.default_rng(0)
    return [Scores("a", r.normal(0.7, 0.1, 300), r.normal(0.1, 0.1, 3000)),
            Scores("b", r.normal(0.5, 0.2, 300), r.normal(0.1, 0.15, 3000))]


@pytest.mark.parametrize("plot", [plot_roc, plot_det])
@pytest.mark.parametrize("n", [1, 2])
def test_curve_plots(tmp_path, curves, plot, n):
    out = plot(curves[:n], tmp_path / "p.png")
    _assert_png(out)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


@pytest.mark.parametrize("plot", [plot_roc, plot_det])
def test_curve_plots_survive_perfect_and_bad_models(tmp_path, plot):
    perfect = Scores("perfect", np.array([0.9, 0.95]), np.array([0.1, 0.2, 0.3]))
    awful = Scores("awful", np.array([0.1, 0.2]), np.array([0.5, 0.6, 0.3]))
    _assert_png(plot([perfect, awful], tmp_path / "p.png"))


def test_histogram(tmp_path, curves):
    _assert_png(plot_histograms(curves[0], tmp_path / "h.png", threshold=0.4))
    _assert_png(plot_histograms(Scores("const", np.array([1.0, 1.0]), np.array([1.0])), tmp_path / "c.png"))


def test_big_curves_are_thinned_but_drawn(tmp_path):
    r = np.random.default_rng(1)
    big = Scores("big", r.normal(1, 1, 20_000), r.normal(0, 1, 200_000))
    _assert_png(plot_det([big], tmp_path / "d.png"))
