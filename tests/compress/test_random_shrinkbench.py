"""`--method random --random-mode shrinkbench`: each weight and bias kept with ShrinkBench's probability p."""

from __future__ import annotations

import torch
from torch import nn

from toolchain.compress.pruning.bernoulli import bernoulli_masks, keep_probability
from toolchain.compress.pruning.masks import BIAS, apply_masks
from toolchain.compress.pruning.unstructured import ScoreContext, prune


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(16, 64, 3), nn.BatchNorm2d(64), nn.Conv2d(64, 64, 3), nn.Flatten(),
                         nn.Linear(64, 8))


def test_probability_is_shrinkbench_fraction_to_keep():
    net = _net()
    layers = {"0": net[0], "2": net[2]}  # both convolutions with their biases; BN and the Linear are not prunable
    total = sum(p.numel() for p in net.parameters())
    prunable = sum(p.numel() for n in ("0", "2") for p in net.get_submodule(n).parameters())
    p = keep_probability(net, layers, 4.0, "deployed")
    # pruning/utils.py fraction_to_keep: 1 / prunable * (total / compression - nonprunable)
    assert abs(p - (total / 4.0 - (total - prunable)) / prunable) < 1e-12


def test_each_weight_and_bias_kept_with_probability_p_and_masks_nest():
    net = _net()
    layers = {"0": net[0], "2": net[2]}
    p = keep_probability(net, layers, 4.0, "deployed")
    masks = bernoulli_masks(net, layers, 4.0, seed=1, ratio_of="deployed")
    assert set(masks) == {"0", "0" + BIAS, "2", "2" + BIAS}
    kept = torch.cat([m.reshape(-1).float() for m in masks.values()])
    # 46k Bernoulli(p) draws: the kept share is p within 5 standard deviations (~0.01), not an exact count
    assert abs(kept.mean().item() - p) < 5 * (p * (1 - p) / kept.numel()) ** 0.5
    apply_masks(net, masks)
    assert torch.equal(net[0].bias != 0, masks["0" + BIAS]) and torch.equal(net[2].weight != 0, masks["2"])
    again = bernoulli_masks(_net(), {"0": _net()[0], "2": _net()[2]}, 4.0, seed=1, ratio_of="deployed")
    assert all(torch.equal(masks[k], again[k]) for k in masks)
    denser = bernoulli_masks(_net(), layers, 2.0, seed=1, ratio_of="deployed")
    assert all(bool((masks[k] <= denser[k]).all()) for k in masks)  # same draws: a higher ratio removes a superset


def test_prune_random_modes_differ_as_documented():
    exact = prune(_net(), "random", 4.0, ctx=ScoreContext(seed=0))
    sb = prune(_net(), "random", 4.0, ctx=ScoreContext(seed=0, random_mode="shrinkbench"))
    assert not any(k.endswith(BIAS) for k in exact.masks)
    assert any(k.endswith(BIAS) for k in sb.masks)
    # exact hits the ratio to within a weight or so; ShrinkBench's hits it in expectation only
    assert abs(exact.report.ratio_reached - 4.0) < 0.01
    assert abs(sb.report.ratio_reached - 4.0) < 0.2 and sb.report.ratio_reached != exact.report.ratio_reached


def test_cli_warns_when_random_mode_cannot_apply(tiny_bundle, tmp_path):
    from typer.testing import CliRunner

    from toolchain.cli import app

    r = CliRunner().invoke(app, ["prune", str(tiny_bundle), "--out", str(tmp_path / "o"), "--method",
                                 "layer-magnitude", "--ratio", "2", "--random-mode", "shrinkbench"])
    assert r.exit_code == 0, r.output
    assert "--random-mode has no effect with --method layer-magnitude" in r.output
    r = CliRunner().invoke(app, ["prune", str(tiny_bundle), "--out", str(tmp_path / "r"), "--method", "random",
                                 "--ratio", "2", "--random-mode", "shrinkbench"])
    assert r.exit_code == 0 and "no effect" not in r.output, r.output
    assert '"random_mode": "shrinkbench"' in (tmp_path / "r" / "bundle" / "model.json").read_text()


def test_docstring_examples_hold():
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module("toolchain.compress.pruning.bernoulli"))
    assert result.attempted > 0 and result.failed == 0
