"""Core ML export, every path, with parity through the numpy executor (and failing when it should)."""

from __future__ import annotations

import platform

import coremltools as ct
import numpy as np
import pytest
import torch

from toolchain import runtimes
from toolchain.artifact.compare import compare, cosine_per_sample
from toolchain.artifact.folder import ArtifactRef
from toolchain.artifact.inputs import parity_inputs, smooth_random_images
from toolchain.artifact.manifest import InputSpec, OutputSpec
from toolchain.errors import DeviceError, RuntimeUnavailable
from toolchain.evaluate.features import load_artifact_model
from toolchain.export.base import ExportRequest, export_bundle
from toolchain.export.parity import parity_runs
from toolchain.models.bundle import init_bundle, load_bundle, save_bundle

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return init_bundle("tiny_ocular", tmp_path_factory.mktemp("b") / "tiny", input_size=32)


@pytest.fixture(scope="module")
def tiny_pruned(tiny, tmp_path_factory):
    """The tiny model with 60 % of every conv's weights exactly zero (as pruning during training leaves it)."""
    b = load_bundle(tiny)
    with torch.no_grad():
        for m in b.model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight[m.weight.abs() < m.weight.abs().flatten().quantile(0.6)] = 0
    return save_bundle(b.model, b.meta, tmp_path_factory.mktemp("b") / "tiny_pruned")


def _export(bundle, out, **kw):
    (o,) = export_bundle(ExportRequest(bundle_dir=bundle, target="coreml", out=out, **kw))
    return o


PATHS = {  # id: (request, suffix, spec version, an op/layer that must be there)
    "nn_spec3_iphone6": (dict(devices=["iphone6"]), ".mlmodel", 3, "flatten"),
    "nn_spec4_fp16": (dict(min_ios=13), ".mlmodel", 4, "reshapeStatic"),
    "nn_ios14_fp32": (dict(min_ios=14, precision="fp32"), ".mlmodel", 4, "reshapeStatic"),
    "mlprogram_fp16_iphonexr": (dict(devices=["iphonexr"]), ".mlpackage", 9, "conv"),
    "mlprogram_fp32_ipadair2": (dict(devices=["ipadair2"], precision="fp32"), ".mlpackage", 6, "conv"),
    "mlprogram_int8_iphonex": (dict(devices=["iphonex"], precision="int8"), ".mlpackage", 7, "constexpr_affine_dequantize"),
    "sparse_iphonexr": (dict(devices=["iphonexr"], compress="sparse"), ".mlpackage", 9, "constexpr_sparse_to_dense"),
    "palettize8_iphonex": (dict(devices=["iphonex"], compress="palettize8"), ".mlpackage", 7, "constexpr_lut_to_dense"),
    # joint compression: the pruned zeros stay sparse, the non-zeros get a 4-bit palette (iOS 18)
    "sparse_palettize4_iphonexr": (dict(devices=["iphonexr"], compress="sparse-palettize4"), ".mlpackage", 9,
                                   "constexpr_lut_to_sparse"),
    # 4-bit palettes are lossy (cosine ~0.996 on this model): the caller picks the threshold
    "palettize4_no_device_raised_to_ios16": (dict(compress="palettize4", min_cosine=0.99), ".mlpackage", 7,
                                             "constexpr_lut_to_dense"),
}


@pytest.mark.parametrize("path_id", sorted(PATHS))
def test_every_path_exports_with_parity_passed(path_id, tiny, tiny_pruned, tmp_path):
    req, suffix, spec, must_have = PATHS[path_id]
    bundle = tiny_pruned if (req.get("compress") or "").startswith("sparse") else tiny
    m = _export(bundle, tmp_path, **req).manifest.to_json()
    c = m["coreml"]  # manifest v2: Core ML facts in their own block
    assert m["file"].endswith(suffix)
    assert c["spec_version"] == spec
    ops = c.get("nn_layers") or c.get("coreml_ops")
    assert must_have in ops, ops
    assert m["parity"]["status"] == "passed", m["parity"]
    assert m["parity"]["reference"].startswith("coreml-ref")
    assert m["input"]["name"] == "pixels" and m["output"]["name"] == "features"
    assert m["output"]["dtype"] == "float32" and m["input"]["dtype"] == "float32"
    assert m["input"]["shape"] == ([3, 32, 32] if spec == 3 else [1, 3, 32, 32])
    if spec == 3:
        assert not {"clip", "reshapeStatic", "loadConstantND"} & set(ops)
        assert c["weights"] == "fp16" and c["min_ios"] == 12
    if req.get("compress"):
        assert c["min_ios"] >= 16 and c["compressed_weight_ops"]


def test_compression_shrinks_sparse_weights(tiny_pruned, tmp_path):
    dense = _export(tiny_pruned, tmp_path / "d", devices=["iphonexr"]).manifest.size_bytes
    sparse = _export(tiny_pruned, tmp_path / "s", devices=["iphonexr"], compress="sparse").manifest.size_bytes
    joint = _export(tiny_pruned, tmp_path / "j", devices=["iphonexr"], compress="sparse-palettize4").manifest
    assert sparse < 0.75 * dense
    assert joint.size_bytes < sparse and joint.parity.min_cosine_required == 0.99


