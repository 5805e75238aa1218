"""Unstructured pruning masks: which weights may be pruned, how many to keep, and applying them.

**Compression ratio**, ``total parameters / non-zero parameters`` (Blalock et al., "What is the
state of neural network pruning?", MLSys 2020), in two definitions (:data:`RATIO_DEFINITIONS`):

* ``deployed`` (the default, ``compression_deployed``): of the network that ships, the trunk;
  the training-only classification ``head`` is not counted.
* ``shrinkbench`` (``compression_shrinkbench``): of the whole model, classification head
  included, as ShrinkBench's ``metrics/size.py`` ``model_size`` counts every
  ``model.parameters()``. A 550-subject head on ResNet50 holds 1.1 M parameters: the
  deployed 8x is about 6x by this count.

**What is prunable.** :func:`prunable_layers` only looks inside the trunk, so the training
``head`` is never pruned (as ShrinkBench's ``is_classifier`` module). By default
(``exclude_feature_head=True``) the trunk's last ``Linear``, the embedding (feature) layer, stays
dense too. ShrinkBench's ``pruning/vision.py`` ``can_prune`` spares only modules marked
``is_classifier`` and prunes every other ``Linear`` and ``Conv2d``, embedding layer included: for
ShrinkBench's exact prunable set pass ``--prune-feature-head`` (``exclude_feature_head=False``).
A second difference: ShrinkBench's prunable modules lose weights *and biases*; here only the
weights of conv/linear layers are prunable (their biases count as non-prunable). That changes
nothing while every prunable layer is bias-free: ResNet convolutions are, and the embedding
Linear, which has a bias, is excluded by default; with ``--prune-feature-head`` its bias stays
dense where ShrinkBench would prune it.

To hit a ShrinkBench ratio, :func:`keep_exact` uses ShrinkBench's ``pruning/utils.py``
``fraction_to_keep`` (:func:`fraction_to_keep`): every non-prunable parameter (head included)
counts as non-zero, and the prunable weights keep ``fraction = (total / ratio - nonprunable) /
prunable`` of themselves.

**Solving the keep count.** To reach ``ratio`` the prunable weights may keep
``K = total / ratio - fixed`` non-zeros, where ``fixed`` counts every parameter that is not a
prunable weight. *Global* scope keeps the K best-scored weights over all prunable layers;
*layer* scope keeps the same fraction ``K / prunable`` of every layer.

Worked example: a net with prunable weights of 8 and 4 entries and 4 fixed non-zero
parameters (total 16). Ratio 2 -> 8 non-zeros -> K = 8 - 4 = 4 prunable weights kept: globally the 4 best
of the 12; per layer 4/12 = 1/3 of each, i.e. round(8/3) = 3 and round(4/3) = 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn

# RATIO_DEFINITIONS is re-exported from its light home
from toolchain.compress.config import ratio_problem
from toolchain.compress.config import PRUNE, RATIO_DEFINITIONS
from toolchain.errors import CompressionError


_TYPES: dict[str, type[nn.Module]] = {"Conv2d": nn.Conv2d, "Linear": nn.Linear, "Conv1d": nn.Conv1d}
#: A mask key ``NAME + BIAS`` masks that layer's bias (only ShrinkBench's random mode prunes biases; ``bernoulli.py``)
BIAS = "#bias"


@dataclass
class PruneScope:
    """What may be pruned: conv and linear weights, minus exclusions.

    Args:
        include_types: module type names whose ``weight`` is prunable (``Conv2d``, ``Linear``, ``Conv1d``).
        exclude_names: module names (or prefixes ending in ``.``) never pruned.
        exclude_types: module type names never pruned.
        exclude_feature_head: leave the trunk's last ``Linear`` (the embedding layer, if any)
            unpruned (default). The training ``head`` is never pruned, as ShrinkBench's
            ``is_classifier`` module; ShrinkBench does prune the embedding layer, so ``False``
            (``--prune-feature-head``) gives its prunable set (module docstring).
    """

    include_types: tuple[str, ...] = ("Conv2d", "Linear")
    exclude_names: tuple[str, ...] = ()
    exclude_types: tuple[str, ...] = ()
    exclude_feature_head: bool = True

    def __post_init__(self) -> None:
        for t in (*self.include_types, *self.exclude_types):
            if t not in _TYPES:
                raise CompressionError(f"unknown layer type {t!r} in the pruning scope; known: {', '.join(sorted(_TYPES))}")

    def to_json(self) -> dict:
        return {"include_types": list(self.include_types), "exclude_names": list(self.exclude_names),
                "exclude_types": list(self.exclude_types), "exclude_feature_head": self.exclude_feature_head}


def deployed(model: nn.Module) -> nn.Module:
    """The part of a model that ships: a FeatureModel's trunk, or the module itself."""
    return getattr(model, "trunk", model)


