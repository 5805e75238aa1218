"""The ONE numeric comparison of features: per-sample cosine and max-abs, and a parity verdict from them.

Export parity (every runtime of a format against PyTorch), the model importer's check and the report's
on-device check all compare features through :func:`cosine_per_sample`; :func:`compare` adds names, shapes and
the threshold. Thresholds are numeric policy (:mod:`toolchain.policy`); the images are :mod:`.inputs`.
"""

from __future__ import annotations

import numpy as np

from toolchain.artifact.manifest import ParityResult

OUTPUT_NAME = "features"


def skipped(reason: str, reference: str | None = None) -> ParityResult:
    return ParityResult(status="skipped", reference=reference, reason=reason)


def cosine_per_sample(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows, in float64. Two all-zero rows count as identical (1.0).

    >>> cosine_per_sample(np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])).round(4).tolist()
    [0.7071]
    """
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    denom = np.where(na * nb == 0, 1.0, na * nb)
    cos = (a * b).sum(axis=1) / denom
    return np.where(both_zero, 1.0, cos)


def flat_map(a: np.ndarray, b: np.ndarray) -> bool:
    """One side is (N, D) and the other an (N, C, H, W...) map of D values per sample.

    >>> flat_map(np.zeros((2, 12)), np.zeros((2, 3, 2, 2))), flat_map(np.zeros((2, 12)), np.zeros((2, 3, 2, 3)))
    (True, False)
    """
    return (a.ndim >= 1 and b.ndim >= 1 and len(a) == len(b) and 2 in (a.ndim, b.ndim) and max(a.ndim, b.ndim) > 2
            and int(np.prod(a.shape[1:])) == int(np.prod(b.shape[1:])))


def compare(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    min_cosine: float,
    runtime: str,
    output_name: str | None = OUTPUT_NAME,
) -> ParityResult:
    """Compare ``candidate`` (artifact outputs) with ``reference`` (PyTorch), sample by sample."""
    mismatches: list[str] = []
    if output_name is not None and output_name != OUTPUT_NAME:
        mismatches.append(f"output is named {output_name!r}, expected {OUTPUT_NAME!r}")
    ref = np.asarray(reference)
    got = np.asarray(candidate)
    if ref.shape != got.shape and flat_map(ref, got):
        # A map (``--output``) that a runtime hands back flattened (Core ML's ``[D]`` output): the same values in
        # the same order, compared over all of them; a wrong order shows as a low cosine, not as a pass.
        ref, got = ref.reshape(len(ref), -1), got.reshape(len(got), -1)
    if ref.shape != got.shape:
        mismatches.append(f"output shape {tuple(got.shape)} != PyTorch's {tuple(ref.shape)}")
        return ParityResult("failed", runtime, min_cosine_required=min_cosine, samples=len(ref), mismatches=mismatches)
    if not np.all(np.isfinite(got)):
        mismatches.append(f"{int((~np.isfinite(got)).sum())} non-finite values in the artifact's output")
    cos = cosine_per_sample(ref, got)
    max_abs = float(np.max(np.abs(ref.astype(np.float64) - got.astype(np.float64)))) if ref.size else 0.0
    for i, c in enumerate(cos):
        if not c >= min_cosine:  # also catches NaN
            mismatches.append(f"sample {i}: cosine {c:.6f} < {min_cosine}")
    return ParityResult(
        status="failed" if mismatches else "passed",
        reference=runtime,
        max_abs=max_abs,
        cosine_min=float(np.min(cos)) if len(cos) else None,
        min_cosine_required=min_cosine,
        samples=int(len(ref)),
        mismatches=mismatches,
    )
