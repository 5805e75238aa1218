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
global-gradient    |w * dL/dw| (see gradient modes)     global
layer-gradient     |w * dL/dw|                           layer
random             uniform(0, 1), seeded                 layer
=================  ====================================  ======

``random`` has two modes (``--random-mode``): ``exact`` (default) keeps the planned count of each layer, as
the table says; ``shrinkbench`` keeps each weight *and bias* of a prunable layer with probability p,
ShrinkBench's ``strategies/random.py`` (:mod:`.bernoulli`).

Weights already pruned score ``-inf`` so iterative schedules only ever add zeros.

**Gradient modes** (how dL/dw is taken; :data:`GRADIENT_MODES`):

* ``shrinkbench`` (default): ShrinkBench's procedure. ``shrinkbench/pruning/utils.py``
  ``get_param_gradients`` puts the model in *train* mode (BatchNorm normalises with the batch's own
  statistics), runs ONE batch (``experiment/prune.py`` ``apply_pruning``: ``x, y =
  next(iter(self.train_dl))``, i.e. one batch of the training batch size), ``loss.backward()``
  and reads ``param.grad``; ``strategies/magnitude.py`` ``GlobalMagGrad`` / ``LayerMagGrad`` score
  ``|w * grad|``. Unlike ShrinkBench, which leaves the BatchNorm running statistics updated by
  that forward pass, every buffer and every module's train/eval flag is restored afterwards:
  scoring does not change the model.
* ``eval``: BatchNorm in eval mode (running statistics), the gradient averaged over every
  calibration batch. Lower-variance scores, but not ShrinkBench's: on a random-init ResNet50
  (synthetic images, probe head) the two modes keep only 17-50 % of the same weights (8x-32x,
  global and layer scope).

