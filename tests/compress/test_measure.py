"""measure: parameters, non-zeros, FLOPs (dense and effective), bytes on disk."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import nn

from toolchain.compress import measure
from toolchain.compress.pruning.unstructured import prune
from toolchain.models.bundle import load_bundle


def test_documented_examples_hold():
    assert doctest.testmod(measure).failed == 0


def test_conv_flops_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False))
    # 2 * (3 * 3 * 3) MACs per output * 4 channels * 8 * 8 positions
    assert measure.count_flops(net, 8) == (2 * 27 * 4 * 64, 2 * 27 * 4 * 64)


def test_pruned_bundle_measures(tiny_bundle):
    dense = load_bundle(tiny_bundle).model
    model = load_bundle(tiny_bundle).model
    prune(model, "global-magnitude", 8.0)
    m = measure.measure_model(model, 64, reference=dense)
    d = measure.measure_model(dense, 64)
    assert m.parameters == d.parameters and m.compression_ratio == pytest.approx(8.0, rel=0.005)
    assert m.flops == d.flops and m.effective_flops < d.flops / 4
    assert m.theoretical_speedup > 4
    assert m.dense_bytes == d.dense_bytes and m.gzip_bytes < d.gzip_bytes / 3  # zeros compress
    assert set(m.to_json()) >= {"parameters", "nonzero_parameters", "flops", "gzip_bytes", "sparsity"}
