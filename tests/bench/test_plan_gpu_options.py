"""`deploy bench plan` writes the LiteRT GPU delegate's settings into GPU runs, so the app sets them explicitly."""

from __future__ import annotations

import pytest

from tests.bench.test_plan import fake_artifact, req
from toolchain.bench import plan as plan_mod
from toolchain.bench.schema import SchemaError, default_gpu_options, validate_plan


def test_gpu_runs_carry_explicit_delegate_options_and_other_runs_none(tmp_path):
    a = fake_artifact(tmp_path / "exp", "tiny-tflite-int8", fmt="tflite", devices=("android",))
    _, p = plan_mod.make_plan(req([a], "android", tmp_path / "out", compute_units=["cpu", "gpu"]))
    cpu, gpu = p["runs"]
    assert "gpu_options" not in cpu
    assert gpu["gpu_options"] == {"precision_loss_allowed": True, "inference_preference": "sustained_speed"}
    assert default_gpu_options("fp32")["precision_loss_allowed"] is False


def test_gpu_options_on_a_cpu_run_are_refused(tmp_path):
    a = fake_artifact(tmp_path / "exp", "tiny-tflite-int8", fmt="tflite", devices=("android",))
    _, p = plan_mod.make_plan(req([a], "android", tmp_path / "out", compute_units=["cpu"]))
    p["runs"][0]["gpu_options"] = default_gpu_options("fp32")
    with pytest.raises(SchemaError, match="applies to gpu only"):
        validate_plan(p)
