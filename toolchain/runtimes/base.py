"""What a runtime is: it opens an artifact (or a bundle) once, and the session serves every use of it.

One :class:`Session` computes features for parity (the export driver), for accuracy (``deploy evaluate``) and,
bound to one prepared input, for timing (``deploy bench host``): the same code runs the artifact everywhere.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np


class Session(Protocol):
    """An opened artifact (or bundle)."""

    #: the results v1 ``runtime`` block: name, version, compute_units, delegate, threads
    runtime: dict[str, Any]
    #: what ran, for a parity record or an evaluation, e.g. ``onnxruntime 1.23.2``
    description: str
    #: the output's name as the runtime reports it (None when names are not the runtime's to give)
    output_name: str | None

    def features(self, pixels_nchw: np.ndarray) -> np.ndarray:
        """Features (N, D) float32 of raw RGB pixels (N, 3, H, W) float32 0..255."""
        ...

    def prepare(self, pixels_nchw: np.ndarray) -> Callable[[], np.ndarray]:
        """One inference of this (1, 3, H, W) input, converted once: each call runs the model exactly once."""
        ...


class Runtime(Protocol):
    """One runtime. A new one is a module with a class like this plus one line in ``runtimes/__init__.py``."""

    name: str  # registry key, e.g. "onnxruntime"
    formats: tuple[str, ...]  # the formats it opens (the format plugins' names; "pytorch" = a model bundle)
    timing: bool  # do its latencies mean something (a numpy reference executor's do not)
    preference: int  # lower runs first: the first available one is a format's primary parity reference

    def unavailable(self) -> str | None:
        """Why it cannot run on this machine, or None."""
        ...

    def open(self, model: Any, threads: int | None = None) -> Session:
        """Open an :class:`~toolchain.export.artifact.ArtifactRef` (a bundle for ``pytorch``).

        ``threads``: CPU threads (None: the runtime's default). Raises RuntimeUnavailable when it cannot run
        this model here.
        """
        ...


def in_layout(pixels_nchw: np.ndarray, layout: str) -> np.ndarray:
    """Raw pixels NCHW in the artifact's layout (``nhwc``: channels last), contiguous float32."""
    x = pixels_nchw if layout == "nchw" else pixels_nchw.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def runtime_block(name: str, version: str, compute_units: str | None, delegate: str | None,
                  threads: int | None) -> dict[str, Any]:
    return {"name": name, "version": version, "compute_units": compute_units, "delegate": delegate,
            "threads": threads}
