"""Settling an artifact's parity: run it on every runtime of its format, compare each with PyTorch, one verdict.

The comparison itself is the contract's (:func:`toolchain.artifact.compare.compare`); the runtimes are
``toolchain.runtimes``. Here they meet: each runtime that can run the artifact here is compared on the same
seeded inputs, each that cannot is recorded ``skipped`` with why, and :func:`settle` makes one result of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolchain.artifact.compare import compare, skipped
from toolchain.artifact.manifest import ParityResult
from toolchain.errors import RuntimeUnavailable
from toolchain.runtimes import runtimes_for


def parity_runs(model: Any, pixels_nchw: np.ndarray, reference: np.ndarray,
                min_cosine: float, features: dict[str, np.ndarray] | None = None) -> list[tuple[str, ParityResult]]:
    """Parity of ``model`` (an ArtifactRef) with ``reference`` features on every runtime of its format.

    Returns (runtime name, result) pairs: runtimes that ran first (the first is the artifact's primary parity),
    then those that could not run here, recorded ``skipped`` with why. ``features``, when given, receives each
    runtime's outputs by runtime name (the verdict compares them with PyTorch's reduced-precision model).
    """
    ran, not_run = [], []
    for rt in runtimes_for(model.format):
        why = rt.unavailable()
        if why is not None:
            not_run.append((rt.name, skipped(why, reference=rt.name)))
            continue
        try:
            session = rt.open(model)
            got = session.features(pixels_nchw)
            if features is not None:
                features[rt.name] = got
        except RuntimeUnavailable as e:
            not_run.append((rt.name, skipped(str(e), reference=rt.name)))
            continue
        ran.append((rt.name, compare(reference, got, min_cosine=min_cosine, runtime=session.description,
                                     output_name=session.output_name)))
    if not ran and not not_run:
        return [("none", skipped(f"no runtime runs {model.format} artifacts"))]
    return ran + not_run


def settle(runs: list[tuple[str, ParityResult]]) -> ParityResult:
    """The artifact's parity from every runtime's: the primary (first) one's numbers, failed if any failed.

    >>> ok, bad = ParityResult("passed", "a"), ParityResult("failed", "b", mismatches=["sample 0: cosine 0.5 < 0.99"])
    >>> r = settle([("a", ok), ("b", bad)])
    >>> r.status, r.reference, r.mismatches
    ('failed', 'a', ['b: sample 0: cosine 0.5 < 0.99'])
    """
    if not runs:
        return skipped("no runtime checked it")
    primary = runs[0][1]
    others = [(n, r) for n, r in runs[1:] if r.status == "failed"]
    if not others:
        return primary
    extra = [f"{n}: {m}" for n, r in others for m in (r.mismatches or [r.reason or "failed"])]
    return ParityResult(**{**primary.to_json(), "status": "failed", "mismatches": [*primary.mismatches, *extra]})
