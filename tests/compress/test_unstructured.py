"""The five unstructured methods: hand-computed masks, ratios reached, scope, gradients, seeds, schedules."""

from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from toolchain.compress.pruning import masks as masks_mod
from toolchain.compress.pruning import unstructured
from toolchain.compress.pruning.masks import PruneScope, compression_ratio, count_parameters, prunable_layers
from toolchain.compress.pruning.schedule import SCHEDULES, PruneHooks, finalize
from toolchain.compress.pruning.unstructured import METHODS, ScoreContext, fit_probe_head, prune, ratio_schedule
from toolchain.errors import CompressionError, RegistryError
from toolchain.models.bundle import load_bundle

RATIOS = [2, 4, 8, 16, 32]


def _two_layer() -> nn.Module:
    """Two bias-free linear layers with known weights (8 + 4 parameters) and a feature Linear after them."""
    net = nn.Sequential(nn.Linear(4, 2, bias=False), nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1., -8., 3., 0.5], [-2., 7., -0.1, 4.]]))
        net[1].weight.copy_(torch.tensor([[0.2, -5.], [6., 0.3]]))
        net[2].weight.copy_(torch.tensor([[9., 9.]]))
    return net


def test_documented_examples_hold():
    for mod in (masks_mod, unstructured):
        assert doctest.testmod(mod).failed == 0


def test_global_magnitude_hand_computed_mask():
    net = _two_layer()  # 14 params; the last Linear (2) is the excluded feature head -> fixed
    res = prune(net, "global-magnitude", ratio=2.0)  # 7 non-zero -> keep 5 of the 12 prunable
    # The 5 largest |w| of the two layers: 8, 7, 6, 5, 4.
    assert res.masks["0"].int().tolist() == [[0, 1, 0, 0], [0, 1, 0, 1]]
    assert res.masks["1"].int().tolist() == [[0, 1], [1, 0]]
    assert net[2].weight.tolist() == [[9., 9.]]  # the feature head is untouched
    assert count_parameters(net) == (14, 7)


def test_layer_magnitude_hand_computed_mask_differs_from_global():
    """Layer 1 holds only large weights: global ranking keeps all of them, layerwise keeps 5/12 of each layer."""
    net = _two_layer()
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[20., -50.], [60., 30.]]))
    res = prune(net, "layer-magnitude", ratio=2.0)  # round(8 * 5/12) = 3 and round(4 * 5/12) = 2 kept
    assert res.masks["0"].int().tolist() == [[0, 1, 0, 0], [0, 1, 0, 1]]  # 8, 7, 4
    assert res.masks["1"].int().tolist() == [[0, 1], [1, 0]]  # 50, 60
    net = _two_layer()
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[20., -50.], [60., 30.]]))
    res = prune(net, "global-magnitude", ratio=2.0)  # 60, 50, 30, 20, then 8
    assert res.masks["0"].int().tolist() == [[0, 1, 0, 0], [0, 0, 0, 0]]
    assert res.masks["1"].int().tolist() == [[1, 1], [1, 1]]


@pytest.fixture()
def tiny(tiny_bundle):
    b = load_bundle(tiny_bundle)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(6, 3, 64, 64, generator=g), torch.tensor([0, 1, 2, 0, 1, 2]))]
    fit_probe_head(b.model, batches, 3)
    return b.model, batches


@pytest.mark.parametrize("method", METHODS.names())
@pytest.mark.parametrize("ratio", RATIOS)
def test_every_method_reaches_its_ratio(tiny, method, ratio):
    model, batches = tiny
    res = prune(model, method, ratio, ctx=ScoreContext(batches))
    assert compression_ratio(model) == pytest.approx(ratio, rel=0.005)
    assert res.report.ratio_reached == pytest.approx(compression_ratio(model))


@pytest.mark.parametrize("method", METHODS.names())
def test_classifier_and_feature_head_untouched_by_default(method):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    before = net[4].weight.detach().clone()
    batches = [(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))]
    ctx = ScoreContext(batches, loss_fn=lambda m, x, y: nn.functional.cross_entropy(m(x), y))
    prune(net, method, 2.0, ctx=ctx)
    assert torch.equal(net[4].weight, before)
    assert (net[0].weight == 0).any()
    assert "4" not in prunable_layers(net)
    assert "4" in prunable_layers(net, PruneScope(exclude_feature_head=False))


