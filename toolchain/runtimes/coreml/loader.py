"""Reading a saved Core ML artifact back from disk (works on Linux): the spec and, for ML Programs, the MIL."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from toolchain.runtimes.coreml.plan import Plan


def load_mlpackage_program(path: str | Path) -> tuple[Any, Any]:
    """(spec, MIL program) of a saved ``.mlpackage``, read back from disk (works on Linux)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    prog = load(spec, specification_version=spec.specificationVersion, file_weights_dir=model.weights_dir)
    return spec, prog


def load(path: str | Path) -> tuple[Any, Callable[[], Plan], str]:
    """(spec, a compiler of the runnable :class:`~.plan.Plan`, which interpreter) for a ``.mlpackage`` or
    ``.mlmodel``. Compiling is separate so that an op the executor lacks surfaces where it is run."""
    from toolchain.runtimes.coreml import mlprogram, neuralnetwork

    path = Path(path)
    if path.suffix == ".mlpackage":
        spec, prog = load_mlpackage_program(path)
        return spec, lambda: mlprogram.compile_mil(prog), "ML Program"
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    return spec, lambda: neuralnetwork.compile_neuralnetwork(spec), "NeuralNetwork"