**Selection, compared with ShrinkBench's.** ShrinkBench keeps every score at or above a quantile
(``strategies/utils.py`` ``fraction_threshold``: ``np.quantile(scores, 1 - fraction)``, linearly
interpolated); here the ``keep`` best scores are kept, ties broken by position. The results differ
in three ways: the interpolated quantile and ``round(fraction * n)`` can keep counts one weight
apart (per layer in the layer scope, over the network in the global one), and ShrinkBench also
keeps every score tied at the threshold; the layer scope here keeps at least one weight per layer
(``max(1, ...)``), where ShrinkBench can empty a layer; ShrinkBench also scores and prunes the
biases of its prunable modules, which are never pruned here (:mod:`.masks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# GRADIENT_MODES is re-exported from its light home
from toolchain.compress.config import GRADIENT_MODES, METHODS, PRUNE, RANDOM_MODES
from toolchain.compress.logits import HeadSpec, LossFn, head_loss
from toolchain.compress.pruning.masks import (
    MaskReport,
    PruneScope,
    apply_masks,
    keep_exact,
    masks_from_scores,
    prunable_layers,
    report,
)
from toolchain.errors import CompressionError
from toolchain.registry import Registry

Batch = tuple[torch.Tensor, torch.Tensor]
_SOFTMAX_LOSS = head_loss(HeadSpec())  # CE(W f + b): ShrinkBench's nn.CrossEntropyLoss() on the logits


@dataclass
class ScoreContext:
    """What scorers may need: calibration batches and a loss (gradient methods), a seed (random).

    Args:
        batches: (images normalised NCHW, integer labels) pairs; re-iterable (a list). The
            ``shrinkbench`` gradient mode uses only the first.
        loss_fn: ``loss_fn(model, images, labels)`` -> scalar; default: cross-entropy of a softmax
            head's ``W f + b`` (:func:`~toolchain.compress.logits.head_loss`; pass the head's own).
        seed: seed of the random scorer.
        gradient_mode: ``shrinkbench`` (train mode, one batch) or ``eval`` (eval mode, averaged
            over the batches); see the module docstring.
    """

    batches: Sequence[Batch] = ()
    loss_fn: LossFn = _SOFTMAX_LOSS
    seed: int = 0
    gradient_mode: str = PRUNE.gradient_mode
    #: ``random`` only: ``exact`` (a seeded exact count per layer) or ``shrinkbench`` (each weight and bias kept
    #: with probability p; :mod:`.bernoulli`)
    random_mode: str = PRUNE.random_mode

    def __post_init__(self) -> None:
        if self.gradient_mode not in GRADIENT_MODES:
            raise CompressionError(f"unknown gradient mode {self.gradient_mode!r}; known: {', '.join(GRADIENT_MODES)}")
        if self.random_mode not in RANDOM_MODES:
            raise CompressionError(f"unknown random mode {self.random_mode!r}; known: {', '.join(RANDOM_MODES)}")


Scorer = Callable[[nn.Module, dict[str, nn.Module], ScoreContext], dict[str, torch.Tensor]]
SCORERS: Registry[Scorer] = Registry("weight scorer")


@SCORERS.register("magnitude")
def magnitude_scores(model: nn.Module, layers: dict[str, nn.Module], ctx: ScoreContext) -> dict[str, torch.Tensor]:
    """|w| (Han et al., "Learning both weights and connections", NeurIPS 2015)."""
    return {n: m.weight.detach().abs().cpu() for n, m in layers.items()}


@SCORERS.register("gradient")
def gradient_scores(model: nn.Module, layers: dict[str, nn.Module], ctx: ScoreContext) -> dict[str, torch.Tensor]:
    """|w * g| with g = dL/dw (first-order Taylor saliency, ShrinkBench's ``GlobalMagGrad``/``LayerMagGrad``).

    ``ctx.gradient_mode`` ``shrinkbench``: train mode, the first batch only, as
    ``shrinkbench/pruning/utils.py`` ``get_param_gradients``; ``eval``: eval mode, g averaged over
    ``ctx.batches``. Either way the model leaves exactly as it came: buffers (BatchNorm running
    statistics), every module's train/eval flag, ``requires_grad`` and ``.grad`` are restored.
    """
    if not ctx.batches:
        raise CompressionError("gradient pruning needs calibration batches (images and labels); pass --data")
    shrinkbench = ctx.gradient_mode == "shrinkbench"
    batches = list(ctx.batches)[:1] if shrinkbench else list(ctx.batches)
    modes = {m: m.training for m in model.modules()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    model.train(shrinkbench)
    acc = {n: torch.zeros_like(m.weight) for n, m in layers.items()}
    saved = {n: m.weight.requires_grad for n, m in layers.items()}
    for m in layers.values():
        m.weight.requires_grad_(True)
    try:
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            try:
                loss = ctx.loss_fn(model, x, y)
            except ValueError as e:  # train-mode BatchNorm on one value per channel
                raise CompressionError(f"gradient scores in train mode failed ({str(e)[:120]}): use a --batch-size "
                                       "of at least 2, or --gradient-mode eval") from None
            loss.backward()
            for n, m in layers.items():
                if m.weight.grad is not None:
                    acc[n] += m.weight.grad
    finally:
        model.zero_grad(set_to_none=True)
        for n, m in layers.items():
            m.weight.requires_grad_(saved[n])
        with torch.no_grad():
            for n, b in model.named_buffers():
                if n in buffers:
                    b.copy_(buffers[n])
        for m, was in modes.items():
            m.training = was
    k = len(batches)
    return {n: (m.weight.detach() * acc[n] / k).abs().cpu() for n, m in layers.items()}


@SCORERS.register("random")
def random_scores(model: nn.Module, layers: dict[str, nn.Module], ctx: ScoreContext) -> dict[str, torch.Tensor]:
    """uniform(0, 1) per weight from ``ctx.seed``: the same seed gives the same masks."""
    g = torch.Generator().manual_seed(ctx.seed)
    return {n: torch.rand(m.weight.shape, generator=g) for n, m in layers.items()}




@dataclass
class PruneResult:
    masks: dict[str, torch.Tensor]
    report: MaskReport
    method: str
    extra: dict = field(default_factory=dict)


def prune(model: nn.Module, method: str, ratio: float, scope: PruneScope | None = None,
          ctx: ScoreContext | None = None, previous: dict[str, torch.Tensor] | None = None,
          fixed_dense: bool = False, ratio_of: str = PRUNE.ratio_of) -> PruneResult:
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
        ratio_of: ``deployed`` (``ratio`` counts the trunk) or ``shrinkbench`` (the whole model with
            its never-pruned classifier head, as ShrinkBench; see :mod:`.masks`).

    Returns the boolean masks (True = kept) and a report of the ratio reached.
    """
    m = METHODS.get(method)
    ctx = ctx or ScoreContext()
    layers = prunable_layers(model, scope)
    if m.score == "random" and ctx.random_mode == "shrinkbench":
        from toolchain.compress.pruning.bernoulli import bernoulli_masks

        masks = bernoulli_masks(model, layers, ratio, ctx.seed, ratio_of, previous)
        apply_masks(model, masks)
        return PruneResult(masks, report(model, masks, ratio, ratio_of), method)
    keep = keep_exact(model, layers, ratio, fixed_dense, ratio_of)
    scores = SCORERS.get(m.score)(model, layers, ctx)
    if previous:
        for n, mask in previous.items():
            if n in scores:
                scores[n] = scores[n].float().masked_fill(~mask.cpu(), float("-inf"))
    masks = masks_from_scores(scores, keep, m.scope)
    apply_masks(model, masks)
    return PruneResult(masks, report(model, masks, ratio, ratio_of), method)


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
