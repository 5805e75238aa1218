"""Layerwise (depth) compression: remove whole residual blocks, as the MobileNetV1 paper's "layerwise".

A block can go when the network still computes without it: its output has the shape of its
input (a residual block that neither changes width nor stride: in torchvision's ResNet every
block of a stage except the first, in MobileNetV2 every inverted residual with a skip). It is
replaced by ``nn.Identity`` and its name goes to ``model.json``'s ``architecture.removed_blocks``,
so the network rebuilds without it. The "widthwise" counterpart (a uniform width multiplier)
is :func:`toolchain.compress.pruning.structured.width_multiplier`.

Worked example: torchvision ResNet50 stages hold [3, 4, 6, 3] blocks; ``keep_per_stage=2``
removes layer1.2, layer2.2-3, layer3.2-5 and layer4.2 (8 of 16 blocks): blocks 0 (which changes shape)
and 1 of each stage stay.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from toolchain.inputspec import chw
from toolchain.compress.pruning.masks import deployed
from toolchain.errors import CompressionError
from toolchain.models.feature_head import replace_module


@torch.no_grad()
def removable_blocks(model: nn.Module, input_size: int) -> dict[str, list[str]]:
    """Stage name -> its blocks (in order) whose output shape equals their input shape.

    A stage is an ``nn.Sequential`` whose children are blocks: modules with parameters that
    are not plain layers (conv, BN, activation).
    """
    net = deployed(model)
    plain = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Dropout, nn.Identity)
    stages: dict[str, list[str]] = {}
    for name, mod in net.named_modules():
        if isinstance(mod, nn.Sequential) and name:
            kids = [(f"{name}.{k}", c) for k, c in mod.named_children()]
            blocks = [(n, c) for n, c in kids if not isinstance(c, plain) and any(True for _ in c.parameters())]
            if blocks and len(blocks) == len([c for _, c in kids if not isinstance(c, nn.Identity)]):
                stages[name] = [n for n, _ in blocks]
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    hooks = [net.get_submodule(n).register_forward_hook(
        lambda m, i, o, n=n: shapes.__setitem__(n, (tuple(i[0].shape), tuple(o.shape))))
        for blocks in stages.values() for n in blocks]
    was = net.training
    net.eval()
    try:
        net(torch.zeros(1, *chw(input_size)))
    finally:
        for h in hooks:
            h.remove()
        net.train(was)
    out = {}
    for stage, blocks in stages.items():
        ok = [n for n in blocks if n in shapes and shapes[n][0] == shapes[n][1]]
        if ok:
            out[stage] = ok
    return out


def remove_blocks(model: nn.Module, names: Sequence[str], input_size: int) -> list[str]:
    """Replace the named blocks by ``nn.Identity`` in place; returns the names removed.

    Raises CompressionError for a name that is not a removable block (shape-changing, unknown).
    """
    allowed = {n for blocks in removable_blocks(model, input_size).values() for n in blocks}
    bad = [n for n in names if n not in allowed]
    if bad:
        raise CompressionError(f"cannot remove {', '.join(bad)}: only blocks whose output shape equals their input "
                               f"can go; removable here: {', '.join(sorted(allowed)) or '(none)'}")
    net = deployed(model)
    for n in names:
        replace_module(net, n, nn.Identity())
    return list(names)


def keep_per_stage(model: nn.Module, keep: int | Sequence[int], input_size: int) -> list[str]:
    """Remove trailing removable blocks so each stage keeps at most ``keep`` blocks (or ``keep[i]`` for stage i).

    Blocks that change shape are always kept (and counted). Returns the names removed.
    """
    stages = removable_blocks(model, input_size)
    net = deployed(model)
    names = sorted(stages)
    keeps = [int(keep)] * len(names) if isinstance(keep, int) else [int(k) for k in keep]
    if len(keeps) != len(names):
        raise CompressionError(f"{len(keeps)} per-stage counts for {len(names)} stages ({', '.join(names)})")
    if any(k < 1 for k in keeps):
        raise CompressionError("every stage keeps at least one block")
    removed: list[str] = []
    for stage, k in zip(names, keeps):
        children = [f"{stage}.{c}" for c, _ in net.get_submodule(stage).named_children()]
        removable = set(stages[stage])
        surplus = len(children) - k
        for n in reversed(children):
            if surplus <= 0:
                break
            if n in removable:
                removed.append(n)
                surplus -= 1
    remove_blocks(model, sorted(removed), input_size)
    return sorted(removed)
