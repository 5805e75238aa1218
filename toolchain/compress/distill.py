"""Knowledge distillation: losses registered by name, and the teacher/student step as loop hooks.

The teacher is frozen (eval mode, no gradients) and run on the same normalised batch as the
student. Losses read both networks' outputs (deep features; logits of their classification
heads), never model internals. Several losses combine by summing, each with its own weight;
the shared training loop adds the student's own cross-entropy scaled by ``ce_weight``.

Inputs must use the same normalisation for both networks (checked by :func:`check_pair`).

Logits are each network's *own* inference logits (:class:`toolchain.compress.logits.HeadSpec`):
a teacher trained with ArcFace or CosFace gives ``s cos(theta)`` (margin-free), not ``W f + b``;
a student gives the logits of the head it trains with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from toolchain.compress.config import DISTILL
from toolchain.compress.logits import HeadSpec
from toolchain.errors import CompressionError
from toolchain.registry import Registry
from toolchain.train.loop import Hooks


@dataclass
class Outputs:
    """One network's outputs on a batch: deep features (N, D) and head logits (N, C) or None."""

    features: torch.Tensor
    logits: torch.Tensor | None = None


class KDLoss(nn.Module):
    """A distillation loss: ``forward(student: Outputs, teacher: Outputs) -> scalar``."""

    needs_logits = False

    def forward(self, student: Outputs, teacher: Outputs) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


KD_LOSSES: Registry[Callable[..., KDLoss]] = Registry("distillation loss")


@KD_LOSSES.register("hinton")
class HintonKD(KDLoss):
    """Soft-target distillation (Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015).

    ``L = T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``, averaged over the batch; the T^2
    keeps gradient magnitudes independent of T. With weight alpha on this term and
    ``ce_weight = 1 - alpha`` on the hard-label cross-entropy this is the paper's
    ``alpha * T^2 * KL + (1 - alpha) * CE``.

    Worked example: T = 1, teacher logits [0, 0] (p = [.5, .5]), student [ln 3, 0] (q = [.75, .25]):
    ``KL = .5 ln(.5/.75) + .5 ln(.5/.25) = 0.1438``.

    Args:
        temperature: T > 0 (typical 2-8).
    """

    needs_logits = True

    def __init__(self, temperature: float = DISTILL.temperature) -> None:
        super().__init__()
        if not temperature > 0:
            raise CompressionError(f"the distillation temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, student: Outputs, teacher: Outputs) -> torch.Tensor:
        t = self.temperature
        log_q = F.log_softmax(student.logits.float() / t, dim=1)
        log_p = F.log_softmax(teacher.logits.float() / t, dim=1)
        return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True) * t * t


class _FeatureKD(KDLoss):
    """Base of feature distillation: a learned linear projection when student and teacher widths differ."""

    def __init__(self, student_dim: int, teacher_dim: int, seed: int = 0) -> None:
        super().__init__()
        if student_dim == teacher_dim:
            self.projection: nn.Module = nn.Identity()
        else:
            g = torch.Generator().manual_seed(seed)
            lin = nn.Linear(student_dim, teacher_dim, bias=False)
            with torch.no_grad():
                lin.weight.copy_(torch.randn(teacher_dim, student_dim, generator=g) / student_dim ** 0.5)
            self.projection = lin

    def project(self, student: Outputs) -> torch.Tensor:
        return self.projection(student.features.float())


@KD_LOSSES.register("feature-mse")
class FeatureMSE(_FeatureKD):
    """Hint loss on the deep features (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015).

    ``L = mean over batch and dimensions of (P f_s - f_t)^2``, with ``P`` a learned linear map
    (the FitNets regressor) when ``dim f_s != dim f_t``, else the identity.

    Worked example (no projection): f_s = [1, 2], f_t = [3, 2] -> ((1-3)^2 + 0^2) / 2 = 2.
    """

    def forward(self, student: Outputs, teacher: Outputs) -> torch.Tensor:
        return F.mse_loss(self.project(student), teacher.features.float())


@KD_LOSSES.register("feature-cosine")
class FeatureCosine(_FeatureKD):
    """Cosine feature distillation: the student's embedding points where the teacher's does.

    ``L = mean over batch of 1 - cos(P f_s, f_t)``. Verification scores are cosines, so only
    the direction matters; the FitNets hint (Romero et al., ICLR 2015) in cosine form, as used for
    embedding distillation (Yu et al., "Learning Metrics from Teachers: Compact Networks for
    Image Embedding", CVPR 2019).

    Worked example (no projection): f_s = [1, 0], f_t = [1, 1] -> 1 - 1/sqrt(2) = 0.2929.
    """

    def forward(self, student: Outputs, teacher: Outputs) -> torch.Tensor:
        return (1.0 - F.cosine_similarity(self.project(student), teacher.features.float(), dim=1)).mean()


@dataclass
class LossSpec:
    """One loss of a distillation recipe: a name in :data:`KD_LOSSES`, its weight and parameters."""

    name: str
    weight: float = 1.0
    params: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, **({"params": self.params} if self.params else {})}


