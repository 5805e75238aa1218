"""KD losses equal hand-computed values; projections learn; the teacher stays frozen."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from toolchain.compress.distill import KD_LOSSES, DistillHooks, LossSpec, Outputs, build_losses, check_pair
from toolchain.errors import CompressionError


def test_registered_losses_have_formula_and_paper():
    assert KD_LOSSES.names() == ["feature-cosine", "feature-mse", "hinton"]
    for name in KD_LOSSES:
        doc = KD_LOSSES.get(name).__doc__
        assert "L = " in doc and ("20" in doc), name  # a formula and a year of publication


def test_hinton_equals_hand_computed_kl():
    loss = KD_LOSSES.get("hinton")(temperature=1.0)
    s = Outputs(torch.zeros(1, 2), torch.tensor([[math.log(3.0), 0.0]]))
    t = Outputs(torch.zeros(1, 2), torch.tensor([[0.0, 0.0]]))
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert float(loss(s, t)) == pytest.approx(expected, abs=1e-6)
    assert float(loss(t, t)) == pytest.approx(0.0, abs=1e-7)


def test_hinton_scales_with_temperature_squared():
    s = Outputs(torch.zeros(2, 3), torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]))
    t = Outputs(torch.zeros(2, 3), torch.tensor([[0.0, 1.0, 0.0], [3.0, 0.0, 0.0]]))
    T = 2.0
    p = torch.softmax(t.logits / T, 1)
    q = torch.softmax(s.logits / T, 1)
    by_hand = float((p * (p.log() - q.log())).sum(1).mean() * T * T)
    assert float(KD_LOSSES.get("hinton")(temperature=T)(s, t)) == pytest.approx(by_hand, rel=1e-5)
    with pytest.raises(CompressionError):
        KD_LOSSES.get("hinton")(temperature=0)


def test_feature_losses_hand_computed_without_projection():
    mse = KD_LOSSES.get("feature-mse")(student_dim=2, teacher_dim=2)
    cos = KD_LOSSES.get("feature-cosine")(student_dim=2, teacher_dim=2)
    assert isinstance(mse.projection, nn.Identity)
    assert float(mse(Outputs(torch.tensor([[1.0, 2.0]])), Outputs(torch.tensor([[3.0, 2.0]])))) == pytest.approx(2.0)
    assert float(cos(Outputs(torch.tensor([[1.0, 0.0]])), Outputs(torch.tensor([[1.0, 1.0]])))) == \
        pytest.approx(1 - 1 / math.sqrt(2), abs=1e-6)


def test_projection_is_learned_when_dimensions_differ():
    losses = build_losses([LossSpec("feature-mse"), LossSpec("feature-cosine")], student_dim=3, teacher_dim=5)
    for l in losses.values():
        assert isinstance(l.projection, nn.Linear) and l.projection.weight.shape == (5, 3)
    s = Outputs(torch.randn(4, 3))
    t = Outputs(torch.randn(4, 5))
    total = sum(l(s, t) for l in losses.values())
    total.backward()
    assert all(l.projection.weight.grad is not None and l.projection.weight.grad.abs().sum() > 0 for l in losses.values())


class _Tiny(nn.Module):
    def __init__(self, dim: int, classes: int = 3) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(12, dim))
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        return self.trunk(x)


def test_hooks_freeze_teacher_and_return_weighted_named_losses():
    torch.manual_seed(0)
    teacher, student = _Tiny(6), _Tiny(4)
    hooks = DistillHooks(teacher, [LossSpec("hinton", 0.5, {"temperature": 2.0}), LossSpec("feature-cosine", 2.0)],
                         student_dim=4, teacher_dim=6, ce_weight=0.5)
    hooks.setup(student, torch.device("cpu"))
    x = torch.randn(5, 1, 3, 4)
    feats = student(x)
    out = hooks.extra_loss(student, x, torch.zeros(5, dtype=torch.long), feats, student.head(feats))
    assert set(out) == {"kd_hinton", "kd_feature-cosine"}
    with torch.no_grad():
        tf = teacher(x)
        plain = KD_LOSSES.get("feature-cosine")(student_dim=4, teacher_dim=6)
        plain.load_state_dict(hooks.losses["feature-cosine"].state_dict())
        assert float(out["kd_feature-cosine"]) == pytest.approx(2.0 * float(plain(Outputs(feats), Outputs(tf))))
    sum(out.values()).backward()
    assert all(p.grad is None for p in teacher.parameters()) and not teacher.training
    assert student.trunk[1].weight.grad is not None
    assert len(list(hooks.extra_parameters())) == 1  # the cosine loss's projection


def test_hinton_needs_a_teacher_head_and_matching_classes():
    teacher = _Tiny(4)
    teacher.head = None
    with pytest.raises(CompressionError, match="head"):
        DistillHooks(teacher, [LossSpec("hinton")], 4, 4)
    hooks = DistillHooks(_Tiny(4, classes=3), [LossSpec("hinton")], 4, 4)
    with pytest.raises(CompressionError, match="classes"):
        hooks.setup(_Tiny(4, classes=5), torch.device("cpu"))


def test_pair_must_share_input():
    a = {"input": {"size": [64, 64], "mean": [0.5] * 3, "std": [0.2] * 3}}
    b = {"input": {"size": [32, 32], "mean": [0.5] * 3, "std": [0.2] * 3}}
    check_pair(a, a)
    with pytest.raises(CompressionError, match="size"):
        check_pair(a, b)
    gray = {"input": {"size": [64, 64], "channels": 1, "color": "gray", "mean": [0.5], "std": [0.2]}}
    with pytest.raises(CompressionError, match="channels"):  # a 1-channel teacher cannot teach an RGB student
        check_pair(gray, a)
    bgr = {"input": {**a["input"], "color": "bgr"}}
    with pytest.raises(CompressionError, match="channel order"):
        check_pair(a, bgr)
