"""The ONE comparison of an exported artifact's outputs with PyTorch's, and the images it is made on.

Every runtime that can run an artifact (``toolchain.runtimes``) runs it on the same seeded inputs as the
PyTorch bundle and hands the outputs here. Names, then shapes, then values are compared; every mismatch is
collected into one report (and one :class:`~toolchain.errors.ParityError` when it failed). Thresholds, seeds
and sample counts are numeric policy: :mod:`toolchain.policy`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import DataError
from toolchain.policy import CALIBRATION_SAMPLES, CALIBRATION_SEED, FIXED_INPUT_SEED, PARITY_SAMPLES

OUTPUT_NAME = "features"


@dataclass
class ParityResult:
    status: str  # "passed" | "failed" | "skipped"
    reference: str | None = None  # which runtime ran the artifact
    max_abs: float | None = None
    cosine_min: float | None = None
    min_cosine_required: float | None = None
    samples: int | None = None
    reason: str | None = None
    mismatches: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """As stored: a NaN/Inf number (an artifact that outputs NaN) becomes null and the reason says so,
        so the manifest stays JSON this tool can read back (and `bench host` says "parity failed")."""
        d = asdict(self)
        bad = [k for k in ("max_abs", "cosine_min", "min_cosine_required")
               if isinstance(d[k], float) and not math.isfinite(d[k])]
        for k in bad:
            d[k] = None
        if bad:
            note = f"{', '.join(bad)} not a finite number (NaN/Inf outputs); stored as null"
            d["reason"] = f"{d['reason']}; {note}" if d["reason"] else note
        return d


def skipped(reason: str, reference: str | None = None) -> ParityResult:
    return ParityResult(status="skipped", reference=reference, reason=reason)


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


def smooth_random_images(n: int, size: int, seed: int) -> np.ndarray:
    """Seeded RGB images with spatial structure, raw pixels 0..255 as float32, NCHW.

    Low-frequency noise (up-sampled) plus a little fine noise: closer to photographs than
    white noise, so activations and int8 calibration ranges are realistic.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, 3, 8, 8))
    reps = -(-size // 8)
    img = np.kron(coarse, np.ones((1, 1, reps, reps)))[:, :, :size, :size]
    img = 0.8 * img + 0.2 * rng.random((n, 3, size, size))
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.float32)


def parity_inputs(size: int) -> np.ndarray:
    """The images every parity check runs: ``PARITY_SAMPLES`` seeded smooth images (raw pixels NCHW)."""
    return smooth_random_images(PARITY_SAMPLES, size, FIXED_INPUT_SEED)


def fixed_input(size: int) -> np.ndarray:
    """The fixed input (1, 3, size, size) whose PyTorch features a manifest keeps (``fixed_input.png``)."""
    return smooth_random_images(1, size, FIXED_INPUT_SEED)


def calibration_images(size: int, folder: str | Path | None = None) -> np.ndarray:
    """int8 calibration / palettization images: from ``folder`` when given, else seeded smooth images."""
    if folder is not None:
        return load_images(folder, CALIBRATION_SAMPLES, size)
    return smooth_random_images(CALIBRATION_SAMPLES, size, CALIBRATION_SEED)


def load_images(folder: str | Path, n: int, size: int) -> np.ndarray:
    """Up to ``n`` images from a folder (recursively), resized to ``size``, raw pixels NCHW float32."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--calibration {folder} is not a folder of images")
    from toolchain.fsutil import walk_files

    files = sorted(p for p in walk_files(folder) if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
    from toolchain.data.images import check_declared_size

    out = []
    for p in files:
        try:
            with Image.open(p) as im:
                check_declared_size(im, p)  # a decompression bomb is a clean error, never decoded
                out.append(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            continue
        except Image.DecompressionBombError as e:
            raise DataError(f"--calibration image {p}: {e}") from None
        if len(out) >= n:
            break
    if not out:
        raise DataError(f"--calibration {folder} holds no readable images (.png/.jpg)")
    return np.stack(out).transpose(0, 3, 1, 2).copy()
