"""The module every artifact computes: raw pixels in (1 or 3 channels, in the model's order), features out,
normalisation baked in.

It is built in two places only: ``toolchain.export.types.ExportJob.deploy_module`` (what converters trace)
and the ``pytorch`` runtime (parity's reference, evaluation of bundles and host timing of bundles), so what is
converted and what it is compared with are the same module.
"""

from __future__ import annotations

import torch
from torch import nn


class DeployModule(nn.Module):
    """What every artifact computes: raw pixels (0..255, float) -> features.

    Normalisation is baked in as one per-channel multiply-add, ``x * (1/(pixel_scale*std)) + (-mean/std)``,
    so the apps pass raw pixels. ``mean``/``std`` have one value per channel (1 or 3). With ``layout="nhwc"``
    the input is (N, H, W, C).
    """

    def __init__(self, model: nn.Module, mean: list[float], std: list[float], layout: str = "nchw",
                 pixel_scale: float = 255.0) -> None:
        super().__init__()
        self.model = model
        self.layout = layout
        c = len(mean)
        m = torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1)
        self.register_buffer("scale", 1.0 / (float(pixel_scale) * s))
        self.register_buffer("bias", -m / s)
        # One channel: plain numbers, not (1, 1, 1, 1) tensors. Core ML's converter turns a multiply-add by
        # (1, 1, 1, 1) constants into loadConstantND layers, which iOS 12 (spec 3) does not have; by scalars it
        # is one linear activation, which every spec runs.
        self._scalar = (float(self.scale.flatten()[0]), float(self.bias.flatten()[0])) if c == 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "nhwc":
            x = x.permute(0, 3, 1, 2)
        if self._scalar is not None:
            return self.model(x * self._scalar[0] + self._scalar[1])
        return self.model(x * self.scale + self.bias)
