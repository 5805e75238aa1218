"""ShrinkBench's random pruning (``--method random --random-mode shrinkbench``): every prunable weight *and
bias* is kept with probability p, independently.

ShrinkBench (github.com/JJGO/shrinkbench) ``strategies/random.py``::

    def random_mask(tensor, fraction):
        idx = np.random.uniform(0, 1, size=tensor.shape) > fraction   # line 13
        mask = np.ones_like(tensor); mask[idx] = 0.0                     # lines 14-15

applied by ``RandomPruning.model_masks`` (lines 21-24) to ``self.params()``, i.e. every parameter of every
prunable module (``pruning/abstract.py`` ``params``, line 74: ``get_params(module)``, weight and bias), with
``p = self.fraction`` from ``pruning/utils.py`` ``fraction_to_keep`` (lines 141-164): ``(total / ratio -
nonprunable) / prunable``, where ``prunable`` counts those weights and biases and every other parameter is
counted non-zero. So the ratio reached is the target only in expectation, and a layer can lose every weight.

Here p is the same formula over the parameters ``ratio_of`` counts (the deployed trunk, or the whole model with
its head as ShrinkBench); the uniform draws come from a ``torch.Generator`` seeded with ``seed`` (ShrinkBench:
NumPy's global generator, seeded by ``experiment/base.py`` line 76), one tensor at a time in module order, weight
before bias. The same seed therefore gives nested masks at growing ratios (u <= p2 implies u <= p1 for p2 < p1),
and an iterative schedule's earlier zeros are kept zero as well (``previous``).

The default ``--random-mode exact`` keeps an exact seeded count per layer (:mod:`.unstructured`): the ratio is
hit to one weight and biases are never pruned.

Worked example: 12 prunable weights + 4 other parameters (16), ratio 2: p = (16 / 2 - 4) / 12 = 1/3, so each
of the 12 survives with probability 1/3 (4 expected), the other 4 always.
"""

from __future__ import annotations

import torch
from torch import nn

from toolchain.compress.pruning.masks import BIAS, count_parameters, shrinkbench_size
from toolchain.errors import CompressionError


def tensors(layers: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Mask key -> parameter: ``name`` for a layer's weight, ``name + BIAS`` for its bias (when it has one)."""
    out: dict[str, torch.Tensor] = {}
    for name, m in layers.items():
        out[name] = m.weight
        if getattr(m, "bias", None) is not None:
            out[name + BIAS] = m.bias
    return out


def keep_probability(model: nn.Module, layers: dict[str, nn.Module], ratio: float, ratio_of: str) -> float:
    """ShrinkBench's ``fraction_to_keep`` with the prunable layers' weights and biases as the prunable part.

    >>> net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))  # prunable: 12 weights + 4 biases; 8 other: 24
    >>> keep_probability(net, {"0": net[0]}, 2.0, "deployed")
    0.25
    """
    total = shrinkbench_size(model)[0] if ratio_of == "shrinkbench" else count_parameters(model)[0]
    prunable = sum(t.numel() for t in tensors(layers).values())
    p = (total / ratio - (total - prunable)) / prunable
    if not 0.0 < p <= 1.0:
        raise CompressionError(f"ratio {ratio:g} is out of reach for random pruning: {total - prunable:,} of "
                               f"{total:,} parameters are not prunable (ShrinkBench's fraction_to_keep gives "
                               f"{p:.4g}, not in (0, 1])")
    return p


def bernoulli_masks(model: nn.Module, layers: dict[str, nn.Module], ratio: float, seed: int, ratio_of: str,
                    previous: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Masks (True = kept) keeping each weight and bias of ``layers`` with ShrinkBench's probability."""
    p = keep_probability(model, layers, ratio, ratio_of)
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for key, t in tensors(layers).items():
        keep = torch.rand(t.shape, generator=g) <= p  # ShrinkBench zeroes u > fraction
        if previous and key in previous:
            keep &= previous[key].cpu().bool()
        masks[key] = keep
    return masks
