"""The numpy Core ML executor as a runtime: Core ML numerics on any OS.

It runs the *saved* ``.mlmodel`` (NeuralNetwork) or ``.mlpackage`` (ML Program) read back from disk
(:mod:`.loader`), so parity and evaluation of Core ML artifacts work on Linux. Its latencies say nothing about a
phone: ``timing = False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from toolchain.artifact.formats import COREML
from toolchain.artifact.manifest import package_version
from toolchain.errors import ArtifactError, RuntimeUnavailable
from toolchain.runtimes.base import Runtime
from toolchain.runtimes.coreml import loader
from toolchain.runtimes.coreml.kernels import UnknownOpError


class CoreMLReference(Runtime):
    name = "coreml-ref"
    formats = (COREML,)
    timing = False
    requires = (("coremltools", "coremltools"),)  # it reads the saved model back

    def _open(self, model: Any, threads: int | None) -> "Session":
        path = Path(model.path)
        spec, runner, what = loader.load(path)
        version = package_version("coremltools")
        description = f"{self.name} (numpy {what} executor, spec {spec.specificationVersion}, coremltools {version})"
        return Session(path, spec, runner, description, self.block(version, "cpu", None, None))


class Session:
    """One opened Core ML artifact; :meth:`run` feeds one sample by input name (every output back)."""

    def __init__(self, path: Path, spec: Any, runner: Callable[[dict], dict], description: str,
                 block: dict[str, Any]) -> None:
        self._path, self._runner = path, runner
        inp = spec.description.input[0]
        self._input = inp.name
        self._shape = [int(s) for s in inp.type.multiArrayType.shape]
        self.output_name = spec.description.output[0].name
        self.description = description
        self.runtime = block

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of one sample, fed by input name (a layer or op the executor lacks: RuntimeUnavailable)."""
        try:
            return self._runner(feeds)
        except UnknownOpError as e:
            raise RuntimeUnavailable(f"the numpy Core ML executor cannot run it: {e}") from None

    def features(self, pixels_nchw: np.ndarray) -> np.ndarray:
        if list(pixels_nchw.shape[1:]) != self._shape[-3:]:
            raise ArtifactError(f"{self._path.name} takes pixels of shape {self._shape}, "
                                f"got {list(pixels_nchw.shape[1:])}")
        feats = []
        for x in np.asarray(pixels_nchw, np.float32):
            y = self.run({self._input: x if len(self._shape) == 3 else x[None]})[self.output_name]
            feats.append(np.asarray(y, np.float32).reshape(-1))
        return np.stack(feats)

    def prepare(self, pixels_nchw: np.ndarray) -> Callable[[], np.ndarray]:
        return lambda: self.features(pixels_nchw)
