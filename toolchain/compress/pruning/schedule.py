"""Prune -> fine-tune -> make permanent, through the shared training loop's hooks.

Lifecycle (as coremltools' ``prepare -> step -> finalize``): masks are computed at the epochs
of the schedule (:meth:`PruneHooks.before_epoch`), re-applied after every optimizer step so
pruned weights stay zero while the rest fine-tune (:meth:`PruneHooks.after_step`), and the
final :func:`finalize` leaves plain dense tensors holding exact zeros (nothing to strip: masks
are never stored in the model, only in the hook).

Schedules: ``one-shot`` prunes to the target before epoch 0; ``iterative`` reaches it in
``steps`` geometric steps spread over the first ``ramp_fraction`` of the epochs (e.g. ratio 8,
3 steps, 6 epochs -> 2x before epoch 0, 4x before epoch 1, 8x before epoch 2; epochs 2-5 fine-tune
at 8x).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from toolchain.compress.config import PRUNE
from toolchain.compress.logits import LossFn
from toolchain.compress.pruning.masks import MaskReport, PruneScope, apply_masks, report
from toolchain.compress.pruning.unstructured import PruneResult, ScoreContext, prune, ratio_schedule
from toolchain.errors import CompressionError
from toolchain.registry import Registry
from toolchain.train.loop import Hooks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """Which ratio to prune to before which (0-based) epoch."""

    steps: dict[int, float]

    @property
    def final_epoch(self) -> int:
        return max(self.steps)


def _one_shot(target: float, epochs: int, steps: int = 1, ramp_fraction: float = 0.5) -> Schedule:
    return Schedule({0: float(target)})


def _iterative(target: float, epochs: int, steps: int = 3, ramp_fraction: float = 0.5) -> Schedule:
    ratios = ratio_schedule(target, steps)
    span = max(1, int(round(epochs * ramp_fraction)))
    if steps > epochs:
        raise CompressionError(f"an iterative schedule of {steps} steps needs at least {steps} fine-tuning epochs, "
                               f"got {epochs}; raise --finetune-epochs or lower --steps")
    at = sorted({min(epochs - 1, int(i * span / steps)) for i in range(steps)})
    if len(at) < steps:  # short runs: one step per epoch
        at = list(range(steps))
    return Schedule(dict(zip(at, ratios)))


SCHEDULES: Registry[Any] = Registry("pruning schedule")
SCHEDULES.add("one-shot", _one_shot)
SCHEDULES.add("iterative", _iterative)


class PruneHooks(Hooks):
    """Training-loop hooks that prune on a schedule and keep pruned weights at zero.

    ``trained_loss_fn``: the loss of the head as fine-tuning trains it (``--head``, which may not be
    the parent's). The first step scores with ``ctx.loss_fn`` (the parent's head, not yet trained);
    every later step comes after training has moved the head, so it scores with ``trained_loss_fn``
    when given.
    """

    def __init__(self, method: str, schedule: Schedule, scope: PruneScope | None = None,
                 ctx: ScoreContext | None = None, fixed_dense: bool = True, ratio_of: str = PRUNE.ratio_of,
                 trained_loss_fn: LossFn | None = None) -> None:
        self.method, self.schedule, self.scope, self.ctx = method, schedule, scope, ctx or ScoreContext()
        self.trained_loss_fn = trained_loss_fn
        self.ratio_of = ratio_of  # which parameters the schedule's ratios count (masks.RATIO_DEFINITIONS)
        self.fixed_dense = fixed_dense  # fine-tuning follows: biases that are 0 now will not stay 0
        self.masks: dict[str, torch.Tensor] = {}
        self.results: list[dict[str, Any]] = []

    def prune_now(self, model: nn.Module, ratio: float, epoch: int | None = None) -> PruneResult:
        device = next(model.parameters()).device
        ctx = self.ctx
        if self.masks and self.trained_loss_fn is not None:  # an earlier step, then training: score the trained head
            ctx = dataclasses.replace(ctx, loss_fn=self.trained_loss_fn)
        if device.type != "cpu" and ctx.batches:
            ctx = dataclasses.replace(ctx, batches=[(x.to(device), y.to(device)) for x, y in ctx.batches])
        res = prune(model, self.method, ratio, self.scope, ctx, previous=self.masks or None,
                    fixed_dense=self.fixed_dense, ratio_of=self.ratio_of)
        self.masks = {k: v.to(device) for k, v in res.masks.items()}
        self.results.append({"epoch": epoch, **res.report.to_json(), "layer_sparsity": None})
        log.info("pruned to ratio %.3f (target %.3g) before epoch %s", res.report.ratio_reached, ratio, epoch)
        return res

    def before_epoch(self, model: nn.Module, epoch: int) -> None:
        if epoch in self.schedule.steps:
            self.prune_now(model, self.schedule.steps[epoch], epoch)

    def after_step(self, model: nn.Module) -> None:
        if self.masks:
            apply_masks(model, self.masks)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"mask.{k}": v.to(torch.uint8).cpu() for k, v in self.masks.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.masks = {k[5:]: v.bool() for k, v in state.items() if k.startswith("mask.")}


def finalize(model: nn.Module, masks: dict[str, torch.Tensor], ratio_target: float,
             ratio_of: str = PRUNE.ratio_of) -> MaskReport:
    """Make pruning permanent: zero the masked weights one last time and report what was reached."""
    if not masks:
        raise CompressionError("no masks to finalize: the schedule never pruned (is the first step past the last epoch?)")
    masks = {k: v.cpu() for k, v in masks.items()}
    apply_masks(model, masks)
    return report(model, masks, ratio_target, ratio_of)
