"""benchmarks/almadan_grid.py's verdicts on the paper's two claims, on hand-made rows (no training: fast)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def grid():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("almadan_grid", BENCH / "almadan_grid.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(BENCH))


METHODS = ("global-gradient", "global-magnitude", "layer-gradient", "layer-magnitude", "random")


def _rows(eer_at_8: dict, student_eer: float, student_ms: float, pruned_ms: float, teacher_eer: float = 0.05):
    rows = [{"name": "teacher", "kind": "teacher", "method": "baseline", "ratio": 1, "eer": teacher_eer,
             "measure": {"compression_shrinkbench": 1.0}}]
    for m in METHODS:
        for q in (2, 4, 8, 16, 32):
            eer = eer_at_8[m] if q == 8 else 0.1 + q / 100
            rows.append({"name": f"{m}@{q}", "kind": "unstructured", "method": m, "ratio": q, "eer": eer,
                         "measure": {"compression_shrinkbench": float(q)},
                         **({"latency_ms": {"onnxruntime": pruned_ms}} if q == 8 else {})})
    rows.append({"name": "kd resnet18", "kind": "student", "method": "KD", "ratio": None, "eer": student_eer,
                 "measure": {"compression_shrinkbench": 6.5}, "latency_ms": {"onnxruntime": student_ms}})
    return rows


def test_both_claims_hold_when_the_numbers_say_so(grid):
    eer = {m: 0.2 for m in METHODS} | {"layer-magnitude": 0.1}
    v = grid.claims(_rows(eer, student_eer=0.05, student_ms=2.0, pruned_ms=9.0), ["onnxruntime"])
    c1, c2 = v["claim_1_layer_magnitude_best_at_8x"], v["claim_2_kd_beats_pruning"]
    assert c1["holds"] is True and c1["ranking_by_eer"][0][0] == "layer-magnitude"
    s = c2["students"][0]
    assert s["compared_ratio"] == 8 and s["best_pruned_at_ratio"]["row"] == "layer-magnitude@8"
    assert c2["accuracy_holds"] is True and c2["time_holds"] is True and v["meaningful"] is True


def test_claims_fail_when_the_numbers_say_otherwise(grid):
    eer = {m: 0.2 for m in METHODS} | {"global-magnitude": 0.1}
    v = grid.claims(_rows(eer, student_eer=0.3, student_ms=12.0, pruned_ms=9.0, teacher_eer=0.4), ["onnxruntime"])
    assert v["claim_1_layer_magnitude_best_at_8x"]["holds"] is False
    assert v["claim_2_kd_beats_pruning"]["accuracy_holds"] is False
    assert v["claim_2_kd_beats_pruning"]["time_holds"] is False
    assert v["meaningful"] is False and "barely trained" in v["note"]


def test_untimed_runtime_is_not_tested_rather_than_passed(grid):
    eer = {m: 0.2 for m in METHODS} | {"layer-magnitude": 0.1}
    v = grid.claims(_rows(eer, 0.05, 2.0, 9.0), ["litert"])  # nothing was timed on LiteRT
    assert v["claim_2_kd_beats_pruning"]["time_holds"] is None
