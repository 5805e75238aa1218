"""Verification metrics: hand-checked cases, sklearn as an independent reference, analytic Gaussians."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import norm
from sklearn import metrics as skm

from toolchain.errors import MetricsError, ToolchainError
from toolchain.evaluate.metrics import (
    compute_metrics,
    d_prime,
    det_curve,
    equal_error_rate,
    far_key,
    roc_curve,
    tar_at_far,
)


def sklearn_eer(genuine: np.ndarray, impostor: np.ndarray, drop_intermediate: bool = True) -> tuple[float, float]:
    """EER from sklearn's ROC points: intersect the ROC segment that crosses FNR = FPR with that line."""
    y = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    fpr, tpr, thr = skm.roc_curve(y, np.r_[genuine, impostor], drop_intermediate=drop_intermediate)
    fnr = 1.0 - tpr
    k = int(np.flatnonzero(fnr - fpr <= 0)[0])  # sklearn walks from +inf downwards: FNR - FPR goes +1 -> -1
    if fnr[k] == fpr[k]:
        return float(fpr[k]), float(thr[k])
    x1, y1, x2, y2 = fpr[k - 1], fnr[k - 1], fpr[k], fnr[k]
    u = (y1 - x1) / ((x2 - x1) - (y2 - y1))  # point x1 + u(x2-x1) = y1 + u(y2-y1) on the segment
    t = thr[k - 1] + u * (thr[k] - thr[k - 1]) if np.isfinite(thr[k - 1]) else thr[k]
    return float(x1 + u * (x2 - x1)), float(t)


