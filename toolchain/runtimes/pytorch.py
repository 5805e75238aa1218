"""PyTorch eager on a model bundle: parity's reference, evaluation of bundles, host timing of bundles.

The module is :class:`toolchain.export.types.DeployModule`, the very module every artifact is converted from
(raw pixels in, normalisation baked in), so "before export" and "after export" numbers compare like with like.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from toolchain.runtimes.base import runtime_block

#: The results v1 ``artifact.format`` of a timed bundle.
BUNDLE_FORMAT = "pytorch"


class PyTorchRuntime:
    name = "pytorch"
    formats = (BUNDLE_FORMAT,)
    timing = True
    preference = 0

    def unavailable(self) -> str | None:
        return None  # torch is a core dependency

    def open(self, model: Any, threads: int | None = None) -> "_Session":
        """``model``: a loaded :class:`~toolchain.models.bundle.Bundle` or a bundle folder."""
        import torch

        from toolchain.export.types import DeployModule
        from toolchain.models.bundle import Bundle, load_bundle

        if threads:
            torch.set_num_threads(threads)
        b = model if isinstance(model, Bundle) else load_bundle(Path(model))
        return _Session(DeployModule(b.model, b.mean, b.std, "nchw").eval(), threads)


class _Session:
    output_name = None

    def __init__(self, module: Any, threads: int | None) -> None:
        import torch

        self._torch, self._module = torch, module
        self.runtime = runtime_block("pytorch", torch.__version__, "cpu", "eager", threads)
        self.description = f"pytorch {torch.__version__}"

    def features(self, pixels_nchw: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self._module(self._torch.from_numpy(np.ascontiguousarray(pixels_nchw, np.float32))).numpy()

    def prepare(self, pixels_nchw: np.ndarray) -> Callable[[], np.ndarray]:
        x = self._torch.from_numpy(np.ascontiguousarray(pixels_nchw, np.float32))
        torch, module = self._torch, self._module

        def infer() -> np.ndarray:
            with torch.inference_mode():
                return module(x).numpy()
        return infer
