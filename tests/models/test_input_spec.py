"""Issue 24 part 1: the input spec (channels 1|3, H x W, per-channel mean/std, channel order, pixel scale).

Each case here failed before the spec existed: model.json fixed ``channels`` to 3 and inputs to a square,
a [64, 1, 7, 7] checkpoint was refused with a hint to ``--strict false`` (which drops the trained first layer),
and an ONNX model's preprocessing was ImageNet's without a word.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from tests.cli._cli import deploy
from toolchain.errors import BundleError, CardError, DataError, ImportModelError
from toolchain.models.bundle import init_bundle, load_bundle
from toolchain.models.importer import ImportRequest, import_model

torch.set_num_threads(1)


def _gray_resnet18_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision ResNet18 trained on 1-channel images: conv1 [64, 1, 7, 7], as NIR iris models ship."""
    import torchvision

    torch.manual_seed(seed)
    net = torchvision.models.resnet18(num_classes=10)
    net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    with torch.no_grad():
        for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    return net.eval().state_dict()


def test_one_channel_checkpoint_needs_channels_1_not_strict_false(tmp_path):
    save_file(_gray_resnet18_state(), str(tmp_path / "nir.safetensors"))
    with pytest.raises(ImportModelError) as e:
        import_model(ImportRequest(tmp_path / "nir.safetensors", tmp_path / "b", arch="torchvision:resnet18",
                                   input_size="48x96"))
    assert "--channels 1" in str(e.value) and "[64, 1, 7, 7]" in str(e.value) and "--strict" not in str(e.value)
    # --strict false must not "import" it by dropping the trained stem either
    with pytest.raises(ImportModelError, match="--channels 1"):
        import_model(ImportRequest(tmp_path / "nir.safetensors", tmp_path / "b", arch="torchvision:resnet18",
                                   strict=False, input_size=48))

    res = import_model(ImportRequest(tmp_path / "nir.safetensors", tmp_path / "b", arch="torchvision:resnet18",
                                     input_size="48x96", pixels={"channels": 1, "mean": "0.5", "std": "0.25"}))
    b = load_bundle(res.path)
    assert b.input_chw == (1, 48, 96) and b.color == "gray" and b.mean == [0.5] and b.std == [0.25]
    assert b.meta["architecture"]["layer_shapes"]["conv1"] == {"in": 1, "out": 64}
    assert res.record["preprocessing"]["from"] == "--mean/--std" and res.record["preprocessing"]["warning"] is None
    state = _gray_resnet18_state()
    torch.testing.assert_close(b.model.trunk.conv1.weight, state["conv1.weight"])
    assert b.model(torch.zeros(2, 1, 48, 96)).shape == (2, 512)


def _onnx_05(tmp_path, channels=3, hw=(32, 48)):
    from toolchain.models.arch import TinyResNet, set_input_channels

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    torch.manual_seed(0)
    m = TinyResNet(num_classes=7)
    set_input_channels(m, channels)
    path = tmp_path / "public.onnx"
    torch.onnx.export(m.eval(), (torch.rand(1, channels, *hw),), str(path), dynamo=True, opset_version=18, verbose=False)
    return path