def prunable_layers(model: nn.Module, scope: PruneScope | None = None) -> dict[str, nn.Module]:
    """Name -> module of every layer whose ``weight`` the scope allows pruning, in module order.

    Names are relative to ``deployed(model)`` (so ``layer1.0.conv1``, as in model.json).
    """
    scope = scope or PruneScope()
    net = deployed(model)
    inc = tuple(_TYPES[t] for t in scope.include_types)
    exc = tuple(_TYPES[t] for t in scope.exclude_types)
    linears = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    head = linears[-1] if (scope.exclude_feature_head and linears) else None
    out: dict[str, nn.Module] = {}
    for name, m in net.named_modules():
        if not isinstance(m, inc) or (exc and isinstance(m, exc)) or name == head:
            continue
        if any(name == e or (e.endswith(".") and name.startswith(e)) for e in scope.exclude_names):
            continue
        out[name] = m
    if not out:
        raise CompressionError("the pruning scope leaves no layer to prune; check --exclude and the model")
    return out


def _count(params: Iterable[torch.Tensor]) -> tuple[int, int]:
    params = list(params)
    return sum(p.numel() for p in params), sum(int(torch.count_nonzero(p)) for p in params)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, non-zero) parameters of the deployed network."""
    return _count(deployed(model).parameters())


def shrinkbench_size(model: nn.Module) -> tuple[int, int]:
    """(total, non-zero) parameters of the whole model, classification head included.

    ShrinkBench's ``metrics/size.py`` ``model_size(model)``: a sum over ``model.parameters()``.
    """
    return _count(model.parameters())


def compression_ratio(model: nn.Module) -> float:
    """total / non-zero parameters of the deployed network (1.0 when dense): ``compression_deployed``."""
    total, nz = count_parameters(model)
    return total / max(nz, 1)


def compression_shrinkbench(model: nn.Module) -> float:
    """total / non-zero parameters of the whole model, head included (ShrinkBench's ``compression_ratio``,
    ``experiment/prune.py`` ``pruning_metrics``: ``size / size_nz`` of ``model_size``)."""
    total, nz = shrinkbench_size(model)
    return total / max(nz, 1)


def fraction_to_keep(compression: float, total: int, prunable: int, fixed: float | None = None) -> float:
    """The fraction of the prunable weights to keep so ``total / (fraction * prunable + fixed) == compression``.

    ``fixed`` is the count of non-zero parameters that are not prunable; its default, ``total -
    prunable`` (every one of them non-zero), is ShrinkBench's ``pruning/utils.py`` ``fraction_to_keep``.

    >>> fraction_to_keep(2.0, total=16, prunable=12)  # 8 non-zeros: 4 fixed + 4 of the 12
    0.3333333333333333
    >>> fraction_to_keep(2.0, total=16, prunable=12, fixed=2)  # 2 of the 4 fixed are zeros: keep 6 of the 12
    0.5
    """
    fixed = total - prunable if fixed is None else fixed
    return (total / compression - fixed) / prunable


def keep_exact(model: nn.Module, layers: dict[str, nn.Module], ratio: float, fixed_dense: bool = False,
               ratio_of: str = PRUNE.ratio_of) -> float:
    """How many prunable weights stay non-zero so the whole network reaches ``ratio`` (see module doc).

    ``fraction_to_keep(ratio, total, prunable, fixed) * prunable``, not rounded: the *global* scope
    keeps ``round`` of it, the *layer* scope applies it as a fraction of every layer.
    ``fixed_dense``: count every non-prunable parameter as non-zero, as it will be after
    fine-tuning (a BatchNorm bias starts at exactly 0 and moves on the first step).
    ``ratio_of``: ``deployed`` (the trunk) or ``shrinkbench`` (the whole model with its head,
    every non-prunable parameter counted as non-zero, exactly ShrinkBench's ``fraction_to_keep``).
    """
    problem = ratio_problem(ratio, "the compression ratio (total / non-zero parameters)")
    if problem:
        raise CompressionError(problem)
    if ratio_of not in RATIO_DEFINITIONS:
        raise CompressionError(f"unknown ratio definition {ratio_of!r}; known: {', '.join(RATIO_DEFINITIONS)}")
    prunable = sum(m.weight.numel() for m in layers.values())
    if ratio_of == "shrinkbench":
        total = shrinkbench_size(model)[0]
        fixed = total - prunable
    else:
        total, nonzero = count_parameters(model)
        # Non-prunable parameters count as they are: a zero BatchNorm bias is already a zero.
        fixed = nonzero - sum(int(torch.count_nonzero(m.weight)) for m in layers.values())
        if fixed_dense:
            fixed = total - prunable
    keep = fraction_to_keep(ratio, total, prunable, fixed) * prunable
    if round(keep) < len(layers):
        best = total / (fixed + len(layers))
        raise CompressionError(f"ratio {ratio:g} is out of reach: {fixed:,} of {total:,} parameters are non-zero and not prunable, "
                           f"so the highest ratio keeping one weight per layer is {best:.2f}")
    return min(keep, float(prunable))


def masks_from_scores(scores: dict[str, torch.Tensor], keep: float, scope: str) -> dict[str, torch.Tensor]:
    """Boolean masks keeping the ``keep`` best-scored weights, ``scope`` ``global`` or ``layer``.

    ``global`` keeps ``round(keep)`` weights; ``layer`` keeps ``round(keep / total * n)`` of each
    layer of ``n`` weights (ShrinkBench's ``LayerMagWeight``: one unrounded fraction for every layer).

    Ties are broken by position (first wins), so masks are reproducible.

    >>> s = {"a": torch.tensor([4., 1., 3., 2.]), "b": torch.tensor([.5, .1])}
    >>> {k: v.int().tolist() for k, v in masks_from_scores(s, 3, "global").items()}
    {'a': [1, 0, 1, 1], 'b': [0, 0]}
    >>> {k: v.int().tolist() for k, v in masks_from_scores(s, 3, "layer").items()}
    {'a': [1, 0, 1, 0], 'b': [1, 0]}
    """
    if scope == "global":
        flat = torch.cat([s.detach().reshape(-1).float() for s in scores.values()])
        order = torch.argsort(flat, descending=True, stable=True)[:round(keep)]
        keep_flat = torch.zeros_like(flat, dtype=torch.bool)
        keep_flat[order] = True
        out, at = {}, 0
        for name, s in scores.items():
            out[name] = keep_flat[at:at + s.numel()].reshape(s.shape)
            at += s.numel()
        return out
    if scope == "layer":
        total = sum(s.numel() for s in scores.values())
        fraction = keep / total
        out = {}
        for name, s in scores.items():
            k = min(max(1, int(round(fraction * s.numel()))), s.numel())
            order = torch.argsort(s.detach().reshape(-1).float(), descending=True, stable=True)[:k]
            m = torch.zeros(s.numel(), dtype=torch.bool)
            m[order] = True
            out[name] = m.reshape(s.shape)
        return out
    raise CompressionError(f"unknown pruning scope {scope!r}; known: global, layer")


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero every masked-out weight (bias, for a ``NAME#bias`` key) in place (idempotent; after each optimizer step)."""
    net = deployed(model)
    for name, mask in masks.items():
        w = (net.get_submodule(name[:-len(BIAS)]).bias if name.endswith(BIAS) else net.get_submodule(name).weight)
        w.mul_(mask.to(device=w.device, dtype=w.dtype))


@dataclass
class MaskReport:
    """What a set of masks did: per-layer and whole-network sparsity, both ratio definitions.

    ``total_parameters`` / ``nonzero_parameters`` are the deployed network's (the trunk);
    ``shrinkbench_*`` the whole model's, head included. ``ratio_reached`` is in the definition
    ``ratio_of`` the target was given in (``deployed`` by default, so older readers see the trunk's).
    """

    ratio_target: float
    ratio_reached: float
    total_parameters: int
    nonzero_parameters: int
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    ratio_of: str = PRUNE.ratio_of
    shrinkbench_parameters: int = 0
    shrinkbench_nonzero_parameters: int = 0

    @property
    def compression_deployed(self) -> float:
        return self.total_parameters / max(self.nonzero_parameters, 1)

    @property
    def compression_shrinkbench(self) -> float:
        return self.shrinkbench_parameters / max(self.shrinkbench_nonzero_parameters, 1)

    def to_json(self) -> dict:
        return {"ratio_target": self.ratio_target, "ratio_of": self.ratio_of,
                "ratio_reached": round(self.ratio_reached, 6),
                "compression_deployed": round(self.compression_deployed, 6),
                "compression_shrinkbench": round(self.compression_shrinkbench, 6),
                "total_parameters": self.total_parameters, "nonzero_parameters": self.nonzero_parameters,
                "shrinkbench_parameters": self.shrinkbench_parameters,
                "shrinkbench_nonzero_parameters": self.shrinkbench_nonzero_parameters,
                "sparsity": round(1 - self.nonzero_parameters / self.total_parameters, 6),
                "layer_sparsity": {k: round(v, 6) for k, v in self.layer_sparsity.items()}}


def report(model: nn.Module, masks: dict[str, torch.Tensor], ratio_target: float,
           ratio_of: str = PRUNE.ratio_of) -> MaskReport:
    total, nz = count_parameters(model)
    sb_total, sb_nz = shrinkbench_size(model)
    layer = {k: 1.0 - float(m.float().mean()) for k, m in masks.items()}
    reached = sb_total / max(sb_nz, 1) if ratio_of == "shrinkbench" else total / max(nz, 1)
    return MaskReport(ratio_target, reached, total, nz, layer, ratio_of, sb_total, sb_nz)
