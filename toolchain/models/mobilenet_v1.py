"""MobileNetV1 (Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", arXiv:1704.04861, 2017), our own implementation: no timm needed, and a card sets the width.

Body (the paper's Table 1, 224 px): a 3x3 stride-2 convolution to 32 channels, then 13 depthwise-separable
blocks (3x3 depthwise conv, BN, ReLU, 1x1 pointwise conv, BN, ReLU; Figure 3) to 64, 128 (s2), 128, 256 (s2),
256, 512 (s2), five times 512 at 14x14, 1024 (s2), 1024; global average pool; a fully connected classifier.
Table 1 prints the last depthwise layer as "s2" on a 7x7 input with a 7x7 output: a known misprint; like every
public implementation, it is stride 1 here.

* ``width_mult`` (the paper's width multiplier alpha, Section 3.3): every layer's channels times alpha. The
  paper does not say how fractional channels round; we round to a multiple of 8 (at least 8), as TensorFlow's
  reference implementation does. For alpha 1.0, 0.75, 0.5 all channel counts are exact multiples of 8 anyway.
* ``shallow``: the paper's "shallow MobileNet" (Section 4.2, its narrow-vs-shallow comparison): the five 14x14x512 depthwise-separable
  blocks removed. They become ``Identity`` (their input and output widths match), so every other layer keeps
  the name and shape it has in the full network; a full bundle depth-pruned with
  ``removed_blocks = blocks.6 .. blocks.10`` is the same network.

The paper's ReLU (not ReLU6) and no dropout. Parameters at 1000 classes: 4.23M (alpha 1.0; the paper 4.2M),
2.59M (0.75; 2.6M), 1.33M (0.5; 1.3M); shallow 2.89M (the paper 2.9M).
"""

from __future__ import annotations

import torch
from torch import nn

#: (output channels, stride) of the 13 depthwise-separable blocks, Table 1
BLOCKS: tuple[tuple[int, int], ...] = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
#: the five 14x14x512 blocks the "shallow" variant removes
SHALLOW_REMOVED: tuple[int, ...] = (6, 7, 8, 9, 10)
STEM_CHANNELS = 32


def scaled(channels: int, width_mult: float, divisor: int = 8) -> int:
    """``channels * width_mult`` rounded to the nearest multiple of ``divisor`` (never below it, never more
    than 10 % under the exact value).

    >>> [scaled(c, 0.75) for c in (32, 64, 1024)], scaled(32, 0.25), scaled(1024, 0.6)
    ([24, 48, 768], 8, 616)
    """
    v = channels * width_mult
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU (Figure 3 of the paper)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.pw = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn2(self.pw(self.relu(self.bn1(self.dw(x))))))


class MobileNetV1(nn.Module):
    """MobileNetV1 with a width multiplier and the shallow variant (module docstring)."""

    def __init__(self, width_mult: float = 1.0, shallow: bool = False, num_classes: int = 1000) -> None:
        super().__init__()
        if not 0.0 < float(width_mult) <= 4.0:
            raise ValueError(f"width_mult must be in (0, 4], got {width_mult}")
        c = scaled(STEM_CHANNELS, width_mult)
        self.conv1 = nn.Conv2d(3, c, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        blocks: list[nn.Module] = []
        for k, (out, stride) in enumerate(BLOCKS):
            out = scaled(out, width_mult)
            blocks.append(nn.Identity() if shallow and k in SHALLOW_REMOVED else DepthwiseSeparable(c, out, stride))
            c = out
        self.blocks = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():  # the usual He init for conv layers; BN starts at identity
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
