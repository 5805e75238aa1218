"""Verification metrics from similarity scores: EER, TAR at FAR, ROC AUC, d', score statistics.

Conventions (the one definition used by training validation, ``deploy evaluate`` and the
benchmarks):

* A score is a **similarity**: higher means "more likely the same eye". A pair is accepted
  at threshold ``t`` when ``score >= t``.
* ``FAR(t)`` = fraction of impostor scores ``>= t``; ``FRR(t)`` = fraction of genuine scores
  ``< t``; ``TAR(t) = 1 - FRR(t)``.
* Thresholds swept: every distinct score, ascending, then ``+inf`` (accept nothing). Along
  the sweep FAR falls from 1 to 0 and FRR rises from 0 to 1.
* **EER**: the point where the piecewise-linear curve through the swept (FAR, FRR) points
  crosses FAR = FRR. Find the first threshold ``t_k`` with ``FAR(t_k) <= FRR(t_k)``; if they
  are equal there, EER = FAR(t_k); otherwise interpolate linearly between ``t_{k-1}`` and
  ``t_k`` with weight ``a = D_{k-1} / (D_{k-1} - D_k)``, ``D = FAR - FRR``:
  ``EER = FAR_{k-1} + a (FAR_k - FAR_{k-1})`` (= the same interpolation of FRR). The EER
  threshold is interpolated with the same ``a`` (if ``t_k`` is ``+inf``, it is ``t_{k-1}``).
  Because the (FAR, FRR) path is monotone, this crossing is unique and is the same point the
  linearly interpolated ROC curve reaches on the anti-diagonal TAR = 1 - FAR.
* **TAR at FAR f**: the highest TAR over thresholds with ``FAR(t) <= f`` (an operating point
  that was actually observed; no interpolation, so never optimistic).
* **Rule of three**: with zero false accepts in ``n`` impostor pairs the 95 % upper bound on
  the FAR is about ``3/n`` (Hanley & Lippman-Hand, JAMA 1983), so a FAR of ``f`` needs at
  least ``3/f`` impostor pairs; fewer gives a warning and ``supported: false``.
* **AUC**: trapezoidal area under the ROC through the swept points (ties count one half,
  i.e. the Mann-Whitney statistic P(genuine > impostor) + P(equal)/2).
* **d'** (decidability, Daugman): ``(mean_g - mean_i) / sqrt((var_g + var_i) / 2)``,
  population variances.

Worked example: genuine = [0.9, 0.8, 0.4], impostor = [0.5, 0.3, 0.2]. At t = 0.4:
FAR = 1/3 (0.5), FRR = 0; at t = 0.5: FAR = 1/3, FRR = 1/3 -> EER = 1/3 at threshold 0.5.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from toolchain.errors import MetricsError

DEFAULT_FARS: tuple[float, ...] = (1e-2, 1e-3, 1e-4)

CONVENTIONS = {
    "score": "similarity (cosine); a pair is accepted when score >= threshold",
    "far": "fraction of impostor scores >= threshold",
    "frr": "fraction of genuine scores < threshold",
    "eer": "crossing of FAR and FRR, linearly interpolated between the two swept thresholds that bracket it",
    "tar_at_far": "highest observed TAR with FAR <= target (no interpolation)",
    "rule_of_three": "a FAR target f is supported only with at least 3/f impostor pairs",
    "d_prime": "(mean_g - mean_i) / sqrt((var_g + var_i) / 2), population variances",
}


def far_key(far: float) -> str:
    """The dictionary key of a FAR target: ``1e-3`` -> ``"1e-3"``, ``0.005`` -> ``"5e-3"``."""
    return np.format_float_scientific(far, trim="-", exp_digits=1)


def check_scores(genuine: Sequence[float] | np.ndarray, impostor: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert to float64 1-D arrays; raise :class:`MetricsError` on input no metric can use."""
    out = []
    for name, s in (("genuine", genuine), ("impostor", impostor)):
        a = np.asarray(s, dtype=np.float64)
        if a.ndim != 1:
            raise MetricsError(f"{name} scores must be a 1-D array of similarities, got shape {a.shape}")
        if a.size == 0:
            raise MetricsError(f"no {name} scores: the protocol must contain at least one "
                               f"{'same-eye' if name == 'genuine' else 'different-eye'} pair")
        bad = int(np.count_nonzero(~np.isfinite(a)))
        if bad:
            raise MetricsError(f"{bad} of {a.size} {name} scores are NaN or infinite: the features contain "
                               "NaN/inf (diverged model, fp16 overflow or an all-zero feature vector)")
        out.append(a)
    g, i = out
    if g.min() == g.max() == i.min() == i.max():
        raise MetricsError(f"all {g.size + i.size} scores equal {g[0]!r}: the model gives every pair the same "
                           "similarity (constant features?), so no threshold separates anything")
    return g, i


