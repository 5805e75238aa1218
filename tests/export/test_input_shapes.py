"""Every exporter takes the bundle's (C, H, W): grayscale and rectangular inputs, with parity passed.

Before issue 24 each exporter built its input from one square side and three channels
(``[1, 3, s, s]``), so a 1-channel or H != W bundle could not be described, let alone exported.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from toolchain.export.base import ExportRequest, export_bundle
from toolchain.models.bundle import init_bundle

CASES = [
    # (target, device, precision, expected input shape): NCHW for ONNX / Core ML, NHWC for TFLite, no batch on iOS 12
    ("onnx", None, None, ["batch", 1, 32, 64]),
    ("coreml", "iphone6", None, [1, 32, 64]),
    ("coreml", "iphonexr", None, [1, 1, 32, 64]),
    ("tflite", "android", "int8", [1, 32, 64, 1]),
]


@pytest.fixture(scope="module")
def gray_bundle(tmp_path_factory):
    return init_bundle("tiny_ocular", tmp_path_factory.mktemp("gray") / "b", channels=1, input_size=(32, 64))


@pytest.fixture(scope="module")
def bgr_bundle(tmp_path_factory):
    return init_bundle("tiny_ocular", tmp_path_factory.mktemp("bgr") / "b", input_size=(48, 32), color="bgr")


@pytest.mark.parametrize("target, device, precision, shape", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_gray_rectangular_export(gray_bundle, tmp_path, target, device, precision, shape):
    calib = tmp_path / "calib"
    calib.mkdir()
    from toolchain.artifact.inputs import smooth_random_images

    # the user's own gray images (seeded, 40x80: resized on reading), read as one channel for calibration
    for i, img in enumerate(smooth_random_images(8, (1, 40, 80), seed=11)):
        Image.fromarray(img[0].astype("uint8"), "L").save(calib / f"{i}.png")
    (o,) = export_bundle(ExportRequest(gray_bundle, target, tmp_path / "a", devices=[device] if device else [],
                                       precision=precision, calibration_dir=calib if precision == "int8" else None))
    man = json.loads((o.folder / "manifest.json").read_text())
    assert man["parity"]["status"] == "passed", man["parity"]
    assert man["input"]["shape"] == shape and man["input"]["color"] == "gray"
    assert man["input"]["normalization"]["mean"] == [0.449]
    with Image.open(o.folder / "fixed_input.png") as im:
        assert im.mode == "L" and im.size == (64, 32)
    if target != "coreml":  # what `deploy bench host` would time: the gray fixed image, as one channel
        from toolchain.bench.host import resolve_target

        assert resolve_target(o.folder).pixels_nchw.shape == (1, 1, 32, 64)


@pytest.mark.parametrize("target, device, shape", [("onnx", None, ["batch", 3, 48, 32]),
                                                    ("coreml", "iphone6", [3, 48, 32])])
def test_rgb_rectangular_bgr_export(bgr_bundle, tmp_path, target, device, shape):
    (o,) = export_bundle(ExportRequest(bgr_bundle, target, tmp_path / "a", devices=[device] if device else []))
    man = json.loads((o.folder / "manifest.json").read_text())
    assert man["parity"]["status"] == "passed" and man["input"]["shape"] == shape and man["input"]["color"] == "bgr"
