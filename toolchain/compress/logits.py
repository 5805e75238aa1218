"""Which logits a model's classification head gives at inference: what KD and gradient scores read.

A bundle trained with a margin head (``arcface``, ``cosface``; :mod:`toolchain.train.heads`) was
trained on *scaled cosine* logits, not on ``W f + b``: its inference logits are
``s cos(theta_j) = s <W_j / |W_j|, f / |f|>`` (the margin is only added to the true class during
training, where the label is known). Reading such a head as a plain Linear gives logits of a
different scale and a different ranking (``|W_j|`` and the zeroed bias differ per class), so a
Hinton soft target made from them is not the teacher's distribution.

Worked example: features f = [3, 4] (|f| = 5), head rows W_0 = [1, 0], W_1 = [0, 2], s = 30:
``W f`` = [3, 8], but the arcface logits are ``30 * [3/5, 8/10]`` = [18, 24].

Where the head is recorded: ``provenance.classification_head`` (written by ``deploy prune`` and
``deploy distill``, carried over when a bundle is compressed without training), else the
training config (``provenance.training.config``: ``head``, ``margin``, ``scale``, written by
``deploy train``), else ``softmax``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: ``loss_fn(model, images, labels) -> scalar``: what gradient and Taylor scores differentiate.
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class HeadSpec:
    """A classification head by name (:data:`toolchain.train.heads.HEADS`) with its margin and scale."""

    name: str = "softmax"
    margin: float = 0.0
    scale: float = 1.0

    def logits(self, features: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
        """Inference (margin-free) logits: ``W f + b`` for softmax, ``s cos(theta)`` for margin heads."""
        from toolchain.train.heads import HEADS

        return HEADS.get(self.name)(features, None, linear, self.margin, self.scale)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "margin": self.margin, "scale": self.scale}

    @classmethod
    def from_config(cls, cfg: Any) -> HeadSpec:
        """The head of a :class:`~toolchain.train.config.TrainConfig` (or its JSON)."""
        get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
        return cls(str(get("head", "softmax") or "softmax"), float(get("margin", 0.0) or 0.0),
                   float(get("scale", 1.0) or 1.0))


def head_of(meta: dict[str, Any]) -> HeadSpec:
    """The classification head a bundle's model.json says its ``head`` was trained with (module docstring)."""
    prov = meta.get("provenance") or {}
    recorded = prov.get("classification_head")
    if isinstance(recorded, dict) and recorded.get("name"):
        return HeadSpec(str(recorded["name"]), float(recorded.get("margin", 0.0)), float(recorded.get("scale", 1.0)))
    cfg = (prov.get("training") or {}).get("config") or {}
    if cfg.get("head"):
        return HeadSpec.from_config(cfg)
    return HeadSpec()


def head_loss(spec: HeadSpec) -> LossFn:
    """``loss_fn(model, images, labels)``: cross-entropy of the head's inference logits (gradient scores).

    For a softmax head this is ``CE(W f + b)``, ShrinkBench's ``nn.CrossEntropyLoss()`` on the model's output.
    """
    import torch.nn.functional as F

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(spec.logits(model(x), model.head), y)

    return loss
