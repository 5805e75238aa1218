"""The numpy Core ML executor (``toolchain.export.coreml_ref``) as a runtime: Core ML numerics on any OS.

It runs the *saved* ``.mlmodel`` (NeuralNetwork) or ``.mlpackage`` (ML Program) read back from disk, so parity
and evaluation of Core ML artifacts work on Linux. Its latencies say nothing about a phone: ``timing = False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from toolchain.errors import ArtifactError, RuntimeUnavailable
from toolchain.export import coreml_ref
from toolchain.export.coreml import CoreMLExporter
from toolchain.export.manifest import package_version
from toolchain.runtimes.base import runtime_block


class CoreMLReference:
    name = "coreml-ref"
    formats = (CoreMLExporter.name,)
    timing = False
    preference = 0

    def unavailable(self) -> str | None:
        try:
            import coremltools  # noqa: F401
        except ImportError as e:  # pragma: no cover - a core dependency
            return f"coremltools is not importable (it reads the saved model): {e}"
        return None

    def open(self, model: Any, threads: int | None = None) -> "_Session":
        why = self.unavailable()
        if why:
            raise RuntimeUnavailable(why)
        path = Path(model.path)
        if path.suffix == ".mlpackage":
            spec, prog = coreml_ref.load_mlpackage_program(path)
            return _Session(path, spec, lambda feeds: coreml_ref.run_mil(prog, feeds), "ML Program")
        import coremltools as ct

        spec = ct.utils.load_spec(str(path))
        return _Session(path, spec, lambda feeds: coreml_ref.run_neuralnetwork(spec, feeds), "NeuralNetwork")


class _Session:
    def __init__(self, path: Path, spec: Any, runner: Callable[[dict], dict], what: str) -> None:
        self._path, self._run = path, runner
        inp = spec.description.input[0]
        self._input = inp.name
        self._shape = [int(s) for s in inp.type.multiArrayType.shape]
        self.output_name = spec.description.output[0].name
        version = package_version("coremltools")
        self.description = (f"coreml_ref (numpy {what} executor, spec {spec.specificationVersion}, "
                            f"coremltools {version})")
        self.runtime = runtime_block("coreml_ref", version, "cpu", None, None)

    def features(self, pixels_nchw: np.ndarray) -> np.ndarray:
        if list(pixels_nchw.shape[1:]) != self._shape[-3:]:
            raise ArtifactError(f"{self._path.name} takes pixels of shape {self._shape}, "
                                f"got {list(pixels_nchw.shape[1:])}")
        feats = []
        try:
            for x in np.asarray(pixels_nchw, np.float32):
                y = self._run({self._input: x if len(self._shape) == 3 else x[None]})[self.output_name]
                feats.append(np.asarray(y, np.float32).reshape(-1))
        except coreml_ref.UnknownOpError as e:
            raise RuntimeUnavailable(f"the numpy Core ML executor cannot run it: {e}") from None
        return np.stack(feats)

    def prepare(self, pixels_nchw: np.ndarray) -> Callable[[], np.ndarray]:
        return lambda: self.features(pixels_nchw)
