"""Width (channel/filter) pruning that really shrinks the network, with Torch-Pruning's dependency graph.

Torch-Pruning (Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023) groups every
coupled channel (a residual sum's inputs, a BatchNorm after its conv, the next layer's inputs)
so removing a channel keeps all of them consistent. Here an *importance* (registered by name)
scores channel groups; the channel pruning ratio is solved by bisection so the network hits a
target **parameter ratio** (``params_before / params_after``) or **FLOP ratio**; the scope is
``global`` (one ranking over all groups, so layers shrink unevenly) or ``uniform`` (the same
fraction of every layer: a width multiplier).

The result is an ordinary smaller ``nn.Module``: ``save_bundle`` records its widths in
``model.json`` (``layer_shapes``) and it rebuilds from safetensors with no pickles.
The feature layer of the trunk (its last ``Linear``, if any) keeps its output width; the
training ``head`` follows the trunk's new feature width.

Worked example: ResNet50 at parameter ratio 2 with uniform scope needs a channel pruning
ratio of about 0.3 (conv parameters scale with width^2: 0.7^2 ~ 0.5).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from toolchain.inputspec import chw
from toolchain.compress.config import IMPORTANCES, WidthConfig
from toolchain.compress.logits import HeadSpec, LossFn, head_loss
from toolchain.compress.measure import count_flops
from toolchain.compress.pruning.masks import deployed
from toolchain.errors import CompressionError

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


class SeededRandomImportance:
    """Uniform random channel scores from a seed (Torch-Pruning's own draws from the global RNG)."""

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, group: Any, **kwargs: Any) -> torch.Tensor:
        _, idxs = group[0]
        return torch.rand(len(idxs), generator=self.generator)


def _tp():
    import torch_pruning as tp

    return tp



