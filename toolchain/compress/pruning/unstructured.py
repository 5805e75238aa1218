"""The five unstructured pruning methods of ShrinkBench, registered by name.

A method is a *scorer* (what a weight is worth) and a *scope* (global ranking over all
prunable layers, or the same keep fraction in every layer); :mod:`.masks` turns scores into
masks that reach the compression ratio. Blalock et al., "What is the state of neural network
pruning?", MLSys 2020 (ShrinkBench), with the same names:

=================  ====================================  ======
method             score of weight w                     scope
=================  ====================================  ======
global-magnitude   |w|                                   global
layer-magnitude    |w|                                   layer
global-gradient    |w * dL/dw| (gradient averaged over   global
                   the calibration batches)
layer-gradient     |w * dL/dw|                           layer
random             uniform(0, 1), seeded                 layer
=================  ====================================  ======

Weights already pruned score ``-inf`` so iterative schedules only ever add zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from toolchain.compress.pruning.masks import (
    MaskReport,
    PruneScope,
    apply_masks,
    keep_count,
    masks_from_scores,
    prunable_layers,
    report,
)
from toolchain.errors import CompressionError
from toolchain.registry import Registry

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def classification_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the model's classification head (``model.logits``)."""
    return F.cross_entropy(model.logits(x), y)


@dataclass
class ScoreContext:
    """What scorers may need: calibration batches and a loss (gradient methods), a seed (random).

    Args:
        batches: (images normalised NCHW, integer labels) pairs; re-iterable (a list).
        loss_fn: ``loss_fn(model, images, labels)`` -> scalar; default: head cross-entropy.
        seed: seed of the random scorer.
    """

    batches: Sequence[Batch] = ()
    loss_fn: LossFn = classification_loss
    seed: int = 0


Scorer = Callable[[nn.Module, dict[str, nn.Module], ScoreContext], dict[str, torch.Tensor]]
SCORERS: Registry[Scorer] = Registry("weight scorer")


@SCORERS.register("magnitude")
def magnitude_scores(model: nn.Module, layers: dict[str, nn.Module], ctx: ScoreContext) -> dict[str, torch.Tensor]:
    """|w| (Han et al., "Learning both weights and connections", NeurIPS 2015)."""
    return {n: m.weight.detach().abs().cpu() for n, m in layers.items()}


@SCORERS.register("gradient")
def gradient_scores(model: nn.Module, layers: dict[str, nn.Module], ctx: ScoreContext) -> dict[str, torch.Tensor]:
    """|w * g| with g = dL/dw averaged over ``ctx.batches`` (first-order Taylor saliency, as ShrinkBench).

    BatchNorm uses its running statistics (eval mode) so scoring does not change the model.
    """
    if not ctx.batches:
        raise CompressionError("gradient pruning needs calibration batches (images and labels); pass --data")
    was = model.training
    model.eval()
    acc = {n: torch.zeros_like(m.weight) for n, m in layers.items()}
    saved = {n: m.weight.requires_grad for n, m in layers.items()}
    for m in layers.values():
        m.weight.requires_grad_(True)
    try:
        for x, y in ctx.batches:
            model.zero_grad(set_to_none=True)
            ctx.loss_fn(model, x, y).backward()
            for n, m in layers.items():
                if m.weight.grad is not None:
                    acc[n] += m.weight.grad
    finally:
        model.zero_grad(set_to_none=True)
        for n, m in layers.items():
            m.weight.requires_grad_(saved[n])
        model.train(was)
    k = len(ctx.batches)
    return {n: (m.weight.detach() * acc[n] / k).abs().cpu() for n, m in layers.items()}


@SCORERS.register("random")
def random_scores(model: nn.Module, layers: dict[str, nn.Module], ctx: ScoreContext) -> dict[str, torch.Tensor]:
    """uniform(0, 1) per weight from ``ctx.seed``: the same seed gives the same masks."""
    g = torch.Generator().manual_seed(ctx.seed)
    return {n: torch.rand(m.weight.shape, generator=g) for n, m in layers.items()}


