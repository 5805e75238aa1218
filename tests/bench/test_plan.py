"""`deploy bench plan`: artifacts checked against the device, a self-contained plan folder written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from toolchain.bench import plan as plan_mod
from toolchain.bench.schema import load_plan
from toolchain.errors import DeviceError, ToolchainError
from toolchain.fsutil import sha256_file


def fake_artifact(root: Path, name: str, fmt: str = "coreml", spec: int | None = 3, min_ios: int | None = 12,
                  parity: str = "passed", devices=("iphone6",), size: int = 8, image: bool = True) -> Path:
    """A manifest folder shaped like `deploy export`'s, with a tiny stand-in artifact file."""
    folder = root / name
    folder.mkdir(parents=True)
    ext = {"coreml": ".mlmodel", "tflite": ".tflite", "onnx": ".onnx"}[fmt]
    art = folder / f"{name}{ext}"
    art.write_bytes(b"not a real model: only hashed and copied " + name.encode())
    shape = [1, size, size, 3] if fmt == "tflite" else [3, size, size] if spec == 3 else [1, 3, size, size]
    if image:
        Image.fromarray(np.full((size, size, 3), 128, np.uint8)).save(folder / "fixed_input.png")
    man = {
        "name": name, "format": fmt, "precision": "fp16" if fmt == "coreml" else "int8", "file": art.name,
        "sha256": sha256_file(art), "size_bytes": art.stat().st_size, "devices": list(devices),
        "min_os": None, "min_ios": min_ios if fmt == "coreml" else None, "spec_version": spec if fmt == "coreml" else None,
        "input": {"name": "pixels", "shape": shape, "layout": "nhwc" if fmt == "tflite" else "nchw",
                  "dtype": "int8" if fmt == "tflite" else "float32", "pixel_range": [0, 255],
                  **({"quantization": {"scale": 1.0, "zero_point": -128}} if fmt == "tflite" else {})},
        "output": {"name": "features", "dim": 32}, "source_bundle_sha256": "1" * 64,
        "parity": {"status": parity, "reason": "no runtime" if parity == "skipped" else None,
                   "mismatches": ["cosine 0.2 < 0.99"] if parity == "failed" else []},
        "reference_features": {"input": "fixed_input.png", "sample": [0.5] * 16},
    }
    (folder / "manifest.json").write_text(json.dumps(man))
    return folder


def req(arts, device, out, **kw) -> plan_mod.PlanRequest:
    return plan_mod.PlanRequest(artifact_dirs=list(arts), device=device, out=out, **kw)


def test_iphone6_plan_folder_is_self_contained(tmp_path):
    a = fake_artifact(tmp_path / "exp", "tiny-coreml-ios12")
    out = tmp_path / "BenchPlan"
    path, p = plan_mod.make_plan(req([a], "iphone6", out, compute_units=["all", "cpu"], warmup=2, iterations=5))
    assert path == out / "plan.json" and load_plan(path) == p
    assert [r["compute_units"] for r in p["runs"]] == ["all", "cpuOnly"]
    run = p["runs"][0]
    assert run["input"]["layout"] == "chw" and run["input"]["shape"] == [3, 8, 8]
    assert run["input"]["color"] == "rgb"  # the apps take the channel order (and gray for 1 channel) from it
    assert run["delegate"] is None and run["threads"] is None
    assert sha256_file(out / run["artifact"]["path"]) == run["artifact"]["sha256"]
    assert (out / "artifacts" / a.name / "manifest.json").is_file()
    assert (out / run["fixed_input"]).is_file() and p["inputs"] == [run["fixed_input"]]
    assert (out / ".gitignore").read_text().splitlines()[1] == "*"
    assert p["protocol"] == {"warmup": 2, "iterations": 5, "input_source": "image", "input_seed": None, "cooldown_ms": 0}
    assert p["warnings"] == []


def test_android_plan_maps_delegates_and_threads(tmp_path):
    a = fake_artifact(tmp_path / "exp", "tiny-tflite-int8", fmt="tflite", devices=("android",))
    _, p = plan_mod.make_plan(req([a], "android", tmp_path / "out", compute_units=["cpu", "gpu", "nnapi"],
                                  threads=2, input_source="random", input_seed=7))
    assert [(r["compute_units"], r["delegate"], r["threads"]) for r in p["runs"]] == [
        ("cpu", "xnnpack", 2), ("gpu", "gpu", None), ("nnapi", "nnapi", None)]
    assert p["runs"][0]["input"]["quantization"] == {"scale": 1.0, "zero_point": -128}
    assert p["protocol"]["input_seed"] == 7


