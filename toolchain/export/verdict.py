"""The parity verdict of a reduced-precision artifact: the converter judged, the precision's loss stated beside it.

Three cosines (the lowest over the parity images each), recorded in the manifest's parity block:

* ``cosine_min``: artifact vs the fp32 PyTorch model (what the user gets);
* ``reduced_cosine``: PyTorch's own reduced-precision model (:mod:`toolchain.export.reduced`) vs fp32 — the loss
  the precision itself costs, before any converter runs;
* ``converter_cosine``: artifact vs that reduced model — the converter's own error.

The status judges ``converter_cosine`` against the precision's threshold (:func:`toolchain.policy.min_cosine`):
a converter that faithfully reproduces a lossy int8 model passes, and the line beside it says how lossy.
Without a reduced model (fp32, or a quantiser with no PyTorch equivalent) the status judges ``cosine_min``, as
before. Worked example: fp32 vs PyTorch int8 0.85, artifact vs PyTorch int8 0.9999 -> passed (converter),
"int8 costs cosine 0.85 here"; artifact vs PyTorch int8 0.80 -> failed (the converter lost signal).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from toolchain.artifact.compare import cosine_per_sample
from toolchain.artifact.manifest import ParityResult

if TYPE_CHECKING:  # pragma: no cover
    from toolchain.export.reduced import Reduced


def judge(result: ParityResult, reference: np.ndarray, artifact: np.ndarray | None, reduced: "Reduced",
          pixels_nchw: np.ndarray, precision: str) -> ParityResult:
    """``result`` (artifact vs fp32) with the reduced model's two cosines and the converter's verdict.

    Args:
        reference: fp32 PyTorch features of ``pixels_nchw`` (N, D).
        artifact: the artifact's features of the same images (None when no runtime ran it).
        reduced: PyTorch's reduced-precision model, or why there is none.
    """
    if result.status not in ("passed", "failed") or artifact is None:
        return result
    if reduced.run is None:
        conv = result.cosine_min if precision == "fp32" else None
        return dataclasses.replace(result, converter_cosine=conv, reduced_reason=reduced.why_not)
    try:
        red = np.asarray(reduced.run(pixels_nchw), np.float64).reshape(len(reference), -1)
    except Exception as e:  # noqa: BLE001 - e.g. a half kernel missing on this CPU: recorded, judged against fp32
        return dataclasses.replace(result, reduced_model=reduced.what,
                                   reduced_reason=f"PyTorch's {precision} model failed: {type(e).__name__}: "
                                                  f"{str(e)[:200]}; judged against fp32")
    if red.shape != np.asarray(reference).reshape(len(reference), -1).shape or not np.all(np.isfinite(red)):
        why = "non-finite values" if red.shape[1:] == reference.shape[1:] else f"shape {red.shape}"
        return dataclasses.replace(result, reduced_model=reduced.what,
                                   reduced_reason=f"PyTorch's {precision} model gave {why}; judged against fp32")
    reduced_cos = cosine_per_sample(reference, red)
    conv_cos = cosine_per_sample(red, np.asarray(artifact).reshape(len(red), -1))
    need = result.min_cosine_required if result.min_cosine_required is not None else 0.0
    # the fp32 cosine's per-sample lines give way to the converter's; shape, name and NaN problems stay
    kept = [m for m in result.mismatches if not m.startswith("sample ")]
    conv_bad = [f"sample {i}: artifact vs {reduced.what} cosine {c:.6f} < {need}" for i, c in enumerate(conv_cos)
                if not c >= need]
    mismatches = kept + conv_bad
    return dataclasses.replace(result, status="failed" if mismatches else "passed", mismatches=mismatches,
                               reduced_cosine=float(reduced_cos.min()), converter_cosine=float(conv_cos.min()),
                               reduced_model=reduced.what)


def summary(p: ParityResult, precision: str) -> str:
    """One line: the converter's verdict and the precision's loss beside it.

    >>> summary(ParityResult("passed", cosine_min=0.85, reduced_cosine=0.851, converter_cosine=0.99991,
    ...                      min_cosine_required=0.99, inputs="user", samples=8), "int8")
    'converter passed: artifact vs PyTorch int8 0.999910 (>= 0.99); int8 itself costs: PyTorch int8 vs fp32 0.851000; artifact vs fp32 0.850000 (8 user images)'
    """
    where = f"{p.samples} {p.inputs or 'seeded'} images" if p.samples else "no images"
    fp32 = "-" if p.cosine_min is None else f"{p.cosine_min:.6f}"
    if p.converter_cosine is not None and p.reduced_cosine is not None:
        return (f"converter {p.status}: artifact vs PyTorch {precision} {p.converter_cosine:.6f} "
                f"(>= {p.min_cosine_required}); {precision} itself costs: PyTorch {precision} vs fp32 "
                f"{p.reduced_cosine:.6f}; artifact vs fp32 {fp32} ({where})")
    why = f"; no PyTorch {precision} model: {p.reduced_reason}" if p.reduced_reason and precision != "fp32" else ""
    return f"parity {p.status}: artifact vs fp32 {fp32} (>= {p.min_cosine_required}){why} ({where})"


def hints(p: ParityResult, precision: str, user_images: bool, compress: str | None = None) -> list[str]:
    """What to try after a failed parity, or when the precision itself loses much; [] when nothing is wrong."""
    out: list[str] = []
    need = p.min_cosine_required or 0.0
    lossy = p.reduced_cosine is not None and p.reduced_cosine < need
    if p.status == "failed" and p.converter_cosine is not None and p.reduced_cosine is not None:
        out.append(f"the converter adds the loss (artifact vs PyTorch {precision} {p.converter_cosine:.4f}): export "
                   "--precision fp32 to see whether it converts the float model faithfully, and report the op")
    if lossy or (p.status == "failed" and p.reduced_cosine is None and precision != "fp32"):
        if not user_images:
            out.append("give --calibration DIR (or --data DIR) with images like the model's own: parity and "
                       "calibration on seeded noise can misjudge a trained model either way")
        if precision == "int8":
            out.append("int8 here already quantises weights per channel; keep the sensitive layers (the first "
                       "convolution, the last Linear / BatchNorm1d) in float with the quantiser's own per-op "
                       "config, or use --precision fp16")
        elif precision == "fp16":
            out.append("fp16 loses here (activations beyond fp16's range or precision): re-estimate BatchNorm "
                       "statistics or train longer, keep named ops in fp32, or use --precision fp32")
        if compress:
            out.append(f"--compress {compress} adds loss: try a wider palette or sparse only")
    elif p.status == "failed" and precision == "fp32":
        out.append("fp32 should match to rounding: the converter or the executor mis-handles an op; "
                   "export with --min-ios 13 or newer (another Core ML lowering) to narrow it down")
    return out
