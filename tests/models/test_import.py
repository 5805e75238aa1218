"""`deploy model import`: every kind of file a user brings, built here on the fly (nothing downloads)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from toolchain.errors import BundleError, ImportModelError
from toolchain.models.arch import TinyResNet
from toolchain.models.bundle import load_bundle
from toolchain.models.importer import ImportRequest, import_model

torch.set_num_threads(1)
SIZE = 32


def _tiny(classes: int = 550, seed: int = 0) -> TinyResNet:
    torch.manual_seed(seed)
    m = TinyResNet(num_classes=classes)
    with torch.no_grad():  # trained-looking BatchNorm statistics, so a wrong load would show
        for bn in (x for x in m.modules() if isinstance(x, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    return m.eval()


def _features(m: TinyResNet, x: torch.Tensor) -> torch.Tensor:
    """What the checkpoint model computes before its classifier, written out by hand."""
    with torch.no_grad():
        y = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        y = m.layer2(m.down(m.layer1(y)))
        return torch.flatten(m.avgpool(y), 1)


def _import(tmp_path, path, **kw):
    kw.setdefault("arch", "tiny_ocular")
    kw.setdefault("input_size", SIZE)
    return import_model(ImportRequest(source=path, out=tmp_path / "bundle", **kw))


def _export_all(bundle_dir, out, targets=("onnx", "coreml")):
    """Export for --device all and return every artifact's parity status."""
    from toolchain.export.base import ExportRequest, export_bundle

    statuses = {}
    for target in targets:
        devices = {"onnx": [], "coreml": ["all"], "tflite": ["android"]}[target]
        for o in export_bundle(ExportRequest(bundle_dir, target, out, devices=devices)):
            statuses[o.manifest.name] = o.manifest.parity.status
    return statuses


def test_dataparallel_pth_with_550_class_head_exports_for_every_device(tmp_path):
    m = _tiny(550)
    torch.save(nn.DataParallel(m).state_dict(), tmp_path / "dp.pth")
    res = _import(tmp_path, tmp_path / "dp.pth")
    rec = res.record
    assert rec["prefix_stripped"] == "module."
    assert rec["head"]["module"] == "fc" and rec["head"]["num_classes"] == 550
    assert rec["verification"]["status"] == "passed" and rec["verification"]["cosine_min"] > 0.99999
    assert len(rec["source_sha256"]) == 64
    b = load_bundle(res.path)
    assert b.feature_dim == 64 and b.meta["architecture"]["num_classes"] == 550
    x = torch.randn(3, 3, SIZE, SIZE)
    with torch.no_grad():
        np.testing.assert_allclose(b.model(x).numpy(), _features(m, x).numpy(), rtol=1e-5, atol=1e-6)
        # the classifier is kept for training only: logits equal the original network's
        np.testing.assert_allclose(b.model.logits(x).numpy(), m(x).numpy(), rtol=1e-4, atol=1e-5)
    statuses = _export_all(res.path, tmp_path / "exp", ("onnx", "coreml", "tflite"))
    assert len(statuses) == 6  # onnx + 4 Core ML artifacts for the 5 Apple devices + tflite
    assert set(statuses.values()) == {"passed"}, statuses


def test_lightning_checkpoint_and_safetensors(tmp_path):
    m = _tiny(10, seed=1)
    torch.save({"epoch": 7, "global_step": 70, "pytorch-lightning_version": "2.4.0",
                "state_dict": {f"model.{k}": v for k, v in m.state_dict().items()},
                "hyper_parameters": {"lr": 0.1}}, tmp_path / "last.ckpt")
    res = _import(tmp_path, tmp_path / "last.ckpt")
    assert res.record["wrapper_key"] == "state_dict" and res.record["prefix_stripped"] == "model."
    assert set(_export_all(res.path, tmp_path / "e1", ("coreml",)).values()) == {"passed"}

    save_file(m.state_dict(), str(tmp_path / "w.safetensors"))
    res2 = import_model(ImportRequest(source=tmp_path / "w.safetensors", out=tmp_path / "b2", arch="tiny_ocular",
                                      input_size=SIZE))
    assert res2.record["prefix_stripped"] is None
    # Same weights, same bundle tensors, whichever file they came in.
    # (so its exports are the Lightning bundle's, checked above)
    assert load_bundle(res2.path).sha256 == load_bundle(res.path).sha256


@pytest.mark.parametrize("key", ["ema", "model_state_dict"])
def test_wrapper_keys_and_explicit_key(tmp_path, key):
    a, b = _tiny(5, seed=2), _tiny(5, seed=3)
    torch.save({"model": a.state_dict(), key: b.state_dict(), "optimizer": {"lr": 1.0}}, tmp_path / "c.pth")
    auto = _import(tmp_path, tmp_path / "c.pth")
    # "model_state_dict" outranks "model"; "ema" does not: the key not chosen is offered as another one (--key)
    chosen, other = (key, "model") if key == "model_state_dict" else ("model", key)
    assert auto.record["wrapper_key"] == chosen and auto.record["other_wrapper_keys"] == [other]
    picked = import_model(ImportRequest(source=tmp_path / "c.pth", out=tmp_path / "k", arch="tiny_ocular",
                                        input_size=SIZE, key=key))
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        np.testing.assert_allclose(load_bundle(picked.path).model(x).numpy(), _features(b, x).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ImportModelError, match="--key 'nope'"):
        _import(tmp_path / "x", tmp_path / "c.pth", key="nope")