CASES = {
    "continuous": lambda r: (r.normal(1.0, 1.0, 500), r.normal(0.0, 1.0, 2000)),
    "heavy_ties": lambda r: (np.round(r.normal(0.6, 0.2, 400), 1), np.round(r.normal(0.2, 0.2, 900), 1)),
    "integers": lambda r: (r.integers(0, 6, 50).astype(float), r.integers(0, 4, 70).astype(float)),
    "tiny": lambda r: (r.normal(0.3, 0.3, 3), r.normal(0.0, 0.3, 4)),
    "overlapping_cosines": lambda r: (np.clip(r.normal(0.5, 0.3, 300), -1, 1), np.clip(r.normal(0.45, 0.3, 300), -1, 1)),
    "inverted": lambda r: (r.normal(-1.0, 0.5, 100), r.normal(1.0, 0.5, 100)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eer_and_auc_agree_with_sklearn(case, seed):
    g, i = CASES[case](np.random.default_rng(seed))
    eer, thr = equal_error_rate(g, i)
    ref_eer, _ = sklearn_eer(g, i, drop_intermediate=True)  # dropped collinear points: same interpolated curve
    assert abs(eer - ref_eer) < 1e-6
    ref_eer_full, ref_thr = sklearn_eer(g, i, drop_intermediate=False)
    assert abs(eer - ref_eer_full) < 1e-6
    if np.isfinite(ref_thr):
        assert abs(thr - ref_thr) < 1e-6
    m = compute_metrics(g, i)
    y = np.r_[np.ones(len(g)), np.zeros(len(i))]
    assert abs(m["auc"] - skm.roc_auc_score(y, np.r_[g, i])) < 1e-6
    assert m["eer"] == eer


@pytest.mark.parametrize("case", sorted(CASES))
def test_roc_points_are_sklearns(case):
    g, i = CASES[case](np.random.default_rng(7))
    far, tar, thr = roc_curve(g, i)
    fpr, tpr, sk_thr = skm.roc_curve(np.r_[np.ones(len(g)), np.zeros(len(i))], np.r_[g, i], drop_intermediate=False)
    np.testing.assert_allclose(far, fpr, atol=1e-12)
    np.testing.assert_allclose(tar, tpr, atol=1e-12)
    np.testing.assert_array_equal(thr[1:], sk_thr[1:])
    dfar, frr, _ = det_curve(g, i)
    np.testing.assert_allclose(frr, 1 - tpr, atol=1e-12)
    np.testing.assert_array_equal(dfar, far)


def test_tar_at_far_agrees_with_sklearn():
    r = np.random.default_rng(3)
    g, i = r.normal(2.0, 1.0, 3000), r.normal(0.0, 1.0, 20000)
    fpr, tpr, _ = skm.roc_curve(np.r_[np.ones(len(g)), np.zeros(len(i))], np.r_[g, i])
    for f in (1e-2, 1e-3, 1e-4):
        assert compute_metrics(g, i)["tar_at_far"][far_key(f)] == pytest.approx(tpr[fpr <= f].max(), abs=1e-12)


def test_hand_example():
    m = compute_metrics([0.9, 0.8, 0.4], [0.5, 0.3, 0.2], fars=(0.3,))
    assert m["eer"] == pytest.approx(1 / 3) and m["eer_threshold"] == 0.5
    assert m["auc"] == pytest.approx(8 / 9)
    p = m["operating_points"]["3e-1"]
    assert (p["tar"], p["far"], p["threshold"], p["supported"]) == (pytest.approx(2 / 3), 0.0, 0.8, False)
    assert m["genuine"]["count"] == 3 and m["impostor"]["max"] == 0.5
    assert m["genuine"]["mean"] == pytest.approx(0.7)
    json.dumps(m, allow_nan=False)  # metrics.json must be strict JSON


def test_interpolated_eer_between_thresholds():
    # t=0.5: FAR 1/2, FRR 1/3 (D=+1/6); t=0.6: FAR 0, FRR 1/3 (D=-1/3) -> a = 1/3 of the way:
    # EER = 1/2 - 1/3 * 1/2 = 1/3, threshold 0.5 + 0.1/3
    eer, thr = equal_error_rate([0.6, 0.3, 0.8], [0.5, 0.1])
    assert eer == pytest.approx(1 / 3) and thr == pytest.approx(0.5 + 0.1 / 3)


def test_perfect_and_inverted_separation():
    m = compute_metrics([0.9, 0.8], [0.1, 0.2], fars=(0.5,))
    assert m["eer"] == 0.0 and m["auc"] == 1.0 and m["tar_at_far"]["5e-1"] == 1.0
    assert 0.2 <= m["eer_threshold"] <= 0.8
    m = compute_metrics([0.0, 1.0], [2.0, 3.0], fars=(0.5,))
    assert m["eer"] == 1.0 and m["auc"] == 0.0
    assert m["operating_points"]["5e-1"]["threshold"] == 3.0  # the top impostor alone is FAR 1/2


def test_constant_classes_give_null_d_prime_and_a_warning():
    m = compute_metrics([1.0, 1.0], [0.0, 0.0, 0.0])
    assert m["d_prime"] is None and m["eer"] == 0.0
    assert any("d'" in w for w in m["warnings"])


def test_two_gaussians_equal_variance_match_analytic_values():
    mu_g, mu_i, sigma, n = 0.7, 0.1, 0.15, 200_000
    r = np.random.default_rng(11)
    g, i = r.normal(mu_g, sigma, n), r.normal(mu_i, sigma, n)
    m = compute_metrics(g, i)
    eer_true = norm.cdf(-(mu_g - mu_i) / (2 * sigma))  # 0.0228
    se = np.sqrt(eer_true * (1 - eer_true) / n)
    assert abs(m["eer"] - eer_true) < 5 * se
    assert abs(m["eer_threshold"] - (mu_g + mu_i) / 2) < 0.005
    assert m["d_prime"] == pytest.approx((mu_g - mu_i) / sigma, rel=0.01)
    assert m["auc"] == pytest.approx(norm.cdf((mu_g - mu_i) / (np.sqrt(2) * sigma)), abs=1e-3)
    # TAR at FAR 1e-2: threshold at the impostor 99th percentile
    tar_true = norm.sf((mu_i + sigma * norm.isf(1e-2) - mu_g) / sigma)
    assert m["tar_at_far"]["1e-2"] == pytest.approx(tar_true, abs=0.005)
    assert m["warnings"] == []  # 200k impostor pairs support FAR 1e-4


def test_two_gaussians_unequal_variance_match_analytic_eer():
    mu_g, s_g, mu_i, s_i, n = 0.6, 0.1, 0.0, 0.2, 200_000
    r = np.random.default_rng(12)
    m = compute_metrics(r.normal(mu_g, s_g, n), r.normal(mu_i, s_i, n))
    eer_true = norm.cdf(-(mu_g - mu_i) / (s_g + s_i))  # crossing where (t-mu_i)/s_i = (mu_g-t)/s_g
    assert abs(m["eer"] - eer_true) < 5 * np.sqrt(eer_true * (1 - eer_true) / n)
    assert m["eer_threshold"] == pytest.approx((mu_i * s_g + mu_g * s_i) / (s_g + s_i), abs=0.005)


@pytest.mark.parametrize("n_impostor, supported", [(2999, False), (3000, True)])
def test_rule_of_three_warning(n_impostor, supported):
    r = np.random.default_rng(0)
    m = compute_metrics(r.normal(1, 1, 50), r.normal(0, 1, n_impostor), fars=(1e-3,))
    p = m["operating_points"]["1e-3"]
    assert p["supported"] is supported and p["min_impostor_pairs"] == 3000
    assert any("FAR 1e-3" in w and "rule of three" in w for w in m["warnings"]) is not supported


def test_default_fars_and_keys():
    r = np.random.default_rng(0)
    m = compute_metrics(r.normal(1, 1, 20), r.normal(0, 1, 500))
    assert list(m["tar_at_far"]) == ["1e-2", "1e-3", "1e-4"]
    assert sum("rule of three" in w for w in m["warnings"]) == 2  # 500 < 3000 and < 30000; 500 >= 300
    assert far_key(0.005) == "5e-3"


@pytest.mark.parametrize("genuine, impostor, message", [
    ([0.5, 0.5], [0.5, 0.5, 0.5], "all 5 scores equal"),
    ([], [0.1, 0.2], "no genuine scores"),
    ([0.1, 0.2], [], "no impostor scores"),
    ([0.1, float("nan")], [0.2, 0.3], "1 of 2 genuine scores are NaN"),
    ([0.1, 0.2], [0.2, float("inf")], "impostor scores are NaN or infinite"),
    ([[0.1, 0.2]], [0.3], "1-D"),
])
def test_degenerate_inputs_raise_clear_errors(genuine, impostor, message):
    with pytest.raises(MetricsError, match=message) as e:
        compute_metrics(genuine, impostor)
    assert isinstance(e.value, ToolchainError)
    with pytest.raises(MetricsError):
        equal_error_rate(genuine, impostor)


@pytest.mark.parametrize("far", [0.0, 1.0, -1e-3, float("nan")])
def test_bad_far_target(far):
    with pytest.raises(MetricsError, match="between 0 and 1"):
        compute_metrics([1.0, 0.9], [0.1, 0.2], fars=(far,))
    with pytest.raises(MetricsError):
        tar_at_far([1.0, 0.9], [0.1, 0.2], far)


def test_inputs_are_not_modified():
    g, i = np.array([0.9, 0.1, 0.5]), np.array([0.3, 0.8, 0.2])
    compute_metrics(g, i)
    assert g.tolist() == [0.9, 0.1, 0.5] and i.tolist() == [0.3, 0.8, 0.2]


def test_d_prime_formula():
    assert d_prime(np.array([1.0, 3.0]), np.array([-1.0, 1.0])) == pytest.approx(2.0)