class _WithHead(nn.Module):
    """trunk (+ head) in one forward, so the dependency graph also trims the head's inputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = deployed(self.model)(x)
        head = getattr(self.model, "head", None)
        return head(f) if head is not None else f


def _cost(model: nn.Module, target: str, input_size: int) -> int:
    if target == "params":
        return sum(p.numel() for p in deployed(model).parameters())
    return count_flops(model, input_size)[0]


def _taylor_grads(model: nn.Module, batches: Sequence[Batch], loss_fn: LossFn) -> None:
    """Leave in ``.grad`` the gradient of ``loss_fn`` (the head's own loss) averaged over ``batches``."""
    if not batches:
        raise CompressionError("taylor importance needs calibration batches (images and labels); pass --data")
    if getattr(model, "head", None) is None:
        raise CompressionError("taylor importance needs a classification head on the model (from `deploy train`)")
    was = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    for x, y in batches:
        (loss_fn(model, x, y) / len(batches)).backward()
    model.train(was)


def prune_width_once(model: nn.Module, channel_ratio: float, cfg: WidthConfig, input_size: int,
                     batches: Sequence[Batch] = (), loss_fn: LossFn | None = None) -> nn.Module:
    """A pruned deep copy of ``model`` with ``channel_ratio`` (0..1) of the prunable channels removed.

    ``loss_fn``: what ``taylor`` importance differentiates, the loss of the head's own logits
    (:func:`toolchain.compress.logits.head_loss`; default: a softmax head's ``CE(W f + b)``).
    """
    tp = _tp()
    m = copy.deepcopy(model)
    if channel_ratio <= 0:
        return m
    wrapper = _WithHead(m)
    net = deployed(m)
    ignored: list[nn.Module] = []
    linears = [mod for mod in net.modules() if isinstance(mod, nn.Linear)]
    if linears:
        ignored.append(linears[-1])
    if getattr(m, "head", None) is not None:
        ignored.append(m.head)
    if cfg.importance == "taylor":
        _taylor_grads(m, batches, loss_fn or head_loss(HeadSpec()))
    example = torch.zeros(1, *chw(input_size))
    was = m.training
    m.eval()
    pruner = tp.pruner.BasePruner(wrapper, example, importance=IMPORTANCES.get(cfg.importance)(cfg.seed),
                                  global_pruning=cfg.scope == "global", pruning_ratio=float(channel_ratio),
                                  max_pruning_ratio=cfg.max_layer_pruning, ignored_layers=ignored,
                                  round_to=cfg.round_to)
    pruner.step()
    m.zero_grad(set_to_none=True)
    m.train(was)
    return m


@dataclass
class WidthResult:
    model: nn.Module
    channel_ratio: float
    ratio_reached: float
    before: int
    after: int
    trials: list[dict[str, float]] = field(default_factory=list)

    def to_json(self, cfg: WidthConfig) -> dict[str, Any]:
        return {"config": cfg.to_json(), "channel_pruning_ratio": round(self.channel_ratio, 6),
                f"{cfg.target}_before": self.before, f"{cfg.target}_after": self.after,
                "ratio_reached": round(self.ratio_reached, 4), "bisection_trials": len(self.trials)}


def prune_width(model: nn.Module, cfg: WidthConfig, input_size: int, batches: Sequence[Batch] = (),
                max_trials: int = 14, loss_fn: LossFn | None = None) -> WidthResult:
    """Solve the channel pruning ratio that reaches ``cfg.ratio`` of parameters or FLOPs; return the pruned copy.

    ``batches`` and ``loss_fn`` feed ``taylor`` importance (:func:`prune_width_once`).

    Bisection on the channel ratio ``r`` in ``[0, max_layer_pruning]``: cost falls as ``r`` grows.
    Stops within ``cfg.tolerance`` (relative) or after ``max_trials`` with the closest result at or
    past the target.
    """
    before = _cost(model, cfg.target, input_size)
    if cfg.ratio == 1.0:
        return WidthResult(copy.deepcopy(model), 0.0, 1.0, before, before)
    lo, hi = 0.0, cfg.max_layer_pruning
    best: tuple[float, nn.Module, int] | None = None
    trials: list[dict[str, float]] = []
    top = prune_width_once(model, hi, cfg, input_size, batches, loss_fn)
    top_cost = _cost(top, cfg.target, input_size)
    if before / top_cost < cfg.ratio * (1 - cfg.tolerance):
        raise CompressionError(f"{cfg.target} ratio {cfg.ratio:g} is out of reach for width pruning: removing "
                               f"{cfg.max_layer_pruning:.0%} of channels gives {before / top_cost:.2f}x; raise "
                               "max_layer_pruning, or combine with depth pruning")
    best = (hi, top, top_cost)
    for _ in range(max_trials):
        mid = (lo + hi) / 2
        cand = prune_width_once(model, mid, cfg, input_size, batches, loss_fn)
        cost = _cost(cand, cfg.target, input_size)
        reached = before / cost
        trials.append({"channel_ratio": mid, "ratio": reached})
        log.debug("width pruning trial r=%.4f -> %.4fx", mid, reached)
        if reached >= cfg.ratio:
            hi = mid
            best = (mid, cand, cost)
        else:
            lo = mid
        if abs(reached / cfg.ratio - 1) <= cfg.tolerance and reached >= cfg.ratio * (1 - cfg.tolerance):
            best = (mid, cand, cost)
            break
    r, pruned, cost = best
    return WidthResult(pruned, r, before / cost, before, cost, trials)


def width_multiplier(model: nn.Module, multiplier: float, input_size: int, importance: str = "l1",
                     seed: int = 0, round_to: int | None = None) -> nn.Module:
    """A copy with every prunable layer at ``multiplier`` (0..1] of its channels (MobileNet's alpha).

    The feature layer keeps its width. Residual channels shrink together (dependency graph).
    """
    if not 0.0 < multiplier <= 1.0:
        raise CompressionError(f"a width multiplier must be in (0, 1], got {multiplier}")
    cfg = WidthConfig(ratio=1.0, importance=importance, scope="uniform", max_layer_pruning=0.99,
                      round_to=round_to, seed=seed)
    return prune_width_once(model, 1.0 - multiplier, cfg, input_size)
