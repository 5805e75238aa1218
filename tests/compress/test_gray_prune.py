"""Every pruning method carries a 1-channel, rectangular input (issue 24): the five unstructured methods, channel
(width) pruning, the width multiplier and depth pruning each write a bundle that still reads (1, H, W).

Before the input spec, pruning probed and traced with ``torch.zeros(1, 3, s, s)`` and read images as RGB, so a
grayscale bundle could not be pruned at all.
"""

from __future__ import annotations

import pytest
import torch

from toolchain.compress.config import METHODS
from toolchain.compress.pruning.structured import WidthConfig
from toolchain.compress.run import DataSpec, prune
from toolchain.models.bundle import init_bundle, load_bundle

CHW = (1, 32, 48)


@pytest.fixture(scope="module")
def gray_data(tmp_path_factory):
    from toolchain.data.synth import generate

    return generate(tmp_path_factory.mktemp("nir") / "s", subjects=6, images_per_subject=3, size=32, seed=0, channels=1)


@pytest.fixture(scope="module")
def gray_bundle(tmp_path_factory):
    return init_bundle("resnet18", tmp_path_factory.mktemp("g") / "b", channels=1, input_size=CHW[1:])


CASES = [(m, {"ratio": 4.0}) for m in METHODS] + [
    ("channel", {"width": WidthConfig(ratio=1.5, tolerance=0.05)}),
    ("width-multiplier", {"multiplier": 0.5}),
    ("depth", {"keep_per_stage": 1}),
]


@pytest.mark.parametrize("method, options", CASES, ids=[c[0] for c in CASES])
def test_every_pruning_method_keeps_a_gray_rectangular_input(gray_bundle, gray_data, tmp_path, method, options):
    res = prune(gray_bundle, tmp_path / "run", method, dict(options), data=DataSpec(gray_data), batch_size=4,
                calibration=1)
    b = load_bundle(res.bundle)
    assert b.input_chw == CHW and b.color == "gray" and b.mean == load_bundle(gray_bundle).mean
    assert b.model.trunk.conv1.in_channels == 1
    with torch.no_grad():
        assert b.model(torch.zeros(2, *CHW)).shape == (2, b.feature_dim)
