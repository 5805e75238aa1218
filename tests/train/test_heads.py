from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from toolchain.train.heads import HEADS


@pytest.mark.parametrize("name", HEADS.names())
def test_heads_give_one_logit_per_class(name):
    lin = nn.Linear(4, 3)
    f, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    assert HEADS.get(name)(f, y, lin, 0.3, 10.0).shape == (5, 3)
    assert HEADS.get(name)(f, None, lin, 0.3, 10.0).shape == (5, 3)


@pytest.mark.parametrize("name", ["arcface", "cosface"])
def test_margin_lowers_only_the_target_logit(name):
    lin = nn.Linear(2, 2, bias=True)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    f = torch.tensor([[math.cos(0.3), math.sin(0.3)]])  # 0.3 rad from class 0
    out = HEADS.get(name)(f, torch.tensor([0]), lin, 0.5, 2.0)
    want0 = 2 * (math.cos(0.8) if name == "arcface" else math.cos(0.3) - 0.5)
    assert out[0, 0].item() == pytest.approx(want0, abs=1e-5)
    assert out[0, 1].item() == pytest.approx(2 * math.sin(0.3), abs=1e-5)


def test_arcface_stays_monotone_beyond_pi_minus_m():
    lin = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0]]))
    vals = [HEADS.get("arcface")(torch.tensor([[math.cos(t), math.sin(t)]]), torch.tensor([0]), lin, 0.5, 1.0).item()
            for t in (2.0, 2.6, 2.8, 3.1)]
    assert vals == sorted(vals, reverse=True)