def test_full_pickle_is_refused_with_how_to_resave(tmp_path):
    torch.save(_tiny(3), tmp_path / "model.pth")  # the whole module: needs its class to unpickle
    with pytest.raises(ImportModelError, match=r"full unpickling.*torch\.save\(model\.state_dict\(\)"):
        _import(tmp_path, tmp_path / "model.pth")
    assert not (tmp_path / "bundle").exists()


def test_every_key_problem_in_one_error_and_strict_false(tmp_path):
    state = _tiny(4).state_dict()
    state.pop("layer1.0.conv2.weight")
    state.pop("bn1.running_var")
    state["extra.weight"] = torch.zeros(3)
    state["down.0.weight"] = torch.zeros(64, 16, 3, 3)  # the architecture has a 1x1 convolution here
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ImportModelError) as e:
        _import(tmp_path, tmp_path / "bad.safetensors")
    msg = str(e.value)
    for needle in ("2 missing", "layer1.0.conv2.weight", "bn1.running_var", "1 unexpected", "extra.weight",
                   "1 shape-mismatched", "down.0.weight: checkpoint [64, 16, 3, 3] vs architecture [64, 16, 1, 1]",
                   "--strict false"):
        assert needle in msg
    res = _import(tmp_path, tmp_path / "bad.safetensors", strict=False)
    probs = res.record["problems"]
    assert probs["missing"] == ["bn1.running_var", "layer1.0.conv2.weight"] and probs["unexpected"] == ["extra.weight"]
    assert res.record["verification"]["status"] == "passed"


def test_head_detection_head_name_and_feature_layer(tmp_path):
    # A final Linear as wide as the card's feature dimension is an embedding, not a classifier: kept.
    emb = _tiny(64, seed=4)
    save_file(emb.state_dict(), str(tmp_path / "emb.safetensors"))
    res = _import(tmp_path, tmp_path / "emb.safetensors")
    assert res.record["head"]["kind"] == "none"
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        np.testing.assert_allclose(load_bundle(res.path).model(x).numpy(), emb(x).numpy(), rtol=1e-5, atol=1e-6)
    # --head-name none says the same explicitly; --feature-layer takes an earlier stage, pooled.
    m = _tiny(9, seed=5)
    save_file(m.state_dict(), str(tmp_path / "m.safetensors"))
    cut = import_model(ImportRequest(source=tmp_path / "m.safetensors", out=tmp_path / "cut", arch="tiny_ocular",
                                     input_size=SIZE, feature_layer="layer1"))
    b = load_bundle(cut.path)
    assert b.feature_dim == 16 and b.meta["architecture"]["head"] == {"kind": "layer", "module": "layer1"}
    with torch.no_grad():
        want = m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))).mean((2, 3))
        np.testing.assert_allclose(b.model(x).numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="--head-name 'classifier'"):
        _import(tmp_path / "y", tmp_path / "m.safetensors", head_name="classifier")


def test_torchvision_arch_without_linear_classifier(tmp_path):
    """SqueezeNet: no Linear; the conv classifier (1000 classes) is dropped, features are the pooled map."""
    import torchvision

    torch.manual_seed(0)
    m = torchvision.models.squeezenet1_1(num_classes=7).eval()
    save_file(m.state_dict(), str(tmp_path / "sq.safetensors"))
    res = import_model(ImportRequest(source=tmp_path / "sq.safetensors", out=tmp_path / "b",
                                     arch="torchvision:squeezenet1_1", input_size=SIZE))
    assert res.record["head"]["kind"] == "pool" and res.record["head"]["num_classes"] == 7
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        want = m.features(x).mean((2, 3))
    np.testing.assert_allclose(load_bundle(res.path).model(x).detach().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_timm_model(tmp_path):
    timm = pytest.importorskip("timm", reason="timm is an optional extra: pip install '.[timm]'")
    torch.manual_seed(0)
    m = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=550).eval()
    torch.save({"state_dict": m.state_dict(), "state_dict_ema": m.state_dict()}, tmp_path / "timm.pth.tar")
    res = import_model(ImportRequest(source=tmp_path / "timm.pth.tar", out=tmp_path / "b",
                                     arch="timm:mobilenetv3_small_050", input_size=SIZE))
    assert res.record["head"]["module"] == "classifier" and res.record["head"]["num_classes"] == 550
    assert res.record["other_wrapper_keys"] == ["state_dict_ema"]
    assert set(_export_all(res.path, tmp_path / "e", ("coreml",)).values()) == {"passed"}