@pytest.mark.parametrize("kwargs, device, match", [
    ({"fmt": "tflite"}, "iphone6", "the ios harness runs coreml"),
    ({"fmt": "coreml"}, "android", "the android harness runs tflite"),
    ({"spec": 9, "min_ios": 18, "devices": ("iphonexr",)}, "iphone6", "spec 9, but iPhone 6"),
    ({"spec": 6, "min_ios": 15}, "ipadair2", None),  # iPad Air 2 runs iPadOS 15: spec 6 is fine
    ({"spec": 7, "min_ios": 16}, "ipadair2", "spec 7, but iPad Air 2"),
    ({"parity": "failed"}, "iphone6", "parity with PyTorch failed"),
])
def test_artifacts_not_meant_for_the_device_are_refused(tmp_path, kwargs, device, match):
    a = fake_artifact(tmp_path / "exp", "art", **kwargs)
    r = req([a], device, tmp_path / "out")
    if match is None:
        plan_mod.make_plan(r)
        assert (tmp_path / "out" / "plan.json").is_file()
        return
    with pytest.raises(ToolchainError, match=match):
        plan_mod.make_plan(r)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_skipped_parity_and_other_device_are_warnings(tmp_path):
    a = fake_artifact(tmp_path / "exp", "art", spec=4, min_ios=13, parity="skipped", devices=("iphonex",))
    _, p = plan_mod.make_plan(req([a], "ipad7", tmp_path / "out"))
    assert any("parity skipped" in w for w in p["warnings"])
    assert any("exported for iphonex, not ipad7" in w for w in p["warnings"])


def test_bad_requests_are_refused_before_writing(tmp_path):
    a = fake_artifact(tmp_path / "exp", "art")
    with pytest.raises(DeviceError, match="cpuAndNeuralEngine.*not available on iPhone 6|not available on iPhone 6"):
        plan_mod.make_plan(req([a], "iphone6", tmp_path / "o1", compute_units=["ane"]))
    with pytest.raises(DeviceError, match="--threads applies to LiteRT"):
        plan_mod.make_plan(req([a], "iphone6", tmp_path / "o2", threads=2))
    with pytest.raises(ToolchainError, match="iterations"):
        plan_mod.make_plan(req([a], "iphone6", tmp_path / "o3", iterations=0))
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "thesis.tex").write_text("precious")
    with pytest.raises(ToolchainError, match="non-empty folder"):
        plan_mod.make_plan(req([a], "iphone6", keep))
    assert (keep / "thesis.tex").read_text() == "precious"
    assert not any((tmp_path / d).exists() for d in ("o1", "o2", "o3"))


def test_tampered_artifact_and_missing_image_are_refused(tmp_path):
    a = fake_artifact(tmp_path / "exp", "art")
    (a / "art.mlmodel").write_bytes(b"changed")
    with pytest.raises(ToolchainError, match="changed after export"):
        plan_mod.make_plan(req([a], "iphone6", tmp_path / "out"))
    b = fake_artifact(tmp_path / "exp", "noimg", image=False)
    with pytest.raises(ToolchainError, match="no fixed input image"):
        plan_mod.make_plan(req([b], "iphone6", tmp_path / "out"))
    _, p = plan_mod.make_plan(req([b], "iphone6", tmp_path / "out", input_source="random"))
    assert p["runs"][0]["fixed_input"] is None and p["protocol"]["input_seed"] == 0


def test_a_plan_folder_can_be_replaced(tmp_path):
    a = fake_artifact(tmp_path / "exp", "art")
    out = tmp_path / "out"
    plan_mod.make_plan(req([a], "iphone6", out, plan_id="first"))
    plan_mod.make_plan(req([a], "iphone6", out, plan_id="second"))
    assert json.loads((out / "plan.json").read_text())["plan_id"] == "second"


def test_cli(tmp_path):
    from toolchain.cli import app

    a = fake_artifact(tmp_path / "exp", "art")
    res = CliRunner().invoke(app, ["bench", "plan", str(a), "--device", "iphone6", "--compute-units", "all,cpu",
                                   "--warmup", "1", "--iterations", "3", "--out", str(tmp_path / "BenchPlan")])
    assert res.exit_code == 0, res.output
    assert "2 runs on iphone6" in res.output
    bad = CliRunner().invoke(app, ["bench", "plan", str(a), "--device", "android", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and isinstance(bad.exception, ToolchainError)
