"""The module every artifact computes: raw RGB pixels in, features out, normalisation baked in.

It is built in two places only: ``toolchain.export.types.ExportJob.deploy_module`` (what converters trace)
and the ``pytorch`` runtime (parity's reference, evaluation of bundles and host timing of bundles), so what is
converted and what it is compared with are the same module.
"""

from __future__ import annotations

import torch
from torch import nn


class DeployModule(nn.Module):
    """What every artifact computes: raw RGB pixels (0..255, float) -> features.

    Normalisation is baked in as one per-channel multiply-add, ``x * (1/(255*std)) + (-mean/std)``,
    so the apps pass raw pixels. With ``layout="nhwc"`` the input is (N, H, W, 3).
    """

    def __init__(self, model: nn.Module, mean: list[float], std: list[float], layout: str = "nchw") -> None:
        super().__init__()
        self.model = model
        self.layout = layout
        m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * s))
        self.register_buffer("bias", -m / s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "nhwc":
            x = x.permute(0, 3, 1, 2)
        return self.model(x * self.scale + self.bias)
