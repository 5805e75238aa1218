"""Core ML's protobuf classes (``Model_pb2``, ``MIL_pb2``) without running ``coremltools/__init__.py``.

Why: ``import coremltools`` imports torch, scikit-learn and more (about 16 s on the project's 2-core machine,
more than the whole ONNX Runtime evaluation it sits beside). Reading a saved model needs only the generated
protobuf modules, which coremltools ships as plain files under ``coremltools/proto/``. They import each other
relatively (``from . import FeatureTypes_pb2``), so they load as a package under a private name
(:data:`PACKAGE`) whose ``__path__`` is that folder; coremltools' own ``__init__`` never runs.

A later ``import coremltools`` in the same process (tests, the exporter) loads the same files again under
their real name. That is safe: each file registers its descriptor with the default pool through
``AddSerializedFile``, and the pool accepts an identical file twice (the bytes are the same files), so both
module sets describe the same messages and parse the same bytes identically (checked in the tests).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

from toolchain.errors import ArtifactError, RuntimeUnavailable

#: the private package the generated modules load under (never ``coremltools.proto``)
PACKAGE = "_toolchain_coreml_proto"


def proto_dir() -> Path:
    """The installed ``coremltools/proto`` folder, found without importing coremltools."""
    spec = importlib.util.find_spec("coremltools")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeUnavailable("coremltools is not installed (its protobuf definitions read Core ML models)")
    for root in spec.submodule_search_locations:
        folder = Path(root) / "proto"
        if (folder / "Model_pb2.py").is_file():
            return folder
    raise RuntimeUnavailable("coremltools is installed without coremltools/proto/Model_pb2.py")


def module(name: str) -> Any:
    """The generated module ``name`` (e.g. ``"Model_pb2"``), loaded once under :data:`PACKAGE`."""
    if PACKAGE not in sys.modules:
        pkg = types.ModuleType(PACKAGE, "coremltools/proto, loaded without coremltools/__init__.py")
        pkg.__path__ = [str(proto_dir())]  # relative imports between the pb2 files resolve here
        sys.modules[PACKAGE] = pkg
    return importlib.import_module(f"{PACKAGE}.{name}")


def model_class() -> Any:
    """``CoreML.Specification.Model`` (the spec of an ``.mlmodel`` or of an ``.mlpackage``'s model file)."""
    return module("Model_pb2").Model


def parse_model(data: bytes, source: str = "the model") -> Any:
    """A ``Model`` message from the bytes of a saved spec (``source`` names it in the error)."""
    from google.protobuf.message import DecodeError

    spec = model_class()()
    try:
        spec.ParseFromString(data)
    except DecodeError as e:
        raise ArtifactError(f"{source} is not a readable Core ML model spec: {e}") from None
    return spec
