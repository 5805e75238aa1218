"""PyTorch eager on a model bundle: parity's reference, evaluation of bundles, host timing of bundles.

The module is :class:`toolchain.artifact.module.DeployModule`, the very module every artifact is converted from
(raw pixels in, normalisation baked in), so "before export" and "after export" numbers compare like with like.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from toolchain.artifact.formats import BUNDLE_FORMAT
from toolchain.runtimes.base import Runtime



class PyTorchRuntime(Runtime):
    name = "pytorch"
    formats = (BUNDLE_FORMAT,)
    requires = (("torch", "torch"),)

    def _open(self, model: Any, threads: int | None) -> "_Session":
        """``model``: a loaded :class:`~toolchain.models.bundle.Bundle` (anything with ``model``, ``mean`` and
        ``std``), or a callable that loads one, so that a timed open includes the load (``deploy bench host``)."""
        import torch

        from toolchain.artifact.module import DeployModule

        if threads:
            torch.set_num_threads(threads)
        b = model() if callable(model) else model
        module = DeployModule(b.model, b.mean, b.std, "nchw", b.scale).eval()
        return _Session(module, self.block(torch.__version__, "cpu", "eager", threads))


class _Session:
    output_name = None

    def __init__(self, module: Any, block: dict[str, Any]) -> None:
        import torch

        self._torch, self._module = torch, module
        self.runtime = block
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