def test_scope_excludes_by_name_and_type():
    net = _two_layer()
    assert list(prunable_layers(net, PruneScope(exclude_names=("0",)))) == ["1"]
    with pytest.raises(CompressionError, match="no layer"):
        prunable_layers(net, PruneScope(exclude_types=("Linear",)))
    with pytest.raises(CompressionError, match="unknown layer type"):
        PruneScope(include_types=("LSTM",))


@pytest.mark.parametrize("method", ["global-gradient", "layer-gradient"])
def test_gradient_methods_use_gradients(method):
    """Row 0 of W is large but the loss ignores it: magnitude keeps it, gradient methods must not."""
    net = nn.Sequential(nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[10., 9.], [1., 2.]]))
    ctx = ScoreContext([(torch.ones(3, 2), torch.zeros(3, dtype=torch.long))], loss_fn=lambda m, x, y: (m(x)[:, 1] ** 2).sum())
    scope = PruneScope(exclude_feature_head=False)
    grad = prune(net, method, 2.0, scope, ctx).masks["0"]
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[10., 9.], [1., 2.]]))
    mag = prune(net, method.replace("gradient", "magnitude"), 2.0, scope).masks["0"]
    if method == "global-gradient":
        assert grad.int().tolist() == [[0, 0], [1, 1]]
        assert mag.int().tolist() == [[1, 1], [0, 0]]
    else:
        assert not torch.equal(grad, mag)


def test_gradient_methods_need_batches():
    with pytest.raises(CompressionError, match="calibration"):
        prune(_two_layer(), "global-gradient", 2.0)


def test_random_is_reproducible_by_seed(tiny_bundle):
    def masks(seed):
        return prune(load_bundle(tiny_bundle).model, "random", 4.0, ctx=ScoreContext(seed=seed)).masks

    a, b, c = masks(1), masks(1), masks(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_bad_ratio_and_unknown_method():
    with pytest.raises(CompressionError, match="at least 1"):
        prune(_two_layer(), "global-magnitude", 0.5)
    with pytest.raises(CompressionError, match="out of reach"):
        prune(_two_layer(), "global-magnitude", 1000)
    with pytest.raises(RegistryError, match="known: global-gradient"):
        prune(_two_layer(), "magnitude", 2)


def test_ratio_schedule_and_iterative_plan():
    assert ratio_schedule(8, 3) == [2.0, 4.0, 8.0]
    assert SCHEDULES.get("iterative")(8, 6, 3).steps == {0: 2.0, 1: 4.0, 2: 8.0}
    assert SCHEDULES.get("one-shot")(8, 6).steps == {0: 8.0}
    with pytest.raises(CompressionError, match="epochs"):
        SCHEDULES.get("iterative")(8, 2, 3)


def test_hooks_prune_nested_and_keep_zeros_through_steps(tiny_bundle):
    model = load_bundle(tiny_bundle).model
    hooks = PruneHooks("global-magnitude", SCHEDULES.get("iterative")(8, 4, 2))  # fixed_dense: ratio holds after steps
    hooks.before_epoch(model, 0)
    first = {k: v.clone() for k, v in hooks.masks.items()}
    hooks.before_epoch(model, 1)
    assert all(not (hooks.masks[k] & ~first[k]).any() for k in first)  # pruned stays pruned
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)  # an optimizer step moves every weight
    hooks.after_step(model)
    assert finalize(model, hooks.masks, 8).ratio_reached == pytest.approx(8, rel=0.005)
    state = hooks.state_dict()
    other = PruneHooks("global-magnitude", SCHEDULES.get("one-shot")(8, 1))
    other.load_state_dict(state)
    assert all(torch.equal(other.masks[k], hooks.masks[k]) for k in hooks.masks)


def test_later_steps_score_with_the_trained_loss(tiny_bundle):
    model = load_bundle(tiny_bundle).model
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 0, 1])
    model.head = nn.Linear(64, 2)
    used: list[str] = []

    def tagged(tag):
        def loss(m, images, labels):
            used.append(tag)
            return F.cross_entropy(m.logits(images), labels)
        return loss

    hooks = PruneHooks("global-gradient", SCHEDULES.get("iterative")(4, 2, 2),
                       ctx=ScoreContext([(x, y)], tagged("parent")), trained_loss_fn=tagged("trained"))
    hooks.before_epoch(model, 0)
    hooks.before_epoch(model, 1)
    assert used == ["parent", "trained"]
