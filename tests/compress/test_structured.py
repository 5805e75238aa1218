"""Structured pruning: width (Torch-Pruning), depth and width multiplier really shrink, run and rebuild."""

from __future__ import annotations

import pytest
import torch

from toolchain.compress.config import WidthConfig
from toolchain.compress.pruning import depth
from toolchain.compress.pruning.structured import IMPORTANCES, prune_width, width_multiplier
from toolchain.errors import CompressionError
from toolchain.models.arch import probe_feature_dim
from toolchain.models.bundle import derive_meta, load_bundle, save_bundle


def _params(model):
    return sum(p.numel() for p in model.trunk.parameters())


def _round_trip(model, parent, tmp_path, removed=()):
    meta = derive_meta(parent, recipe={"test": True})
    meta["feature_dim"] = probe_feature_dim(model, parent.input_size)
    meta["architecture"]["removed_blocks"] = list(removed)
    b = load_bundle(save_bundle(model, meta, tmp_path / "out"))
    x = torch.randn(2, 3, parent.input_size, parent.input_size)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(b.model(x), model(x), atol=1e-6)
    return b


@pytest.mark.parametrize("importance", IMPORTANCES.names())
@pytest.mark.parametrize("scope", ["global", "uniform"])
def test_width_pruning_reaches_parameter_ratio_and_rebuilds(tiny_bundle, tmp_path, importance, scope):
    parent = load_bundle(tiny_bundle)
    model = parent.model
    model.head = torch.nn.Linear(64, 3)
    batches = [(torch.randn(6, 3, 64, 64), torch.tensor([0, 1, 2, 0, 1, 2]))]
    res = prune_width(model, WidthConfig(ratio=2.0, importance=importance, scope=scope, tolerance=0.02), 64, batches)
    assert _params(model) / _params(res.model) == pytest.approx(2.0, rel=0.02)
    assert res.ratio_reached == pytest.approx(_params(model) / _params(res.model))
    b = _round_trip(res.model, parent, tmp_path)
    assert b.meta["architecture"]["layer_shapes"]  # widths recorded in model.json
    assert b.model.head.in_features == b.feature_dim  # the head follows the new feature width


def test_width_pruning_to_a_flop_ratio(tiny_bundle):
    from toolchain.compress.measure import count_flops

    model = load_bundle(tiny_bundle).model
    res = prune_width(model, WidthConfig(ratio=3.0, target="flops", tolerance=0.02), 64)
    assert count_flops(model, 64)[0] / count_flops(res.model, 64)[0] == pytest.approx(3.0, rel=0.02)


def test_width_config_is_validated():
    with pytest.raises(CompressionError, match="target"):
        WidthConfig(target="bytes")
    with pytest.raises(CompressionError, match="scope"):
        WidthConfig(scope="local")
    with pytest.raises(CompressionError, match="at least 1"):
        WidthConfig(ratio=0.5)


def test_unreachable_width_ratio_says_so(tiny_bundle):
    with pytest.raises(CompressionError, match="out of reach"):
        prune_width(load_bundle(tiny_bundle).model, WidthConfig(ratio=500.0), 64)


def test_width_multiplier_halves_channels(tiny_bundle, tmp_path):
    parent = load_bundle(tiny_bundle)
    thin = width_multiplier(parent.model, 0.5, 64)
    assert thin.trunk.conv1.out_channels == 8 and thin.trunk.layer2[0].conv1.out_channels == 32
    assert _params(parent.model) / _params(thin) == pytest.approx(4.0, rel=0.05)  # convs scale with width^2
    _round_trip(thin, parent, tmp_path)


def test_depth_removes_only_shape_preserving_blocks(tiny_bundle, tmp_path):
    parent = load_bundle(tiny_bundle)
    assert depth.removable_blocks(parent.model, 64) == {"layer1": ["layer1.0"], "layer2": ["layer2.0"]}
    with pytest.raises(CompressionError, match="down.0"):
        depth.remove_blocks(parent.model, ["down.0"], 64)
    removed = depth.remove_blocks(parent.model, ["layer2.0"], 64)
    b = _round_trip(parent.model, parent, tmp_path, removed)
    assert b.meta["architecture"]["removed_blocks"] == ["layer2.0"]
    assert not any(k.startswith("trunk.layer2.0") for k in b.model.state_dict())


@pytest.mark.slow
def test_resnet50_keep_two_blocks_per_stage_rebuilds(tmp_path):
    from toolchain.models.bundle import init_bundle

    parent = load_bundle(init_bundle("resnet50_ocular", tmp_path / "r50", input_size=64))
    removed = depth.keep_per_stage(parent.model, 2, 64)
    assert removed == ["layer1.2", "layer2.2", "layer2.3", "layer3.2", "layer3.3", "layer3.4", "layer3.5", "layer4.2"]
    b = _round_trip(parent.model, parent, tmp_path, removed)
    assert b.feature_dim == 2048 and _params(b.model) < 14_000_000