@dataclass(frozen=True)
class Method:
    """An unstructured pruning method: a scorer name in :data:`SCORERS` and a scope."""

    score: str
    scope: str  # "global" | "layer"
    description: str = ""


METHODS: Registry[Method] = Registry("pruning method")
METHODS.add("global-magnitude", Method("magnitude", "global", "smallest |w| over the whole network"))
METHODS.add("layer-magnitude", Method("magnitude", "layer", "smallest |w| in each layer, same fraction per layer"))
METHODS.add("global-gradient", Method("gradient", "global", "smallest |w * dL/dw| over the whole network"))
METHODS.add("layer-gradient", Method("gradient", "layer", "smallest |w * dL/dw| in each layer"))
METHODS.add("random", Method("random", "layer", "uniformly random weights, same fraction per layer (seeded)"))


@dataclass
class PruneResult:
    masks: dict[str, torch.Tensor]
    report: MaskReport
    method: str
    extra: dict = field(default_factory=dict)


def prune(model: nn.Module, method: str, ratio: float, scope: PruneScope | None = None,
          ctx: ScoreContext | None = None, previous: dict[str, torch.Tensor] | None = None,
          fixed_dense: bool = False) -> PruneResult:
    """Prune ``model`` in place to ``ratio`` (total / non-zero parameters) with a registered method.

    Args:
        model: a FeatureModel (its trunk is pruned) or any module.
        method: a name in :data:`METHODS`.
        ratio: target compression ratio, at least 1.
        scope: which layers may be pruned (default: conv + linear, feature head excluded).
        ctx: calibration batches / loss / seed for the scorers.
        previous: masks of an earlier step; weights they removed stay removed.
        fixed_dense: count non-prunable parameters as non-zero (set when fine-tuning follows,
            which makes zero-initialised biases non-zero), so the ratio holds after training.

    Returns the boolean masks (True = kept) and a report of the ratio reached.
    """
    m = METHODS.get(method)
    ctx = ctx or ScoreContext()
    layers = prunable_layers(model, scope)
    keep = keep_count(model, layers, ratio, fixed_dense)
    scores = SCORERS.get(m.score)(model, layers, ctx)
    if previous:
        for n, mask in previous.items():
            if n in scores:
                scores[n] = scores[n].float().masked_fill(~mask.cpu(), float("-inf"))
    masks = masks_from_scores(scores, keep, m.scope)
    apply_masks(model, masks)
    return PruneResult(masks, report(model, masks, ratio), method)


def ratio_schedule(target: float, steps: int) -> list[float]:
    """Geometric ratios reaching ``target`` in ``steps`` steps (gradual pruning).

    >>> ratio_schedule(8, 3)
    [2.0, 4.0, 8.0]
    """
    if steps < 1:
        raise CompressionError(f"an iterative schedule needs at least 1 step, got {steps}")
    return [round(float(target) ** ((i + 1) / steps), 9) for i in range(steps)]


@torch.no_grad()
def fit_probe_head(model: nn.Module, batches: Sequence[Batch], num_classes: int, ridge: float = 1e-2) -> None:
    """Give a head-less model a least-squares linear classifier on its features (for gradient scores).

    Ridge regression of one-hot labels on the (frozen) features: ``W = (F^T F + ridge I)^-1 F^T Y``.
    Gradient scores of a random head would rank weights by noise; this head is fitted to the data.
    """
    was = model.training
    model.eval()
    feats = torch.cat([model(x) for x, _ in batches])
    labels = torch.cat([y for _, y in batches])
    model.train(was)
    ones = torch.ones(len(feats), 1)
    a = torch.cat([feats, ones], 1).double()
    y = F.one_hot(labels, num_classes).double()
    w = torch.linalg.solve(a.T @ a + ridge * torch.eye(a.shape[1], dtype=torch.float64), a.T @ y)
    head = nn.Linear(feats.shape[1], num_classes)
    head.weight.copy_(w[:-1].T.float())
    head.bias.copy_(w[-1].float())
    model.head = head
