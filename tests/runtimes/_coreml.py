"""Running a saved Core ML model in tests through the runtime production uses (``coreml-ref``)."""

from __future__ import annotations


def run_coreml(path, feeds):
    """Every output of one sample, through the ``coreml-ref`` runtime that parity and evaluation use."""
    from pathlib import Path

    from toolchain.artifact.folder import ArtifactRef
    from toolchain.artifact.formats import COREML
    from toolchain.artifact.manifest import InputSpec, OutputSpec
    from toolchain.runtimes import get_runtime

    ref = ArtifactRef(Path(path), COREML, Path(path).stem, InputSpec("x", []), OutputSpec())
    session = get_runtime("coreml-ref").open(ref)
    return session.run(feeds), session.description