def error_rates(genuine: Sequence[float] | np.ndarray, impostor: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds ascending with ``+inf`` last, FAR, FRR) over every distinct score.

    >>> t, far, frr = error_rates([0.9, 0.4], [0.5, 0.1])
    >>> t.tolist(), far.tolist(), frr.tolist()
    ([0.1, 0.4, 0.5, 0.9, inf], [1.0, 0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5, 1.0])
    """
    g, i = (np.sort(a) for a in check_scores(genuine, impostor))  # copies: callers' arrays stay as given
    thresholds = np.append(np.unique(np.concatenate([g, i])), np.inf)
    far = (i.size - np.searchsorted(i, thresholds, side="left")) / i.size
    frr = np.searchsorted(g, thresholds, side="left") / g.size
    return thresholds, far, frr


def roc_curve(genuine: Sequence[float] | np.ndarray, impostor: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points (FAR, TAR, threshold) in order of increasing FAR, starting at (0, 0, +inf).

    Same points as ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.

    >>> far, tar, t = roc_curve([0.9, 0.4], [0.5, 0.1])
    >>> far.tolist(), tar.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    t, far, frr = error_rates(genuine, impostor)
    return far[::-1].copy(), 1.0 - frr[::-1], t[::-1].copy()


def det_curve(genuine: Sequence[float] | np.ndarray, impostor: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DET points (FAR, FRR, threshold) in order of increasing FAR (plot them on probit axes)."""
    t, far, frr = error_rates(genuine, impostor)
    return far[::-1].copy(), frr[::-1].copy(), t[::-1].copy()


def _eer_from_rates(t: np.ndarray, far: np.ndarray, frr: np.ndarray) -> tuple[float, float]:
    d = far - frr  # +1 at the lowest threshold, -1 at +inf
    k = int(np.argmax(d <= 0))
    if d[k] == 0:
        return float(far[k]), float(t[k])
    a = d[k - 1] / (d[k - 1] - d[k])
    eer = far[k - 1] + a * (far[k] - far[k - 1])
    thr = t[k - 1] + a * (t[k] - t[k - 1]) if np.isfinite(t[k]) else t[k - 1]
    return float(eer), float(thr)