def test_onnx_import_without_preprocessing_warns_and_records_imagenet(tmp_path, capsys):
    """A public model normalised with 0.5/0.5 used to import as 'verified' with ImageNet's numbers, silently."""
    path = _onnx_05(tmp_path)
    r = deploy(capsys, "model", "import", path, "--out", tmp_path / "b")
    assert r.code == 0, r.err
    warning = [line for line in r.err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "ImageNet" in warning[0] and "--mean" in warning[0], r.err
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    pre = meta["provenance"]["import"]["preprocessing"]
    assert pre["from"] == "ImageNet default (assumed)" and "ImageNet" in pre["warning"]
    assert meta["input"]["size"] == [32, 48]  # rectangular: taken from the file, not refused
    assert "warning" in deploy(capsys, "model", "info", tmp_path / "b").out

    r = deploy(capsys, "model", "import", path, "--out", tmp_path / "c", "--mean", "0.5", "--std", "0.5")
    assert r.code == 0 and "warning" not in r.err, r.err
    meta = json.loads((tmp_path / "c" / "model.json").read_text())
    assert meta["input"]["mean"] == [0.5] * 3 and meta["input"]["std"] == [0.5] * 3
    assert meta["provenance"]["import"]["preprocessing"]["warning"] is None


def test_onnx_import_takes_the_files_channels(tmp_path):
    path = _onnx_05(tmp_path, channels=1, hw=(32, 64))
    with pytest.raises(ImportModelError, match="1 input channel"):
        import_model(ImportRequest(path, tmp_path / "x", pixels={"channels": 3}))
    res = import_model(ImportRequest(path, tmp_path / "b"))
    b = load_bundle(res.path)
    assert b.input_chw == (1, 32, 64) and b.color == "gray" and len(b.mean) == 1
    assert "ImageNet" in res.record["preprocessing"]["warning"]


def test_card_init_gray_rectangular_and_bad_specs(tmp_path):
    b = load_bundle(init_bundle("tiny_ocular", tmp_path / "g", channels=1, input_size=(32, 64)))
    assert b.input_chw == (1, 32, 64) and b.mean == [0.449] and b.meta["input"]["scale"] == 255.0
    b = load_bundle(init_bundle("tiny_ocular", tmp_path / "c", input_size=(48, 32), color="bgr", scale=1.0,
                                mean="123.7,116.3,103.5", std="58.4,57.1,57.4"))
    assert b.input_chw == (3, 48, 32) and b.color == "bgr" and b.scale == 1.0
    for kw, msg in [({"channels": 2}, "1 .grayscale. or 3"), ({"channels": 1, "color": "rgb"}, "gray"),
                    ({"mean": "0.1,0.2"}, "2 values for a 3-channel"), ({"std": "0"}, "--std"),
                    ({"rgb_to_gray": True}, "--channels 1")]:
        with pytest.raises(BundleError, match=msg):
            init_bundle("tiny_ocular", tmp_path / "x", **kw)
    card = tmp_path / "nir.toml"
    card.write_text('name = "nir"\n[architecture]\nsource = "toolchain"\nname = "tiny_resnet"\n'
                    '[input]\nsize = [48, 96]\nchannels = 1\nmean = [0.5]\nstd = [0.5]\n')
    b = load_bundle(init_bundle(str(card), tmp_path / "n"))
    assert b.input_chw == (1, 48, 96) and b.mean == [0.5]
    card.write_text(card.read_text().replace("mean = [0.5]", "mean = [0.5, 0.5, 0.5]"))
    with pytest.raises(CardError, match="1 number"):
        init_bundle(str(card), tmp_path / "m")


def test_model_json_validation_of_the_spec(tmp_path):
    from toolchain.models.meta import meta_problems

    meta = load_bundle(init_bundle("tiny_ocular", tmp_path / "g", channels=1, input_size=(32, 64))).meta
    assert meta_problems(meta) == []
    bad = json.loads(json.dumps(meta))
    bad["input"]["mean"] = [0.4, 0.4, 0.4]
    bad["input"]["color"] = "rgb"
    problems = " ".join(meta_problems(bad))
    assert "input/mean: 3 values for 1 channel" in problems and "input/color" in problems
    bad["input"]["channels"] = 4
    assert any("channels" in p for p in meta_problems(bad))


def _png(path, array, mode):
    Image.fromarray(array, mode).save(path)
    return path


def test_load_image_gray_bgr_rectangular_and_colour_refusal(tmp_path):
    from toolchain.data.images import ImageDataset, load_image

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 200, 10
    colour = _png(tmp_path / "c.png", rgb, "RGB")
    gray = _png(tmp_path / "g.png", np.full((20, 30), 77, np.uint8), "L")
    assert load_image(colour, (8, 16)).shape == (8, 16, 3)
    assert load_image(colour, (8, 16), color="bgr")[0, 0].tolist() == [10, 0, 200]
    g = load_image(gray, (8, 16), color="gray")
    assert g.shape == (8, 16, 1) and int(g[0, 0, 0]) == 77
    with pytest.raises(DataError, match="--rgb-to-gray"):
        load_image(colour, 8, color="gray")
    luma = load_image(colour, 8, color="gray", rgb_to_gray=True)
    assert luma.shape == (8, 8, 1) and int(luma[0, 0, 0]) == round(0.299 * 200 + 0.114 * 10)
    ds = ImageDataset([gray, gray], [0, 1], (1, 8, 16), [0.5], [0.25], scale=255.0)
    x, _ = ds[0]
    assert tuple(x.shape) == (1, 8, 16)
    assert float(x[0, 0, 0]) == pytest.approx((77 / 255 - 0.5) / 0.25, abs=1e-6)
    aug = ImageDataset([gray, gray], [0, 1], (1, 16, 32), [0.5], [0.25], augment="ocular")  # colour jitter on 1 channel
    assert tuple(aug[1][0].shape) == (1, 16, 32)
    with pytest.raises(DataError, match="colour"):  # a colour file in a 1-channel data set stops, not skipped
        ImageDataset([gray, colour], [0, 1], (1, 8, 8), [0.5], [0.25])


def test_synth_channels_1_writes_nir_like_gray(tmp_path, capsys):
    r = deploy(capsys, "data", "synth", "--out", tmp_path / "s", "--subjects", "2", "--images-per-subject", "1",
               "--size", "32", "--channels", "1")
    assert r.code == 0, r.err
    files = sorted((tmp_path / "s").rglob("*.png"))
    assert len(files) == 2
    for f in files:
        with Image.open(f) as im:
            assert im.mode == "L" and im.size == (32, 32) and np.asarray(im).std() > 5
    assert json.loads((tmp_path / "s" / "synth.json").read_text())["channels"] == 1
    assert deploy(capsys, "data", "synth", "--out", tmp_path / "t", "--channels", "2").code == 2


def test_deploy_module_pixel_scale_and_one_channel():
    from toolchain.artifact.module import DeployModule

    ident = nn.Flatten()
    x = torch.full((1, 1, 2, 3), 128.0)
    m = DeployModule(ident, [0.5], [0.25], pixel_scale=255.0)
    torch.testing.assert_close(m(x), torch.full((1, 6), (128 / 255 - 0.5) / 0.25))
    m = DeployModule(ident, [100.0, 0.0, 0.0], [50.0, 1.0, 1.0], pixel_scale=1.0)
    assert float(m(torch.full((1, 3, 1, 1), 150.0))[0, 0]) == pytest.approx(1.0)


def test_train_and_init_cli_take_the_spec(tmp_path, capsys):
    r = deploy(capsys, "model", "init", "tiny_ocular", "--out", tmp_path / "b", "--channels", "1",
               "--input-size", "32x64", "--mean", "0.4", "--std", "0.2")
    assert r.code == 0, r.err
    assert "1x32x64 gray" in r.out
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    assert meta["input"]["mean"] == [0.4] and meta["input"]["std"] == [0.2]
    for bad in (["--input-size", "32x"], ["--input-size", "8x64"], ["--channels", "1", "--mean", "0.1,0.2"]):
        r = deploy(capsys, "model", "init", "tiny_ocular", "--out", tmp_path / "x", *bad)
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1, (bad, r.err)