def test_onnx_file_parity_against_onnx_runtime(tmp_path):
    import logging

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    m = _tiny(550, seed=6)
    torch.onnx.export(m, (torch.rand(1, 3, SIZE, SIZE),), str(tmp_path / "m.onnx"), dynamo=True, opset_version=18,
                      verbose=False)
    res = import_model(ImportRequest(source=tmp_path / "m.onnx", out=tmp_path / "b"))
    rec = res.record
    assert rec["head"]["num_classes"] == 550
    assert "onnxruntime" in rec["verification"]["against"] and rec["verification"]["cosine_min"] > 0.99999
    b = load_bundle(res.path)
    assert b.input_size == SIZE and b.feature_dim == 64 and b.meta["architecture"]["graph_only"]
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        np.testing.assert_allclose(b.model(x).numpy(), _features(m, x).numpy(), rtol=1e-4, atol=1e-5)
    assert set(_export_all(res.path, tmp_path / "e", ("coreml", "tflite")).values()) == {"passed"}


@pytest.mark.parametrize("kind", ["torchscript", "pt2"])
def test_programs_are_graph_only_bundles_that_export_but_refuse_pruning(tmp_path, kind):
    from toolchain.compress.run import prune_structured

    m = _tiny(550, seed=7)
    m.fc = nn.Identity()  # a program that returns features
    x = torch.rand(1, 3, SIZE, SIZE)
    if kind == "torchscript":
        path = tmp_path / "m.pt"
        torch.jit.trace(m, x).save(str(path))
    else:
        path = tmp_path / "m.pt2"
        torch.export.save(torch.export.export(m, (x,)), str(path))
    res = import_model(ImportRequest(source=path, out=tmp_path / "b", input_size=SIZE))
    b = load_bundle(res.path)
    assert b.meta["architecture"]["source"] == ("torchscript" if kind == "torchscript" else "torch_export")
    xs = torch.randn(3, 3, SIZE, SIZE)  # batches work although programs are traced at batch 1
    with torch.no_grad():
        np.testing.assert_allclose(b.model(xs).numpy(), m(xs).numpy(), rtol=1e-5, atol=1e-6)
    targets = ("onnx", "coreml") if kind == "pt2" else ("onnx",)
    assert set(_export_all(res.path, tmp_path / "e", targets).values()) == {"passed"}
    with pytest.raises(BundleError, match="graph-only bundle.*width/depth pruning"):
        prune_structured(res.path, tmp_path / "p", multiplier=0.5)


class Evil:
    """A class torch.load(weights_only=True) refuses to build."""


def test_pt2_with_a_pickled_object_is_refused_before_torch_export_load(tmp_path):
    from toolchain.models.graph import check_pt2

    buf = io.BytesIO()
    torch.save(Evil(), buf)
    path = tmp_path / "evil.pt2"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("evil/data/weights/model_weights_config.json",
                    json.dumps({"config": {"w": {"path_name": "weight_0", "use_pickle": True}}}))
        zf.writestr("evil/data/weights/weight_0", buf.getvalue())
    with pytest.raises(ImportModelError, match="needs full unpickling"):
        check_pt2(path)


def test_weights_without_arch_and_unknown_files(tmp_path):
    save_file(_tiny(3).state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(ImportModelError, match="--arch"):
        import_model(ImportRequest(source=tmp_path / "w.safetensors", out=tmp_path / "b"))
    (tmp_path / "w.h5").write_bytes(b"\x89HDF")
    with pytest.raises(ImportModelError, match="unknown model file type"):
        import_model(ImportRequest(source=tmp_path / "w.h5", out=tmp_path / "b"))


def test_cli_import_prints_one_line_errors(tmp_path):
    from typer.testing import CliRunner

    from toolchain.cli import app

    torch.save(_tiny(3), tmp_path / "model.pth")
    r = CliRunner().invoke(app, ["model", "import", str(tmp_path / "model.pth"), "--arch", "tiny_ocular",
                                 "--out", str(tmp_path / "b")])
    assert r.exit_code != 0 and isinstance(r.exception, ImportModelError)
    save_file(_tiny(550).state_dict(), str(tmp_path / "w.safetensors"))
    r = CliRunner().invoke(app, ["model", "import", str(tmp_path / "w.safetensors"), "--arch", "tiny_ocular",
                                 "--input-size", str(SIZE), "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert "550 classes" in r.output and "verified against" in r.output


@pytest.mark.slow
def test_resnet50_dataparallel_550_classes(tmp_path):
    """The case the issue names: torchvision ResNet50 from a DataParallel training script, 550 subjects."""
    import torchvision

    torch.manual_seed(0)
    m = torchvision.models.resnet50(num_classes=550).eval()
    torch.save(nn.DataParallel(m).state_dict(), tmp_path / "r50.pth")
    res = import_model(ImportRequest(source=tmp_path / "r50.pth", out=tmp_path / "b", arch="resnet50_ocular",
                                     input_size=64))
    assert res.record["head"]["num_classes"] == 550 and res.meta["feature_dim"] == 2048
    assert res.record["verification"]["status"] == "passed"
    assert set(_export_all(res.path, tmp_path / "e", ("onnx",)).values()) == {"passed"}
