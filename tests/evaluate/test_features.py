"""Feature extraction from bundles and exported artifacts, cosine scoring, score files."""

from __future__ import annotations

import numpy as np
import pytest

from toolchain.artifact.inputs import smooth_random_images
from toolchain.errors import MetricsError, ToolchainError
from toolchain.evaluate.features import (
    MODEL_KINDS,
    artifact_input_chw,
    artifact_input_size,
    cosine_similarity,
    load_scores,
    model_kind,
    open_model,
    save_scores,
)
from toolchain.evaluate.metrics import compute_metrics


@pytest.fixture(scope="module")
def tiny_onnx(tiny_bundle, tmp_path_factory):
    from toolchain.export.base import ExportRequest, export_bundle

    (o,) = export_bundle(ExportRequest(tiny_bundle, "onnx", tmp_path_factory.mktemp("onnx"), precision="fp32"))
    return o.folder


def test_cosine_similarity_by_hand():
    f = np.array([[3.0, 4.0], [4.0, 3.0], [-3.0, -4.0], [0.0, 1.0]])
    s = cosine_similarity(f, np.array([0, 0, 0, 1]), np.array([1, 2, 0, 3]))
    np.testing.assert_allclose(s, [24 / 25, -1.0, 1.0, 3 / 5])


def test_zero_feature_gives_nan_and_metrics_refuse_it():
    f = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    s = cosine_similarity(f, np.array([0, 0]), np.array([1, 2]))
    assert np.isnan(s[0]) and s[1] == pytest.approx(np.sqrt(0.5))
    with pytest.raises(MetricsError, match="NaN"):
        compute_metrics(s[:1], s[1:])


def test_bundle_features_match_manual_normalisation(tiny_bundle):
    import torch

    from toolchain.models.bundle import load_bundle

    m = open_model(tiny_bundle)
    assert (m.kind, m.input_size) == ("bundle", 64) and m.info["format"] == "pytorch"
    px = smooth_random_images(3, 64, seed=3)
    got = m.extract(px)
    b = load_bundle(tiny_bundle)
    mean = torch.tensor(b.mean).view(1, 3, 1, 1)
    std = torch.tensor(b.std).view(1, 3, 1, 1)
    with torch.no_grad():
        want = b.model((torch.from_numpy(px) / 255.0 - mean) / std).numpy()
    assert got.shape == (3, b.feature_dim) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert m.runtime.startswith("pytorch") and m.describe()["sha256"] == b.sha256


def test_artifact_features_match_bundle(tiny_bundle, tiny_onnx):
    a, b = open_model(tiny_onnx), open_model(tiny_bundle)
    assert a.kind == "artifact" and a.input_size == 64 and a.info["format"] == "onnx"
    px = smooth_random_images(4, 64, seed=8)
    fa, fb = a.extract(px), b.extract(px)
    assert "onnxruntime" in a.runtime
    cos = cosine_similarity(np.concatenate([fa, fb]), np.arange(4), np.arange(4, 8))
    assert cos.min() > 0.99999


def test_wrong_pixel_shape_is_refused(tiny_bundle):
    with pytest.raises(ToolchainError, match=r"\(N, 3, 64, 64\)"):
        open_model(tiny_bundle).extract(np.zeros((1, 3, 32, 32), np.float32))


def test_model_kinds_are_recognised_by_marker(tiny_bundle, tiny_onnx, tmp_path):
    assert set(MODEL_KINDS) == {"bundle", "artifact"}
    assert model_kind(tiny_bundle) == "bundle" and model_kind(tiny_onnx) == "artifact"
    with pytest.raises(ToolchainError, match=r"manifest.json \(artifact\), model.json \(bundle\)"):
        open_model(tmp_path)
    with pytest.raises(ToolchainError, match="not a folder"):
        open_model(tmp_path / "nothing")


@pytest.mark.parametrize("shape, layout, size", [
    (["batch", 3, 96, 96], "nchw", 96), ([1, 96, 96, 3], "nhwc", 96), ([3, 224, 224], "nchw", 224)])
def test_artifact_input_size(shape, layout, size):
    assert artifact_input_size({"input": {"shape": shape, "layout": layout}}) == size


@pytest.mark.parametrize("shape, layout, chw", [
    ([1, 3, 64, 32], "nchw", (3, 64, 32)), ([1, 64, 128, 1], "nhwc", (1, 64, 128)), ([1, 48, 192], "nchw", (1, 48, 192))])
def test_artifact_input_chw_rectangular_and_gray(shape, layout, chw):
    # before issue 24 a non-square input was refused ("square inputs only") and C was never read
    assert artifact_input_chw({"input": {"shape": shape, "layout": layout}}) == chw


@pytest.mark.parametrize("inp, message", [({"shape": [1, 2, 64, 32]}, "2 channels"), ({}, "re-export")])
def test_artifact_input_size_errors(inp, message):
    with pytest.raises(ToolchainError, match=message):
        artifact_input_size({"input": inp})


def test_scores_round_trip_and_bad_file(tmp_path):
    save_scores(tmp_path / "s.npz", [0.9, 0.8], [0.1])
    g, i = load_scores(tmp_path / "s.npz")
    assert g.tolist() == [0.9, 0.8] and i.tolist() == [0.1]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ToolchainError, match="not a scores file"):
        load_scores(tmp_path / "bad.npz")


def test_score_pairs_splits_protocol_pairs():
    from toolchain.evaluate.features import score_pairs

    f = np.random.default_rng(0).normal(size=(5, 8))
    g, i = score_pairs(f, np.array([[0, 1], [2, 3]]), np.array([[0, 4]]))
    np.testing.assert_allclose(g, cosine_similarity(f, np.array([0, 2]), np.array([1, 3])))
    assert i.shape == (1,) and i[0] == pytest.approx(f[0] @ f[4] / np.linalg.norm(f[0]) / np.linalg.norm(f[4]))


@pytest.mark.parametrize("module", ["metrics", "features"])
def test_docstring_examples_hold(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"toolchain.evaluate.{module}"))
    assert result.attempted > 0 and result.failed == 0