def equal_error_rate(genuine: Sequence[float] | np.ndarray, impostor: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(EER as a 0..1 fraction, its threshold); see the module docstring for the exact definition.

    >>> equal_error_rate([0.9, 0.8, 0.4], [0.5, 0.3, 0.2])
    (0.3333333333333333, 0.5)
    """
    return _eer_from_rates(*error_rates(genuine, impostor))


def _operating_point(t: np.ndarray, far: np.ndarray, frr: np.ndarray, target: float, n_impostor: int) -> dict[str, Any]:
    j = int(np.argmax(far <= target))  # far[-1] == 0, so one always exists; FRR only grows with t
    needed = math.ceil(3.0 / target - 1e-9)
    return {"far_target": target, "tar": float(1.0 - frr[j]), "far": float(far[j]),
            "threshold": float(t[j]) if np.isfinite(t[j]) else None,
            "supported": n_impostor >= needed, "min_impostor_pairs": needed}


def tar_at_far(genuine: Sequence[float] | np.ndarray, impostor: Sequence[float] | np.ndarray, far: float) -> dict[str, Any]:
    """The operating point for one FAR target: ``{tar, far, threshold, supported, min_impostor_pairs}``.

    ``threshold`` is ``None`` when only "accept nothing" keeps the FAR low enough (TAR 0).

    Keeping the FAR at or below 0.3 means rejecting the 0.5 impostor, hence t = 0.8:

    >>> p = tar_at_far([0.9, 0.8, 0.4], [0.5, 0.3, 0.2], 0.3)
    >>> p["tar"], p["far"], p["threshold"], p["supported"]
    (0.6666666666666667, 0.0, 0.8, False)
    """
    _check_far(far)
    g, i = check_scores(genuine, impostor)
    return _operating_point(*error_rates(g, i), far, i.size)


def _check_far(far: float) -> None:
    if not (isinstance(far, (int, float)) and 0.0 < far < 1.0):
        raise MetricsError(f"FAR target {far!r} must be a fraction strictly between 0 and 1 (e.g. 1e-3)")


def score_stats(scores: np.ndarray) -> dict[str, float | int]:
    """count, mean, std (population), min, median, max of a score array."""
    return {"count": int(scores.size), "mean": float(scores.mean()), "std": float(scores.std()),
            "min": float(scores.min()), "median": float(np.median(scores)), "max": float(scores.max())}


def d_prime(genuine: np.ndarray, impostor: np.ndarray) -> float | None:
    """Decidability ``(mean_g - mean_i) / sqrt((var_g + var_i) / 2)``; ``None`` if both variances are 0.

    >>> d_prime(np.array([1.0, 3.0]), np.array([-1.0, 1.0]))
    2.0
    """
    pooled = math.sqrt((float(genuine.var()) + float(impostor.var())) / 2.0)
    if pooled == 0.0:
        return None
    return (float(genuine.mean()) - float(impostor.mean())) / pooled


def compute_metrics(genuine: Sequence[float] | np.ndarray, impostor: Sequence[float] | np.ndarray,
                    fars: Sequence[float] = DEFAULT_FARS) -> dict[str, Any]:
    """Every verification metric for one set of genuine and impostor similarity scores.

    Args:
        genuine: similarities of same-eye pairs (any real range, higher = more similar).
        impostor: similarities of different-eye pairs.
        fars: FAR targets (fractions 0..1) for TAR at FAR; keys are formatted by :func:`far_key`.

    Returns a JSON-ready dict: ``eer`` and ``eer_threshold``; ``tar_at_far`` {"1e-3": TAR};
    ``operating_points`` {"1e-3": {tar, far, threshold, supported, min_impostor_pairs}};
    ``auc``; ``d_prime`` (``None`` when both classes have zero variance); ``genuine`` and
    ``impostor`` statistics; ``warnings`` (list of str); ``conventions``.

    Raises MetricsError for an empty class, NaN/inf scores, or all scores equal.

    >>> m = compute_metrics([0.9, 0.8, 0.4], [0.5, 0.3, 0.2], fars=(0.4,))
    >>> round(m["eer"], 4), m["eer_threshold"], m["tar_at_far"]["4e-1"], round(m["auc"], 4)
    (0.3333, 0.5, 1.0, 0.8889)
    >>> m["warnings"][0][:40]
    'only 3 impostor pairs: FAR 4e-1 needs at'
    """
    for f in fars:
        _check_far(f)
    g, i = check_scores(genuine, impostor)
    t, far, frr = error_rates(g, i)
    eer, eer_thr = _eer_from_rates(t, far, frr)
    warnings: list[str] = []
    points: dict[str, dict[str, Any]] = {}
    for f in fars:
        p = _operating_point(t, far, frr, float(f), i.size)
        points[far_key(f)] = p
        if not p["supported"]:
            warnings.append(f"only {i.size} impostor pairs: FAR {far_key(f)} needs at least {p['min_impostor_pairs']} "
                            f"(rule of three), so TAR at that FAR is not statistically supported")
    # ROC in increasing FAR order for the trapezoid
    auc = float(np.trapezoid(1.0 - frr[::-1], far[::-1]))
    dp = d_prime(g, i)
    if dp is None:
        warnings.append("both score distributions have zero variance: d' is undefined (reported as null)")
    if g.size < 10:
        warnings.append(f"only {g.size} genuine pairs: EER and TAR have a resolution of 1/{g.size}")
    return {
        "eer": eer,
        "eer_threshold": eer_thr,
        "tar_at_far": {k: p["tar"] for k, p in points.items()},
        "operating_points": points,
        "auc": auc,
        "d_prime": dp,
        "genuine": score_stats(g),
        "impostor": score_stats(i),
        "warnings": warnings,
        "conventions": CONVENTIONS,
    }
