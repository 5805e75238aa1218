"""insightface's IResNet (arcface_torch), as biometrics researchers train it — a test helper, not shipped.

Written from the architecture of ``recognition/arcface_torch/backbones/iresnet.py`` in deepinsight/insightface
(read 2026-12-07, commit 04a433f): the same module names, so its state-dict keys are a real checkpoint's
(``layer3.13.prelu.weight``, ``features.running_var``, ...), and the same computation:

* stem: 3x3 conv (stride 1, no bias) -> BatchNorm2d -> PReLU(64);
* four stages of ``IBasicBlock`` (widths 64, 128, 256, 512; the first block of each strides by 2), each
  ``BN -> conv3x3 -> BN -> PReLU(per channel) -> conv3x3(stride) -> BN`` plus the identity (or a 1x1 conv + BN);
* head: BatchNorm2d -> flatten -> dropout -> Linear(512 * 7 * 7, 512) -> BatchNorm1d(512) (its weight fixed at 1).

iresnet50 is layers (3, 4, 14, 3) at 112x112. Two knobs exist only for fast tests and default to the original:
``widths`` (the four stage widths) and ``input_size`` (the Linear's input is ``widths[3] * (input_size/16)**2``).
Its own init (conv weights N(0, 0.1), BN weight 1 / bias 0) gives ~1e26 features with default BatchNorm
statistics (FINDINGS, "Random-init iresnet50"): :func:`calibrated` re-estimates them on smooth images first.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = _conv3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        out += identity
        return out


class IResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...] = (3, 4, 14, 3), dropout: float = 0.0, num_features: int = 512,
                 widths: tuple[int, ...] = (64, 128, 256, 512), input_size: int = 112) -> None:
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes, eps=1e-05)
        self.prelu = nn.PReLU(self.inplanes)
        self.layer1 = self._make_layer(widths[0], layers[0], stride=2)
        self.layer2 = self._make_layer(widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(widths[3], layers[3], stride=2)
        self.bn2 = nn.BatchNorm2d(widths[3], eps=1e-05)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        side = input_size // 16
        self.fc = nn.Linear(widths[3] * side * side, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-05)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes, eps=1e-05))
        layers = [IBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.bn2(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        x = self.fc(x)
        return self.features(x)


def iresnet50(**kwargs) -> IResNet:
    return IResNet((3, 4, 14, 3), **kwargs)


def smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Arcface-normalised smooth random images ((x / 255 - 0.5) / 0.5), NCHW."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, 3, 8, 8))
    img = np.kron(coarse, np.ones((1, 1, -(-size // 8), -(-size // 8))))[:, :, :size, :size]
    img = 0.8 * img + 0.2 * rng.random((n, 3, size, size))
    return torch.from_numpy(((img - 0.5) / 0.5).astype(np.float32))


def calibrated(model: IResNet, size: int = 112, images: int = 32, seed: int = 0) -> IResNet:
    """``model`` with every BatchNorm's running statistics re-estimated on smooth images (cumulative average),
    and PReLU slopes drawn per channel in [0.05, 0.45] (a trained net's are not all 0.25, and equal slopes
    would let coremltools take its uniform-alpha path); returned in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.PReLU):
                m.weight.copy_(0.05 + 0.4 * torch.rand(m.weight.shape, generator=g))
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None
        model.train()
        x = smooth_images(images, size, seed)
        for i in range(0, images, 8):
            model(x[i:i + 8])
    return model.eval()
