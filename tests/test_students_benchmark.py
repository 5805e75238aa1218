"""The pure parts of benchmarks/students.py, channel_speedup.py and alternating.py: no training, no timing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def mods():
    sys.path.insert(0, str(BENCH))
    try:
        yield _load("alternating"), _load("students"), _load("channel_speedup")
    finally:
        sys.path.remove(str(BENCH))


def test_alternate_runs_round_robin_blocks_after_warmup(mods):
    alt, _, _ = mods
    calls = []
    ticks = iter(range(0, 10_000, 10))
    samples = alt.alternate({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=2, per_round=2,
                            warmup=1, clock=lambda: next(ticks))
    assert calls == ["a", "b", "a", "a", "b", "b", "a", "a", "b", "b"]
    assert {k: len(v) for k, v in samples.items()} == {"a": 4, "b": 4}
    assert all(v == 10 for vs in samples.values() for v in vs)
    with pytest.raises(ValueError):
        alt.alternate({"a": lambda: None}, rounds=0, per_round=1, warmup=0)


def test_ratios_are_reference_over_each(mods):
    alt, _, _ = mods
    assert alt.ratios({"teacher": 100.0, "s": 10.0}, "teacher") == {"teacher": 1.0, "s": 10.0}


def test_pareto_front_keeps_only_undominated_points(mods):
    _, st, _ = mods
    pts = [(100.0, 5.0), (10.0, 6.0), (20.0, 7.0), (5.0, 20.0), (50.0, 5.0)]
    # (20, 7) is beaten by (10, 6); (100, 5) by (50, 5)
    assert st.pareto(pts) == [3, 1, 4]


def _line(name, eer, ort, lite):
    return {"name": name, "eer": eer, "onnxruntime_speedup": ort, "litert_speedup": lite}


def test_goal_needs_both_runtimes_and_one_eer_point(mods):
    _, st, _ = mods
    rts = ["onnxruntime", "litert"]
    lines = [_line("teacher", 0.05, 1, 1), _line("fast-on-one", 0.055, 12, 8), _line("close", 0.059, 4, 5),
             _line("fast-bad", 0.10, 15, 14)]
    v = st.goal(lines, rts)
    assert not v["met"]
    assert v["fastest_within_1pt"] == {"name": "fast-on-one", "eer_points_worse": 0.5, "speedup_both_runtimes": 8}
    assert v["most_accurate_10x"] == {"name": "fast-bad", "eer_points_worse": 5.0, "speedup_both_runtimes": 14}
    lines.append(_line("winner", 0.058, 11, 10.5))
    assert st.goal(lines, rts)["met"]
    lines[0]["eer"] = lines[-1]["eer"] = 0.49  # a teacher near chance: "within 1 point" says nothing
    v = st.goal(lines, rts)
    assert not v["met"] and not v["accuracy_meaningful"] and v["fastest_within_1pt"]["name"] == "fast-bad"


def test_channel_summary_puts_latency_ratio_next_to_flops_ratio(mods):
    _, _, cs = mods
    rows = [{"name": "dense", "parameters": 100, "flops": 400}, {"name": "p", "parameters": 50, "flops": 100}]
    timing = {"onnx": {"runtime": "onnxruntime", "median_ms": {"dense": 40.0, "p": 20.0},
                       "speedup": {"dense": 1.0, "p": 2.0}}}
    dense, p = cs.summarize(rows, timing)
    assert dense["flops_ratio"] == 1.0 and p["flops_ratio"] == 4.0 and p["params_ratio"] == 2.0
    assert p["onnxruntime_speedup"] == 2.0 and p["onnxruntime_speedup_over_flops_ratio"] == 0.5
