"""What an export is made of: one conversion's job, what a converter reads back, and the converter protocol.

The module every artifact computes is the contract's :class:`~toolchain.artifact.module.DeployModule`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from toolchain.artifact.module import DeployModule
from toolchain.progress import MessageFn

if TYPE_CHECKING:  # pragma: no cover
    from toolchain.devices import Device
    from toolchain.artifact.formats import ExportChoice
    from toolchain.artifact.manifest import InputSpec, OutputSpec
    from toolchain.models.bundle import Bundle


@dataclass
class ExportJob:
    """Everything one conversion needs."""

    bundle: "Bundle"
    choice: "ExportChoice"
    devices: list["Device"]
    artifact_name: str
    calibration: np.ndarray  # raw pixels, NCHW float32: int8 calibration / Core ML palettization data
    compress: str | None = None
    int8_mode: str = "static"  # TFLite int8: "static" (calibrated activations) or "dynamic" (dynamic range)
    reduced_graph: Any = None  # PyTorch's own int8 model the converter converted (TFLite PT2E), for parity

    @property
    def size(self) -> tuple[int, int, int]:
        """(C, H, W) of the model's input."""
        return self.bundle.input_chw

    def deploy_module(self, layout: str | None = None) -> DeployModule:
        return DeployModule(self.bundle.model, self.bundle.mean, self.bundle.std, layout or self.choice.layout,
                            self.bundle.scale).eval()

    def input_shape(self, layout: str | None = None, batch: int = 1) -> list[int]:
        c, h, w = self.size
        return [batch, h, w, c] if (layout or self.choice.layout) == "nhwc" else [batch, c, h, w]

    def example_input(self, layout: str | None = None) -> torch.Tensor:
        x = torch.from_numpy(self.calibration[:1].copy())
        return x.permute(0, 2, 3, 1).contiguous() if (layout or self.choice.layout) == "nhwc" else x


@dataclass
class Description:
    """What a converter reads back from the artifact it wrote (the manifest's format-specific facts).

    ``input``/``output`` carry what the file says (names, shapes, dtypes, quantisation); the driver adds the
    layout, normalisation and feature dimension. ``details`` is the format's typed manifest block
    (:class:`~toolchain.artifact.manifest.CoreMLDetails`, ...). ``min_os`` overrides the format's default
    when the file itself needs a newer OS (Core ML compressed weights).
    """

    input: "InputSpec"
    output: "OutputSpec"
    details: Any = None
    min_os: str | None = None


class Exporter(Protocol):
    """The converter half of a format plugin (the facts half is :class:`~toolchain.artifact.formats.ArtifactFormat`)."""

    name: str

    def convert(self, job: ExportJob, work: Path, progress: MessageFn) -> Path:
        """Write the artifact into ``work``; return its path."""
        ...

    def describe(self, job: ExportJob, artifact: Path) -> Description: ...

    def versions(self) -> dict[str, str]:
        """Converter package versions, for the manifest and the pipeline's stage keys."""
        ...
