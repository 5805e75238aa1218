"""Classification heads for subject-classification training, by name.

Every head uses the model's own ``FeatureModel.head`` (an ``nn.Linear(D, C)``), so a trained
bundle stores it like any other weight; margin heads read only its weight (the bias is kept
at zero and frozen). A head maps ``(features (N, D), labels (N,), linear)`` to the logits the
cross-entropy is computed on. At inference the labels are unknown: ``labels=None`` gives the
margin-free logits (for accuracy).

* ``softmax``: ``logits = W f + b``.
* ``arcface`` (additive angular margin; Deng et al., "ArcFace", CVPR 2019):
  ``logit_j = s cos(theta_j)`` for ``j != y`` and ``s cos(theta_y + m)`` for the true class,
  where ``cos(theta_j) = <W_j / |W_j|, f / |f|>``. Where ``theta_y + m > pi`` the target
  logit becomes ``s (cos(theta_y) - m sin(m))`` so it stays monotone in ``theta_y``.
* ``cosface`` (additive cosine margin; Wang et al., "CosFace", CVPR 2018):
  ``s (cos(theta_y) - m)`` for the true class.

Worked example (arcface, s = 1, m = 0.5): a feature at 0 rad from its class centre has target
logit cos(0.5) = 0.878 instead of 1, so training must pull features closer than a softmax would.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from toolchain.registry import Registry

HeadFn = Callable[[torch.Tensor, "torch.Tensor | None", nn.Linear, float, float], torch.Tensor]

#: name -> fn(features, labels or None, linear, margin, scale) -> logits
HEADS: Registry[HeadFn] = Registry("classification head")

#: heads whose logits ignore the Linear's bias (it is zeroed and frozen)
MARGIN_HEADS = ("arcface", "cosface")


@HEADS.register("softmax")
def softmax_head(features: torch.Tensor, labels: torch.Tensor | None, linear: nn.Linear,
                 margin: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    return linear(features)


def _cosines(features: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    return F.linear(F.normalize(features.float(), dim=1), F.normalize(linear.weight.float(), dim=1)).clamp(-1.0, 1.0)


@HEADS.register("arcface")
def arcface_head(features: torch.Tensor, labels: torch.Tensor | None, linear: nn.Linear,
                 margin: float = 0.5, scale: float = 30.0) -> torch.Tensor:
    cos = _cosines(features, linear)
    if labels is None:
        return scale * cos
    cos_y = cos.gather(1, labels.view(-1, 1))
    sin_y = (1.0 - cos_y * cos_y).clamp_min(1e-7).sqrt()
    target = cos_y * math.cos(margin) - sin_y * math.sin(margin)  # cos(theta + m)
    # beyond theta = pi - m, cos(theta + m) would rise again: use a linear penalty instead
    target = torch.where(cos_y > math.cos(math.pi - margin), target, cos_y - math.sin(math.pi - margin) * margin)
    return scale * cos.scatter(1, labels.view(-1, 1), target)


@HEADS.register("cosface")
def cosface_head(features: torch.Tensor, labels: torch.Tensor | None, linear: nn.Linear,
                 margin: float = 0.35, scale: float = 30.0) -> torch.Tensor:
    cos = _cosines(features, linear)
    if labels is None:
        return scale * cos
    return scale * (cos - margin * F.one_hot(labels, cos.shape[1]).to(cos.dtype))
