"""Apple's Core ML runtime through coremltools' ``predict``: macOS only.

On macOS it times Core ML artifacts (``deploy bench host``) and is a second parity reference beside the numpy
executor; elsewhere it is unavailable, and parity records it as skipped with the reason. Not exercised in Linux
CI (tests marked ``macos``).
"""

from __future__ import annotations

import platform
import sys
from typing import Any, Callable

import numpy as np

from toolchain.artifact.formats import COREML
from toolchain.runtimes.base import Runtime


class AppleCoreML(Runtime):
    name = "coreml"
    formats = (COREML,)
    requires = (("coremltools", "coremltools"),)

    @property
    def preference(self) -> int:
        """On a Mac, Apple's runtime is what the devices run: it is the primary parity reference there (the numpy
        executor still checks every artifact too); elsewhere it ranks after the executor, as it cannot run."""
        return -1 if sys.platform == "darwin" else 1

    def unavailable(self) -> str | None:
        if sys.platform != "darwin":
            return (f"Core ML artifacts need macOS to run (Apple's runtime); this is {platform.system()}: time its "
                    "ONNX or TFLite export here, or run the iOS harness")
        return super().unavailable()

    def _open(self, model: Any, threads: int | None) -> "_Session":  # pragma: no cover - macOS only
        import coremltools as ct

        m = ct.models.MLModel(str(model.path), compute_units=ct.ComputeUnit.CPU_ONLY)
        return _Session(m, model, self.block(ct.__version__, "cpuOnly", None, None))


class _Session:  # pragma: no cover - macOS only
    def __init__(self, m: Any, model: Any, block: dict[str, Any]) -> None:
        self._m = m
        self._input = model.input.name
        self._rank = len(model.input.shape)
        self.output_name = model.output.name or "features"
        self.runtime = block
        self.description = f"Core ML {platform.mac_ver()[0]} (coremltools predict)"

    def _one(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._m.predict({self._input: x})[self.output_name], dtype=np.float32).reshape(1, -1)

    def features(self, pixels_nchw: np.ndarray) -> np.ndarray:
        px = np.asarray(pixels_nchw, np.float32)
        return np.concatenate([self._one(x if self._rank == 3 else x[None]) for x in px])

    def prepare(self, pixels_nchw: np.ndarray) -> Callable[[], np.ndarray]:
        x = np.ascontiguousarray(pixels_nchw, np.float32)
        x = x[0] if self._rank == 3 else x
        return lambda: self._one(x)
