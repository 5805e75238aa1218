"""Verdicts that can be trusted (issue 24, part 4): each case of the issue's "Why" as a test.

* parity compared against the fp32 model on seeded noise even when ``--calibration`` gave the user's images;
* the manifest did not record PyTorch's own int8 (or fp16) cosine, so quantisation's loss and the converter's
  could not be told apart — a verdict flipped both ways;
* a failed fp16 parity came with no hint why or what to try.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli._cli import deploy
from toolchain.artifact.manifest import ParityResult
from toolchain.export.calibration import calibration_and_parity
from toolchain.export.reduced import Reduced, int8_weights
from toolchain.export.verdict import hints, judge, summary


def _images(folder: Path, n: int, size: int = 16) -> list[Path]:
    """``n`` images, image i filled with the grey level 10 * i + 5 (so each can be recognised after loading)."""
    paths = []
    for i in range(n):
        sub = folder / f"subject{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(i)
        img = np.full((size, size, 3), 10 * i + 5, np.uint8)
        img[: size // 2] = rng.integers(0, 255, (size // 2, size, 3), dtype=np.uint8)  # a textured half
        paths.append(sub / f"img{i:02d}.png")
        Image.fromarray(img).save(paths[-1])
    return paths


def _levels(pixels: np.ndarray) -> set[int]:
    return {int(round(float(p[0, -1, -1]))) for p in pixels}


def test_parity_images_are_held_out_from_calibration(tmp_path):
    # before: parity always ran on 4 seeded smooth-noise images, whatever --calibration gave
    _images(tmp_path / "cal", 10)
    calib, parity, note = calibration_and_parity(16, tmp_path / "cal")
    assert note is None and parity is not None
    assert len(parity) == 5 and len(calib) == 5
    assert not _levels(calib) & _levels(parity)  # never a calibration image
    assert _levels(calib) | _levels(parity) == {10 * i + 5 for i in range(10)}
    _images(tmp_path / "data", 12)
    calib2, parity2, _ = calibration_and_parity(16, None, tmp_path / "data", n_parity=4)
    assert len(parity2) == 4 and len(calib2) == 16  # seeded calibration, the user's images for parity
    # --data and --calibration naming one folder (what a user quantising with their own images types): held out
    # from it as with --calibration alone, not seeded noise
    calib3, parity3, note3 = calibration_and_parity(16, tmp_path / "cal", tmp_path / "cal")
    assert note3 is None and parity3 is not None and len(parity3) == 5 and len(calib3) == 5
    assert not _levels(parity3) & _levels(calib3)


def test_one_calibration_image_cannot_be_held_out_and_says_so(tmp_path):
    _images(tmp_path / "cal", 1)
    calib, parity, note = calibration_and_parity(16, tmp_path / "cal")
    assert parity is None and len(calib) == 1 and "seeded" in note


def test_verdict_judges_the_converter_and_states_the_precision_loss():
    """fp32 [1, 0]; PyTorch int8 [0.8, 0.6] (cosine 0.8 to fp32). An artifact equal to PyTorch's int8 model
    passes (the converter is right; int8 costs 0.8); one at [0.6, 0.8] (0.96 to PyTorch's int8) fails."""
    ref = np.array([[1.0, 0.0]])
    red = Reduced("PyTorch int8", lambda px: np.array([[0.8, 0.6]]))
    fp32_only = ParityResult("failed", "rt", cosine_min=0.8, min_cosine_required=0.99, samples=1,
                             mismatches=["sample 0: cosine 0.800000 < 0.99"])
    ok = judge(fp32_only, ref, np.array([[0.8, 0.6]]), red, np.zeros((1, 3, 2, 2)), "int8")
    assert ok.status == "passed" and ok.reduced_cosine == pytest.approx(0.8) and ok.converter_cosine == pytest.approx(1)
    assert ok.cosine_min == 0.8 and ok.mismatches == []
    bad = judge(fp32_only, ref, np.array([[0.6, 0.8]]), red, np.zeros((1, 3, 2, 2)), "int8")
    assert bad.status == "failed" and bad.converter_cosine == pytest.approx(0.96)
    assert bad.mismatches == ["sample 0: artifact vs PyTorch int8 cosine 0.960000 < 0.99"]
    line = summary(ok, "int8")
    assert "converter passed" in line and "0.800000" in line and "1.000000" in line
    tries = " ".join(hints(bad, "int8", user_images=False))
    assert "--precision fp32" in tries and "--calibration" in tries and "per channel" in tries and "float" in tries


def test_no_reduced_model_is_null_with_the_reason_not_a_number():
    base = ParityResult("passed", "rt", cosine_min=0.995, min_cosine_required=0.99, samples=1)
    r = judge(base, np.ones((1, 2)), np.ones((1, 2)), Reduced(why_not="ONNX int8 comes from onnxruntime"), np.zeros(1),
              "int8")
    assert r.reduced_cosine is None and r.converter_cosine is None and "onnxruntime" in r.reduced_reason
    assert "no PyTorch int8 model: ONNX int8" in summary(r, "int8")


def test_int8_weights_worked_example():
    import torch

    lin = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.5, -1.27, 0.004]]))
    q = int8_weights(lin).weight.detach().numpy().ravel()
    np.testing.assert_allclose(q, [0.5, -1.27, 0.0], atol=1e-7)