@pytest.mark.parametrize("req,match", [
    (dict(devices=["iphone6"], compress="sparse"), "--compress sparse needs iOS 16.*iPhone 6 cannot run it"),
    (dict(devices=["ipadair2"], compress="palettize8"), "iPad Air 2 cannot run it"),
    (dict(devices=["iphonex"], compress="sparse-palettize4"), "needs iOS 18.*iPhone X cannot run it"),
    (dict(devices=["ipadair2"], precision="int8"), "int8 Core ML needs iOS 16.*iPad Air 2"),
    (dict(devices=["iphone6"], precision="int8"), "int8 Core ML needs iOS 16"),
])
def test_unsupported_device_combinations_are_clear_errors(req, match, tiny, tmp_path):
    with pytest.raises(DeviceError, match=match):
        _export(tiny, tmp_path, **req)
    assert not any(p.name.endswith(".mlmodel") or p.suffix == ".mlpackage" for p in tmp_path.rglob("*"))


def test_perturbed_weight_fails_parity(tiny, tmp_path):
    o = _export(tiny, tmp_path, devices=["iphone6"])
    path = o.folder / o.manifest.file
    numpy_coreml = runtimes.get_runtime("coreml-ref")
    b = load_bundle(tiny)
    pixels = parity_inputs(b.input_size)
    ref = _reference(b, pixels)
    art = ArtifactRef.of(o.folder, o.manifest)
    good = compare(ref, numpy_coreml.open(art).features(pixels), min_cosine=0.999, runtime="x")
    assert good.status == "passed"
    spec = ct.utils.load_spec(str(path))
    conv = next(layer.convolution for layer in spec.neuralNetwork.layers if layer.WhichOneof("layer") == "convolution")
    w = np.frombuffer(conv.weights.float16Value, "<f2").copy()
    w[np.argmax(np.abs(w))] *= -40.0  # one weight of the first conv, sign-flipped and scaled
    conv.weights.float16Value = w.tobytes()
    path.write_bytes(spec.SerializeToString())
    session = numpy_coreml.open(art)
    feats = session.features(pixels)
    bad = compare(ref, feats, min_cosine=0.999, runtime=session.description, output_name=session.output_name)
    assert bad.status == "failed" and bad.mismatches


def _reference(bundle, pixels):
    from toolchain.artifact.module import DeployModule

    with torch.no_grad():
        return DeployModule(bundle.model, bundle.mean, bundle.std).eval()(torch.from_numpy(pixels)).numpy()


def test_evaluation_runs_the_final_folder(tiny, tmp_path):
    o = _export(tiny, tmp_path, devices=["iphone6"])
    pixels = smooth_random_images(2, 32, seed=5)
    model = load_artifact_model(o.folder)
    feats = model.extract(pixels)
    assert "spec 3" in model.runtime and feats.shape == (2, 64)
    assert cosine_per_sample(_reference(load_bundle(tiny), pixels), feats).min() > 0.999


def test_unknown_op_makes_parity_skipped_naming_it(tmp_path):
    # Softplus: an op the executor lacks (GELU and ELU, used before, run now)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.Softplus(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    x = torch.rand(1, 3, 8, 8)
    model = ct.convert(torch.jit.trace(net.eval(), x), convert_to="mlprogram",
                       inputs=[ct.TensorType(name="pixels", shape=x.shape)], outputs=[ct.TensorType(name="features")],
                       minimum_deployment_target=ct.target.iOS15)
    model.save(str(tmp_path / "g.mlpackage"))
    art = ArtifactRef(tmp_path / "g.mlpackage", "coreml", "g", InputSpec("pixels", [1, 3, 8, 8]), OutputSpec())
    with pytest.raises(RuntimeUnavailable, match="softplus"):
        runtimes.get_runtime("coreml-ref").open(art).features(x.numpy())
    (name, result), *_ = parity_runs(art, x.numpy(), np.zeros((1, 4), np.float32), 0.99)
    assert name == "coreml-ref" and result.status == "skipped" and "softplus" in result.reason


@pytest.mark.skipif(platform.system() == "Darwin", reason="on macOS Apple's runtime really runs")
def test_apple_runtime_is_recorded_as_skipped_off_macos(tiny, tmp_path):
    m = _export(tiny, tmp_path, devices=["iphonexr"]).manifest.to_json()
    apple = m["parity_by_runtime"]["coreml"]  # manifest v2: every runtime's parity, by runtime
    assert apple["status"] == "skipped" and "macOS" in apple["reason"]
    assert m["coreml"]["apple_compiler"]["status"] == "skipped"
    assert m["parity_by_runtime"]["coreml-ref"]["status"] == "passed"


@pytest.mark.slow
@pytest.mark.parametrize("device,suffix,spec", [("iphone6", ".mlmodel", 3), ("iphonexr", ".mlpackage", 9)])
def test_resnet50_ocular_exports_with_parity_passed(device, suffix, spec, tmp_path):
    bundle = init_bundle("resnet50_ocular", tmp_path / "b")
    m = _export(bundle, tmp_path / "o", devices=[device]).manifest.to_json()
    assert m["file"].endswith(suffix) and m["coreml"]["spec_version"] == spec
    assert m["parity"]["status"] == "passed", m["parity"]
    assert m["parity"]["cosine_min"] >= 0.999
