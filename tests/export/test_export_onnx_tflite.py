"""ONNX and TFLite exports end to end: conversion, manifest, parity, failure modes."""

import json
import shutil

import numpy as np
import pytest

from toolchain.artifact.inputs import smooth_random_images
from toolchain.errors import BundleError, DeviceError, ParityError, RegistryError, ToolchainError
from toolchain.evaluate.features import load_artifact_model
from toolchain.export.base import ExportRequest, export_bundle

# Manifest v2: format facts (Core ML's spec_version, TFLite's int8_mode, ONNX's opset) moved into the
# format's own block, which every manifest carries (checked below as `target in m`).
MANIFEST_KEYS = {"format", "precision", "file", "sha256", "size_bytes", "devices", "min_os", "input",
                 "output", "source_bundle_sha256", "converter_versions", "parity", "reference_features"}


@pytest.mark.parametrize("target,precision", [("onnx", "fp32"), ("onnx", "fp16"), ("onnx", "int8"),
                                              ("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "int8")])
def test_tiny_export_passes_parity(tiny_bundle, tmp_path, target, precision):
    (o,) = export_bundle(ExportRequest(tiny_bundle, target, tmp_path, precision=precision))
    m = o.manifest.to_json()
    assert MANIFEST_KEYS <= set(m) and target in m
    assert m["parity"]["status"] == "passed", m["parity"]
    assert m["parity"]["cosine_min"] >= {"fp32": 0.99999, "fp16": 0.999, "int8": 0.99}[precision]
    assert (o.folder / m["file"]).is_file() and (o.folder / "fixed_input.png").is_file()
    assert json.loads((o.folder / "manifest.json").read_text())["sha256"] == m["sha256"]
    assert m["output"]["dim"] == 64 and len(m["reference_features"]["sample"]) == 16
    # The artifact runs through the same runner evaluation uses, on fresh inputs.
    model = load_artifact_model(o.folder)
    feats = model.extract(smooth_random_images(2, 64, seed=77))
    assert feats.shape == (2, 64) and model.runtime.startswith({"onnx": "onnxruntime", "tflite": "LiteRT"}[target])
    if target == "tflite":
        assert m["input"]["layout"] == "nhwc" and m["input"]["shape"] == [1, 64, 64, 3]


def test_tflite_dynamic_int8_is_named_and_passes(tiny_bundle, tmp_path):
    (o,) = export_bundle(ExportRequest(tiny_bundle, "tflite", tmp_path, precision="int8", int8_mode="dynamic"))
    assert o.folder.name.endswith("_dynamic") and o.manifest.tflite.int8_mode == "dynamic"
    assert o.manifest.parity.status == "passed"


def test_pytorch_int8_model_is_the_artifacts_quantisation(tiny_bundle, tmp_path):
    """``quantize_int8`` (what the export converts, and what benchmarks/architectures.py runs to measure
    quantisation's loss before any converter) is a quantised model: near fp32, not equal to it, and near the
    artifact made from it."""
    import torch

    from toolchain.artifact.compare import cosine_per_sample
    from toolchain.artifact.inputs import calibration_images, parity_inputs
    from toolchain.export.tflite import quantize_int8
    from toolchain.artifact.module import DeployModule
    from toolchain.models.bundle import load_bundle

    b = load_bundle(tiny_bundle)
    module = DeployModule(b.model, b.mean, b.std, "nhwc").eval()
    graph, _ = quantize_int8(module, calibration_images(b.input_size), "nhwc")
    x = parity_inputs(b.input_size)
    xl = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    with torch.no_grad():
        fp32 = module(xl).numpy()
        q = np.concatenate([graph(xl[i:i + 1]).numpy() for i in range(len(xl))])
    assert not np.allclose(q, fp32, atol=1e-6)  # it really is quantised
    assert cosine_per_sample(q, fp32).min() > 0.99
    (o,) = export_bundle(ExportRequest(tiny_bundle, "tflite", tmp_path, precision="int8"))
    art = load_artifact_model(o.folder).extract(x)
    assert cosine_per_sample(art, q).min() > 0.99


def _concat_of_shared_tensor():
    """DenseNet's pattern at its smallest: one tensor feeds a ``cat`` raw and, through ReLU and a conv, the
    ``cat`` again; the integer scalar (``2 * ...``) is one a strict capture lifts to an int64 constant."""
    import torch
    from torch import nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.conv = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 8, 3, padding=1)

        def forward(self, x):
            x = self.stem(x / 255.0 - 0.5)
            return torch.cat([x, 2 * self.conv(torch.relu(x))], 1).mean((2, 3))

    return M()


def _avg_pool_on_a_small_map():
    """Inception v3's branch pool, ``avg_pool2d(x, 3, 1, 1)``, where (as at 96 px) the map is tiny."""
    import torch
    from torch import nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.conv = nn.Conv2d(3, 16, 16, stride=16), nn.Conv2d(16, 16, 1)

        def forward(self, x):
            x = torch.relu(self.stem(x / 255.0 - 0.5))
            return self.conv(torch.nn.functional.avg_pool2d(x, 3, 1, 1)).mean((2, 3))

    return M()


@pytest.mark.parametrize("build, op", [(_concat_of_shared_tensor, "cat"), (_avg_pool_on_a_small_map, "avg_pool2d")])
def test_int8_quantises_the_op_and_the_artifact_is_pytorchs_int8_model(tmp_path, build, op):
    """Every input of the op is quantised in PyTorch's int8 model, and the LiteRT artifact computes what that
    model computes. Measured before the fixes (artifact vs PyTorch's int8 model): the ``cat``, captured
    non-strict so litert-torch's annotators never saw it, 0.99986 (0.986 without the scalar); the
    ``avg_pool2d`` on a 2x2 map, which litert-torch does not annotate, 0.939. Both 1.000000 now."""
    import litert_torch
    import torch
    from ai_edge_litert.interpreter import Interpreter
    from litert_torch.quantize.quant_config import QuantConfig

    from toolchain.artifact.compare import cosine_per_sample
    from toolchain.artifact.inputs import calibration_images, parity_inputs
    from toolchain.export.tflite import quantize_int8
    from toolchain.runtimes.litert import dequantize_output

    torch.manual_seed(0)
    module = build().eval()
    graph, quantizer = quantize_int8(module, calibration_images(32), "nchw")
    (node,) = [n for n in graph.graph.nodes if n.target == getattr(torch.ops.aten, op).default]
    inputs = node.args[0] if op == "cat" else [node.args[0]]
    assert all("dequantize" in str(a.target) for a in inputs), [str(a.target) for a in inputs]
    x = parity_inputs(32)
    with torch.no_grad():
        q = np.concatenate([graph(torch.from_numpy(x[i:i + 1])).numpy() for i in range(len(x))])
    model = litert_torch.convert(graph, (torch.from_numpy(x[:1]),), quant_config=QuantConfig(pt2e_quantizer=quantizer))
    model.export(str(tmp_path / "m.tflite"))
    it = Interpreter(model_path=str(tmp_path / "m.tflite"))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    art = []
    for i in range(len(x)):
        it.set_tensor(inp["index"], x[i:i + 1])
        it.invoke()
        art.append(dequantize_output(it.get_tensor(out["index"]), out))
    assert cosine_per_sample(np.concatenate(art), q).min() > 0.9999


def test_perturbed_artifact_fails_parity(tiny_bundle, tmp_path):
    """Swap the bundle's weights for another seed's after conversion: parity must catch it."""
    import onnx
    from onnx import numpy_helper

    (o,) = export_bundle(ExportRequest(tiny_bundle, "onnx", tmp_path / "a"))
    path = o.folder / o.manifest.file
    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = numpy_helper.to_array(init).copy()
    arr *= -1.0
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(model, str(path))
    from toolchain import runtimes
    from toolchain.artifact.folder import ArtifactRef
    from toolchain.artifact.inputs import parity_inputs
    from toolchain.export.parity import parity_runs, settle
    from toolchain.models.bundle import load_bundle

    b = load_bundle(tiny_bundle)
    x = parity_inputs(b.input_size)
    reference = runtimes.get_runtime("pytorch").open(b).features(x)
    r = settle(parity_runs(ArtifactRef.of(o.folder, o.manifest), x, reference, 0.99999))
    assert r.status == "failed" and r.mismatches


def test_parity_failure_exits_with_every_mismatch(tiny_bundle, tmp_path):
    with pytest.raises(ParityError, match="sample 0") as err:
        export_bundle(ExportRequest(tiny_bundle, "tflite", tmp_path, precision="int8", min_cosine=0.9999999))
    man = json.loads(next(tmp_path.glob("*/manifest.json")).read_text())
    assert man["parity"]["status"] == "failed"  # recorded, never silent
    # The error carries this run's outcomes: the failed artifact, typed.
    (o,) = err.value.outcomes
    assert o.manifest.parity.status == "failed" and o.folder == next(tmp_path.glob("*/manifest.json")).parent


def test_cli_after_a_parity_failure_shows_only_this_runs_artifacts(tiny_bundle, tmp_path):
    """Before: the CLI rescanned --out after a ParityError and listed a stale artifact as this run's."""
    from typer.testing import CliRunner

    from toolchain.cli import app

    (old,) = export_bundle(ExportRequest(tiny_bundle, "onnx", tmp_path / "first"))
    stale = tmp_path / "out" / "stale_artifact_from_yesterday"
    shutil.copytree(old.folder, stale)
    res = CliRunner().invoke(app, ["export", str(tiny_bundle), "--target", "tflite", "--precision", "int8",
                                   "--min-cosine", "0.9999999", "--out", str(tmp_path / "out")])
    assert isinstance(res.exception, ParityError), res.output
    assert "tiny_ocular_tflite_int8_nhwc" in res.output and "failed" in res.output
    assert "stale_artifact_from_yesterday" not in res.output and "tiny_ocular_onnx" not in res.output


def test_no_verify_is_recorded(tiny_bundle, tmp_path):
    (o,) = export_bundle(ExportRequest(tiny_bundle, "onnx", tmp_path, verify=False))
    assert o.manifest.parity.status == "skipped" and "--no-verify" in o.manifest.parity.reason


def test_bad_requests_fail_before_work(tiny_bundle, tmp_path):
    with pytest.raises(RegistryError, match="coreml"):
        export_bundle(ExportRequest(tiny_bundle, "caffe2", tmp_path))
    with pytest.raises(DeviceError, match="iphone6"):
        export_bundle(ExportRequest(tiny_bundle, "onnx", tmp_path, devices=["nokia3310"]))
    with pytest.raises(BundleError):
        export_bundle(ExportRequest(tmp_path / "nope", "onnx", tmp_path / "o"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ToolchainError, match="is a file, not a folder"):  # found before any work or any mkdir
        export_bundle(ExportRequest(tiny_bundle, "onnx", blocker / "sub"))
    assert not any(p.suffix == ".onnx" for p in tmp_path.rglob("*"))


def test_failed_conversion_leaves_no_half_artifact(tiny_bundle, tmp_path, monkeypatch):
    from toolchain.export import onnx as onnx_exp

    def boom(self, job, work, progress):
        (work / "half.onnx").write_bytes(b"partial")
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(onnx_exp.OnnxExporter, "convert", boom)
    with pytest.raises(ToolchainError, match="converter crashed"):
        export_bundle(ExportRequest(tiny_bundle, "onnx", tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_calibration_folder(tiny_bundle, tmp_path):
    from PIL import Image

    cal = tmp_path / "cal"
    cal.mkdir()
    for i, img in enumerate(smooth_random_images(3, 50, seed=10)):
        Image.fromarray(img.transpose(1, 2, 0).astype(np.uint8)).save(cal / f"{i}.png")
    (cal / "broken.png").write_bytes(b"not a png")
    (o,) = export_bundle(ExportRequest(tiny_bundle, "tflite", tmp_path / "o", precision="int8", calibration_dir=cal))
    assert o.manifest.parity.status == "passed"
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ToolchainError, match="no readable images"):
        export_bundle(ExportRequest(tiny_bundle, "tflite", tmp_path / "o2", precision="int8", calibration_dir=junk))


@pytest.mark.slow
@pytest.mark.parametrize("target,precision", [("onnx", "fp32"), ("tflite", "int8")])
def test_resnet50_export(resnet50_bundle, tmp_path, target, precision):
    (o,) = export_bundle(ExportRequest(resnet50_bundle, target, tmp_path, precision=precision,
                                       devices=["android"] if target == "tflite" else []))
    assert o.manifest.parity.status == "passed", o.manifest.parity
    assert o.manifest.output.dim == 2048


def test_onnx_of_a_model_whose_batch_of_one_trace_is_refused(tmp_path):
    """ConvNeXt's LayerNorm over permuted channels specialises a batch-of-one trace to batch 1, which
    torch.export refuses with the dynamic batch axis; the exporter traces again on two images."""
    from toolchain.models.bundle import init_bundle

    bundle = init_bundle("torchvision:convnext_tiny", tmp_path / "b", seed=0, input_size=32)
    (o,) = export_bundle(ExportRequest(bundle, "onnx", tmp_path / "o"))
    assert o.manifest.parity.status == "passed", o.manifest.parity
    feats = load_artifact_model(o.folder).extract(smooth_random_images(3, 32, seed=5))  # the batch axis is still dynamic
    assert feats.shape[0] == 3
