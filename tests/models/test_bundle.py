import json

import pytest
import torch

from toolchain.errors import BundleError, CardError, WeightsError
from toolchain.models.arch import build_model
from toolchain.models.bundle import init_bundle, load_bundle, new_model, save_bundle
from toolchain.models.cards import builtin_card_names, load_card


def test_builtin_cards_are_the_documented_ones():
    assert {"resnet50_ocular", "mobilenet_v2", "mobilenet_v3_small", "resnet18", "tiny_ocular"} <= set(builtin_card_names())


@pytest.mark.parametrize("card,dim", [("tiny_ocular", 64), ("mobilenet_v3_small", 1024), ("torchvision:shufflenet_v2_x0_5", 1024),
                                      ("shufflenet_v2", 1024)])
def test_init_and_load_round_trip(tmp_path, card, dim):
    path = init_bundle(card, tmp_path / "b", seed=3, input_size=64)
    b = load_bundle(path)
    if dim is not None:
        assert b.feature_dim == dim
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        f = b.model(x)
    assert f.shape == (2, b.feature_dim)
    # BN statistics were re-estimated: features are of order 1, not ~1e-8 (the fp16 underflow pitfall).
    assert 1e-2 < float(f.abs().mean()) < 1e3


def test_random_init_is_seeded(tmp_path):
    a = load_bundle(init_bundle("tiny_ocular", tmp_path / "a", seed=1))
    b = load_bundle(init_bundle("tiny_ocular", tmp_path / "b", seed=1))
    c = load_bundle(init_bundle("tiny_ocular", tmp_path / "c", seed=2))
    assert a.sha256 == b.sha256 != c.sha256


def test_truncated_weights_give_a_clear_error(tiny_bundle, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    w = bad / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(BundleError, match="truncated"):
        load_bundle(bad)


def test_modified_weights_fail_the_hash(tiny_bundle, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    w = bad / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-5] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(bad)


def test_shape_mismatch_is_named(tiny_bundle, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    meta = json.loads((bad / "model.json").read_text())
    meta["architecture"]["layer_shapes"] = {"conv1": {"in": 3, "out": 8}}
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="conv1"):
        load_bundle(bad)


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"format": "other"})])
def test_missing_or_corrupt_model_json(tmp_path, content):
    (tmp_path / "b").mkdir()
    if content is not None:
        (tmp_path / "b" / "model.json").write_text(content)
    with pytest.raises(BundleError):
        load_bundle(tmp_path / "b")


def test_unknown_card_lists_the_known_ones():
    with pytest.raises(CardError, match="resnet50_ocular"):
        load_card("resnet51")
    with pytest.raises(CardError, match="torchvision"):
        build_model({"source": "torchvision", "name": "not_a_net"})
    # SqueezeNet classifies with a conv: its features are the global-pooled last map (issue 13; was refused)
    m = build_model({"source": "torchvision", "name": "squeezenet1_0"}).eval()
    with torch.no_grad():
        assert m(torch.zeros(1, 3, 64, 64)).shape == (1, 512)


def test_imagenet_weights_never_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(WeightsError, match="never downloads"):
        init_bundle("resnet18", tmp_path / "b", weights="imagenet")


def test_width_pruned_network_rebuilds_from_model_json(tmp_path):
    """A network whose widths changed is saved and rebuilt with no pickles, same outputs."""
    from torch import nn

    model, meta = new_model(load_card("tiny_ocular"))
    t = model.trunk
    # Thin the first residual block's inner conv from 16 to 8 channels.
    t.layer1[0].conv1 = nn.Conv2d(16, 8, 3, padding=1, bias=False)
    t.layer1[0].bn1 = nn.BatchNorm2d(8)
    t.layer1[0].conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
    model.eval()
    path = save_bundle(model, meta, tmp_path / "thin")
    saved = json.loads((path / "model.json").read_text())
    assert saved["architecture"]["layer_shapes"]["layer1.0.conv1"] == {"in": 16, "out": 8}
    b = load_bundle(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(b.model(x), model(x))


def test_bundle_counts_parameters_and_non_zeros(tmp_path):
    b = load_bundle(init_bundle("tiny_ocular", tmp_path / "a", seed=1))
    w = b.meta["weights"]
    trunk = list(b.model.trunk.parameters())
    assert w["deployed_parameters"] == sum(p.numel() for p in trunk) <= w["num_parameters"]
    assert w["deployed_nonzero"] == sum(int(p.count_nonzero()) for p in trunk)  # BN biases start at 0
    with torch.no_grad():
        conv = next(m for m in b.model.trunk.modules() if isinstance(m, torch.nn.Conv2d))
        conv.weight.zero_()
    w2 = load_bundle(save_bundle(b.model, b.meta, tmp_path / "z")).meta["weights"]
    assert w2["deployed_parameters"] == w["deployed_parameters"]
    assert w2["deployed_nonzero"] == w["deployed_nonzero"] - conv.weight.numel()