def parse_losses(items: list[str] | None, alpha: float = DISTILL.alpha, temperature: float = DISTILL.temperature,
                 ce_weight: float | None = None) -> tuple[list[LossSpec], float]:
    """``["hinton", "feature-cosine=0.5"]`` -> loss specs and the cross-entropy weight.

    ``NAME`` or ``NAME=WEIGHT``; Hinton's default weight is ``alpha`` and then CE gets ``1 - alpha``
    (Hinton et al. 2015); without Hinton, CE keeps weight 1 unless ``ce_weight`` is given.

    >>> specs, ce = parse_losses(["hinton", "feature-mse=2"], alpha=0.75)
    >>> [(s.name, s.weight) for s in specs], ce
    ([('hinton', 0.75), ('feature-mse', 2.0)], 0.25)
    """
    from toolchain.errors import CompressionError

    specs = []
    for item in items or ["hinton", "feature-cosine"]:
        name, _, weight = item.partition("=")
        KD_LOSSES.get(name)  # unknown names list the known ones
        try:
            w = float(weight) if weight else (alpha if name == "hinton" else 1.0)
        except ValueError:
            raise CompressionError(f"loss {item!r}: the weight after '=' must be a number") from None
        specs.append(LossSpec(name, w, {"temperature": temperature} if name == "hinton" else None))
    if ce_weight is None:
        ce_weight = round(1.0 - alpha, 6) if any(s.name == "hinton" for s in specs) else 1.0
    return specs, ce_weight


def build_losses(specs: list[LossSpec], student_dim: int, teacher_dim: int, seed: int = 0) -> nn.ModuleDict:
    """Instantiate the recipe's losses (feature losses get the dimensions for their projection)."""
    if not specs:
        raise CompressionError("a distillation recipe needs at least one loss; known: " + ", ".join(KD_LOSSES.names()))
    out = nn.ModuleDict()
    for s in specs:
        cls = KD_LOSSES.get(s.name)
        kwargs = dict(s.params or {})
        if isinstance(cls, type) and issubclass(cls, _FeatureKD):
            kwargs.update(student_dim=student_dim, teacher_dim=teacher_dim, seed=seed)
        if s.name in out:
            raise CompressionError(f"distillation loss {s.name!r} is listed twice")
        out[s.name] = cls(**kwargs)
    return out


def check_pair(teacher_meta: dict[str, Any], student_meta: dict[str, Any]) -> None:
    """Teacher and student must read the same pixels: same channels, input size, channel order, scale, mean, std."""
    t, s = teacher_meta["input"], student_meta["input"]
    defaults = {"channels": 3, "scale": 255.0}
    for key in ("channels", "size", "scale", "mean", "std"):
        tv, sv = t.get(key, defaults.get(key)), s.get(key, defaults.get(key))
        if [float(v) for v in (tv if isinstance(tv, list) else [tv])] != [float(v) for v in (sv if isinstance(sv, list) else [sv])]:
            raise CompressionError(f"teacher and student disagree on input {key} ({tv} vs {sv}): both see "
                                   "the same batch; build the student with the teacher's input size/normalisation")
    if t.get("color", "rgb") != s.get("color", "rgb"):
        raise CompressionError(f"teacher and student disagree on the channel order ({t.get('color')} vs {s.get('color')})")


class DistillHooks(Hooks):
    """Loop hooks: frozen teacher, registered KD losses (summed with weights), CE scaled by ``ce_weight``.

    ``teacher_head`` / ``student_head``: how each network's ``head`` turns features into logits
    (:func:`toolchain.compress.logits.head_of` of the teacher's model.json; the student's training
    config). Default softmax: ``W f + b``.
    """

    def __init__(self, teacher: nn.Module, specs: list[LossSpec], student_dim: int, teacher_dim: int,
                 ce_weight: float = 1.0, seed: int = 0, keep_zeros: dict[str, torch.Tensor] | None = None,
                 teacher_head: HeadSpec | None = None, student_head: HeadSpec | None = None) -> None:
        self.teacher = teacher
        self.teacher_head = teacher_head or HeadSpec()
        self.student_head = student_head or HeadSpec()
        self.keep_zeros = keep_zeros or {}  # masks of an unstructured-pruned student: prune -> distill stays sparse
        self.specs = {s.name: s for s in specs}
        self.losses = build_losses(specs, student_dim, teacher_dim, seed)
        self.ce_weight = float(ce_weight)
        if any(l.needs_logits for l in self.losses.values()) and getattr(teacher, "head", None) is None:
            raise CompressionError("the hinton loss needs the teacher's classification head (a teacher trained with "
                                   "`deploy train` has one); use --loss feature-cosine or feature-mse instead")
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher.eval()

    def setup(self, model: nn.Module, device: torch.device) -> None:
        self.teacher.to(device).eval()
        self.losses.to(device)
        if "hinton" in self.losses and model.head is not None and self.teacher.head is not None \
                and model.head.out_features != self.teacher.head.out_features:
            raise CompressionError(f"the teacher's head has {self.teacher.head.out_features} classes but the data has "
                                   f"{model.head.out_features}: distil on the teacher's training subjects, or use a "
                                   "feature loss")

    def extra_parameters(self) -> Iterable[nn.Parameter]:
        return list(self.losses.parameters())

    def before_epoch(self, model: nn.Module, epoch: int) -> None:
        self.teacher.eval()  # the loop puts its own net in train mode; the teacher stays frozen

    def extra_loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, features: torch.Tensor,
                   logits: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            tf = self.teacher(images)
            tl = self.teacher_head.logits(tf, self.teacher.head) if self.teacher.head is not None else None
        needs = any(l.needs_logits for l in self.losses.values())
        s = Outputs(features, self.student_head.logits(features, model.head) if needs else None)
        t = Outputs(tf, tl)
        return {f"kd_{name}": self.specs[name].weight * loss(s, t) for name, loss in self.losses.items()}

    def after_step(self, model: nn.Module) -> None:
        if self.keep_zeros:
            from toolchain.compress.pruning.masks import apply_masks

            apply_masks(model, self.keep_zeros)

    # No state_dict: the projections are extra_parameters, which the loop checkpoints and restores itself.
