"""What a runtime is: it opens an artifact (or a bundle) once, and the session serves every use of it.

One :class:`Session` computes features for parity (the export driver), for accuracy (``deploy evaluate``) and,
bound to one prepared input, for timing (``deploy bench host``): the same code runs the artifact everywhere.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, ClassVar, Protocol

import numpy as np

from toolchain.errors import RuntimeUnavailable


class Session(Protocol):
    """An opened artifact (or bundle)."""

    #: the results v1 ``runtime`` block: name, version, compute_units, delegate, threads
    runtime: dict[str, Any]
    #: what ran, for a parity record or an evaluation, e.g. ``onnxruntime 1.23.2``
    description: str
    #: the output's name as the runtime reports it (None when names are not the runtime's to give)
    output_name: str | None

    def features(self, pixels_nchw: np.ndarray) -> np.ndarray:
        """Features (N, D) float32 of raw pixels (N, C, H, W) float32 0..255 (C and channel order: the model's)."""
        ...

    def prepare(self, pixels_nchw: np.ndarray) -> Callable[[], np.ndarray]:
        """One inference of this (1, C, H, W) input, converted once: each call runs the model exactly once."""
        ...


class Runtime:
    """One runtime. A new one is a module with a subclass of this plus one line in ``runtimes/__init__.py``.

    A subclass names the packages it needs (``requires``) and implements :meth:`_open`; :meth:`open` is the one
    guard: it refuses with :meth:`unavailable`'s reason before anything is imported or opened.
    """

    name: ClassVar[str]  # registry key, e.g. "onnxruntime"; also the results ``runtime.name`` it writes
    formats: ClassVar[tuple[str, ...]]  # the formats it opens (``toolchain.artifact.formats`` names)
    timing: ClassVar[bool] = True  # do its latencies mean something (a numpy reference executor's do not)
    preference: ClassVar[int] = 0  # lower runs first: the first available one is a format's primary parity reference
    #: (importable module, its pip distribution) it needs: checked by :meth:`unavailable`, and the versions of
    #: the distributions are part of the pipeline's evaluation stage keys
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()

    def unavailable(self) -> str | None:
        """Why it cannot run on this machine, or None."""
        for module, package in self.requires:
            try:
                importlib.import_module(module)
            except ImportError as e:
                return f"{package} is not importable: {e}"
        return None

    def open(self, model: Any, threads: int | None = None) -> Session:
        """Open an :class:`~toolchain.artifact.folder.ArtifactRef` (a bundle for ``pytorch``).

        ``threads``: CPU threads (None: the runtime's default). Raises RuntimeUnavailable when it cannot run
        this model here.
        """
        why = self.unavailable()
        if why:
            raise RuntimeUnavailable(why)
        return self._open(model, threads)

    def _open(self, model: Any, threads: int | None) -> Session:
        raise NotImplementedError

    def block(self, version: str, compute_units: str | None, delegate: str | None,
              threads: int | None) -> dict[str, Any]:
        """The results v1 ``runtime`` block of a session of this runtime (its name spelled as registered)."""
        return {"name": self.name, "version": version, "compute_units": compute_units, "delegate": delegate,
                "threads": threads}


def in_layout(pixels_nchw: np.ndarray, layout: str) -> np.ndarray:
    """Raw pixels NCHW in the artifact's layout (``nhwc``: channels last), contiguous float32."""
    x = pixels_nchw if layout == "nchw" else pixels_nchw.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x, dtype=np.float32)