def test_tflite_int8_parity_on_user_images_records_three_cosines(tiny_bundle, tmp_path, capsys):
    # before: seeded inputs, one cosine (vs fp32), no line saying what int8 itself costs
    size = json.loads((tiny_bundle / "model.json").read_text())["input"]["size"][0]
    _images(tmp_path / "cal", 8, size)
    ran = deploy(capsys, "export", tiny_bundle, "--target", "tflite", "--precision", "int8",
                 "--calibration", tmp_path / "cal", "--out", tmp_path / "e")
    assert ran.code == 0, ran.err
    p = json.loads(next((tmp_path / "e").glob("*/manifest.json")).read_text())["parity"]
    assert p["inputs"] == "user" and p["samples"] == 4  # half of 8 held out, never calibrated on
    assert "PT2E int8" in p["reduced_model"] and p["reduced_reason"] is None
    assert 0 < p["reduced_cosine"] <= 1 and 0 < p["converter_cosine"] <= 1 and 0 < p["cosine_min"] <= 1
    line = next(x for x in ran.out.splitlines() if "converter" in x)
    assert "int8 itself costs" in line and f"{p['converter_cosine']:.6f}" in line and f"{p['reduced_cosine']:.6f}" in line


def test_onnx_int8_has_no_pytorch_model_recorded_as_null(tiny_bundle, tmp_path):
    from toolchain.export.base import ExportRequest, export_bundle

    (o,) = export_bundle(ExportRequest(tiny_bundle, "onnx", tmp_path / "e", precision="int8"))
    p = o.manifest.parity
    assert p.reduced_cosine is None and p.converter_cosine is None and "onnxruntime" in p.reduced_reason
    assert p.inputs == "seeded"


def test_failed_fp16_parity_prints_both_cosines_and_what_to_try(tiny_bundle, tmp_path, capsys):
    # before: "failed" with a cosine and no hint (a KD MobileNetV2 at fp16 0.98)
    ran = deploy(capsys, "export", tiny_bundle, "--target", "coreml", "--device", "iphonexr",
                 "--min-cosine", "0.99999999", "--out", tmp_path / "e")
    assert ran.code == 2
    p = json.loads(next((tmp_path / "e").glob("*/manifest.json")).read_text())["parity"]
    assert p["status"] == "failed" and p["reduced_model"] == "PyTorch fp16 (weights and activations)"
    assert p["reduced_cosine"] is not None and p["converter_cosine"] < 0.99999999
    assert "converter failed" in ran.out and "fp16 itself costs" in ran.out
    assert "try: " in ran.out and "--precision fp32" in ran.out
