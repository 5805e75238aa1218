"""Report statistics against hand-computed values and the standard library's independent implementation."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from toolchain.report.stats import bootstrap_median_ci, pareto_front, summarize

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "results"


def test_hand_computed_five_samples():
    s = summarize([10, 20, 30, 40, 50])
    # median 30; p90 at rank 0.9*4 = 3.6 -> 40 + 0.6*10 = 46; sd = sqrt(((20²+10²)*2)/4) = sqrt(250)
    assert (s.n, s.median_ns, s.p90_ns, s.mean_ns, s.min_ns, s.max_ns) == (5, 30.0, 46.0, 30.0, 10.0, 50.0)
    assert s.sd_ns == pytest.approx(250 ** 0.5)
    assert s.ci_low_ns <= s.median_ns <= s.ci_high_ns
    assert 10 <= s.ci_low_ns and s.ci_high_ns <= 50


@pytest.mark.parametrize("name", ["ok", "partial"])
def test_fixture_samples_match_the_standard_library(name):
    lat = json.loads((FIXTURES / f"{name}.json").read_text())["latency_ns"]
    s = summarize(lat)
    assert s.median_ns == statistics.median(lat)
    assert s.mean_ns == pytest.approx(statistics.fmean(lat))
    assert s.sd_ns == pytest.approx(statistics.stdev(lat))
    assert s.p90_ns == pytest.approx(statistics.quantiles(lat, n=10, method="inclusive")[-1])
    assert s.min_ns == min(lat)


def test_single_sample_and_constant_samples():
    s = summarize([7])
    assert (s.median_ns, s.sd_ns, s.ci_low_ns, s.ci_high_ns) == (7.0, None, 7.0, 7.0)
    assert bootstrap_median_ci([3, 3, 3, 3]) == (3.0, 3.0)
    with pytest.raises(ValueError):
        summarize([])


def test_bootstrap_is_seeded_and_narrows_with_more_samples():
    import numpy as np

    rng = np.random.default_rng(1)
    small = rng.normal(100, 10, 20)
    big = rng.normal(100, 10, 2000)
    assert bootstrap_median_ci(small) == bootstrap_median_ci(small)
    lo_s, hi_s = bootstrap_median_ci(small)
    lo_b, hi_b = bootstrap_median_ci(big)
    assert hi_b - lo_b < hi_s - lo_s
    assert lo_b < 100 < hi_b


def test_pareto_front_minimises_both_axes():
    assert pareto_front([(1, 5), (2, 2), (3, 3), (4, 1)]) == [0, 1, 3]
    assert pareto_front([(1, 1), (1, 1)]) == [0, 1]  # ties dominate nothing
    assert pareto_front([]) == []


def test_large_runs_use_the_order_statistic_interval_which_agrees_with_the_bootstrap(monkeypatch):
    import numpy as np

    from toolchain.report import stats

    x = np.random.default_rng(1).lognormal(15, 0.2, 30_000)
    fast = stats.bootstrap_median_ci(x)  # n > BOOTSTRAP_MAX_N: order statistics, milliseconds
    assert fast == stats.order_statistic_median_ci(x)
    monkeypatch.setattr(stats, "BOOTSTRAP_MAX_N", 10**9)
    slow = stats.bootstrap_median_ci(x, resamples=300)
    med = float(np.median(x))
    assert fast[0] < med < fast[1]
    assert abs(fast[0] - slow[0]) / med < 5e-4 and abs(fast[1] - slow[1]) / med < 5e-4
