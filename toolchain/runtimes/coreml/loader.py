"""Reading a saved Core ML artifact back from disk (works on Linux): the spec and, for ML Programs, the MIL.

:func:`load` (what the runtime uses) never imports coremltools: the protobuf classes load on their own
(:mod:`.proto`), the MIL program and its weight file are read by :mod:`.milproto` and :mod:`.milblob`. That
saves ``import coremltools`` (torch and more: ~16 s on the project's machine) in every ``deploy evaluate`` of a
Core ML artifact. :func:`load_with_coremltools` is the old path through coremltools' own loader, kept as the
tests' oracle (and :func:`load_mlpackage_program` for callers that want a PyMIL program, e.g. the exporter).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from toolchain.errors import ArtifactError
from toolchain.runtimes.coreml.plan import Plan


def load_mlpackage_program(path: str | Path) -> tuple[Any, Any]:
    """(spec, PyMIL program) of a saved ``.mlpackage`` through coremltools (imports it)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    prog = load(spec, specification_version=spec.specificationVersion, file_weights_dir=model.weights_dir)
    return spec, prog


def load(path: str | Path) -> tuple[Any, Callable[[], Plan], str]:
    """(spec, a compiler of the runnable :class:`~.plan.Plan`, which interpreter) for a ``.mlpackage`` or
    ``.mlmodel``, without coremltools. Compiling is separate so that an op the executor lacks surfaces where it
    is run."""
    from toolchain.runtimes.coreml import milproto, mlprogram, neuralnetwork, proto

    path = Path(path)
    if path.suffix == ".mlpackage":
        spec, functions = milproto.read_mlpackage(path)
        return spec, lambda: mlprogram.compile_mil(functions), "ML Program"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ArtifactError(f"{path} is not a readable .mlmodel: {e}") from None
    spec = proto.parse_model(data, str(path))
    return spec, lambda: neuralnetwork.compile_neuralnetwork(spec), "NeuralNetwork"


def load_with_coremltools(path: str | Path) -> tuple[Any, Callable[[], Plan], str]:
    """:func:`load` through coremltools' own readers (``MLModel``, ``load_spec``, its MIL loader): the oracle."""
    from toolchain.runtimes.coreml import mlprogram, neuralnetwork

    path = Path(path)
    if path.suffix == ".mlpackage":
        spec, prog = load_mlpackage_program(path)
        return spec, lambda: mlprogram.compile_mil(prog), "ML Program"
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    return spec, lambda: neuralnetwork.compile_neuralnetwork(spec), "NeuralNetwork"
