"""The numpy Core ML executor as a runtime: Core ML numerics on any OS.

It runs the *saved* ``.mlmodel`` (NeuralNetwork) or ``.mlpackage`` (ML Program) read back from disk
(:mod:`.loader`), so parity and evaluation of Core ML artifacts work on Linux. Its latencies say nothing about a
phone: ``timing = False``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from toolchain.artifact.formats import COREML
from toolchain.artifact.manifest import package_version
from toolchain.errors import ArtifactError, RuntimeUnavailable
from toolchain.runtimes.base import Runtime
from toolchain.runtimes.coreml import loader
from toolchain.runtimes.coreml.kernels import UnknownOpError
from toolchain.runtimes.coreml.plan import Plan


class CoreMLReference(Runtime):
    name = "coreml-ref"
    formats = (COREML,)
    timing = False
    requires = (("coremltools", "coremltools"),)  # its protobuf definitions read the saved model back

    def unavailable(self) -> str | None:
        """Whether coremltools' protobuf files are installed, found without importing coremltools (which would
        import torch and more: :mod:`.proto`)."""
        from toolchain.runtimes.coreml import proto

        try:
            proto.proto_dir()
        except RuntimeUnavailable as e:
            return str(e)
        return None

    def _open(self, model: Any, threads: int | None) -> "Session":
        path = Path(model.path)
        spec, runner, what = loader.load(path)
        version = package_version("coremltools")
        description = f"{self.name} (numpy {what} executor, spec {spec.specificationVersion}, coremltools {version})"
        return Session(path, spec, runner, description, self.block(version, "cpu", None, threads), threads)


def default_blas_threads(load_1min: float | None = None, cpus: int | None = None) -> int:
    """BLAS threads when the caller names none: one per core while the 1-minute load is below the core count,
    else 1 (the same "busy" rule as ``deploy``'s OpenMP wait policy, toolchain/cli/_waitpolicy.py).

    >>> default_blas_threads(0.4, 2), default_blas_threads(2.0, 2), default_blas_threads(7.0, 16)
    (2, 1, 16)
    """
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    if load_1min is None:
        try:
            load_1min = os.getloadavg()[0]
        except (OSError, AttributeError):  # no load average (Windows): the safe choice under contention
            return 1
    return cpus if load_1min < cpus else 1


class Session:
    """One opened Core ML artifact, compiled once (on first use); it runs whole batches (see :mod:`.plan`).

    BLAS runs on ``threads`` threads (default :func:`default_blas_threads`: every core on an idle machine, one on a
    busy one). OpenBLAS's spinning worker threads made the products up to 25x slower when other processes share
    the cores; on the idle 2-core machine one thread left ResNet50 at 224 px 2.2-2.6x slower than ONNX Runtime's
    two (`benchmarks/results/coreml_executor_idle.json`).
    """

    def __init__(self, path: Path, spec: Any, compile_plan: Callable[[], Plan], description: str,
                 block: dict[str, Any], threads: int | None = None) -> None:
        self._path, self._compile = path, compile_plan
        self._threads = threads or default_blas_threads()
        self._plan: Plan | None = None
        inp = spec.description.input[0]
        self._input = inp.name
        self._shape = [int(s) for s in inp.type.multiArrayType.shape]
        self.output_name = spec.description.output[0].name
        self.description = description
        self.runtime = block

    def _run(self, use: Callable[[Plan], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        from threadpoolctl import threadpool_limits

        try:
            if self._plan is None:
                self._plan = self._compile()
            with threadpool_limits(limits=self._threads, user_api="blas"):
                return use(self._plan)
        except UnknownOpError as e:
            raise RuntimeUnavailable(f"the numpy Core ML executor cannot run it: {e}") from None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of one sample, fed by input name (a layer or op the executor lacks: RuntimeUnavailable)."""
        return self._run(lambda plan: plan.run(feeds))

    def features(self, pixels_nchw: np.ndarray) -> np.ndarray:
        """Features (N, D) of the whole batch at once (one sample at a time where the model mixes samples)."""
        if list(pixels_nchw.shape[1:]) != self._shape[-3:]:
            raise ArtifactError(f"{self._path.name} takes pixels of shape {self._shape}, "
                                f"got {list(pixels_nchw.shape[1:])}")
        x = np.asarray(pixels_nchw, np.float32)
        if len(x) == 0:
            return np.zeros((0, 0), np.float32)
        y = self._run(lambda plan: plan.run_batch(self._input, x))[self.output_name]
        return np.asarray(y, np.float32).reshape(len(x), -1)

    def prepare(self, pixels_nchw: np.ndarray) -> Callable[[], np.ndarray]:
        return lambda: self.features(pixels_nchw)
