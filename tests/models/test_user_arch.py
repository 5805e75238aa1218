"""The user's own class (``--arch file.py:Name``), several outputs (``--output``) and map outputs (issue 24, parts
2 and 5): each case of the issue's "Why" is a test here. Tiny models written on the fly; nothing downloads."""

from __future__ import annotations

import hashlib
import json
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from toolchain.errors import BundleError, ImportModelError
from toolchain.models.bundle import load_bundle
from toolchain.models.importer import ImportRequest, import_model

torch.set_num_threads(1)
SIZE = 32

#: The user's file: an embedding net with PReLU and a final BatchNorm1d (like insightface's iresnet), a variant
#: returning (embedding, logits), one returning a dict, and a segmenter returning a map.
USER_CODE = textwrap.dedent('''
    import torch
    from torch import nn


    class EmbedNet(nn.Module):
        def __init__(self, dim=16, width=8, pool=2):
            super().__init__()
            self.conv1 = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.prelu = nn.PReLU(width)
            self.conv2 = nn.Conv2d(width, width * 2, 3, stride=2, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(width * 2)
            self.pool = nn.AdaptiveAvgPool2d(pool)
            self.fc = nn.Linear(width * 2 * pool * pool, dim)
            self.features = nn.BatchNorm1d(dim)

        def body(self, x):
            x = self.prelu(self.bn1(self.conv1(x)))
            x = torch.relu(self.bn2(self.conv2(x)))
            return self.features(self.fc(torch.flatten(self.pool(x), 1)))

        def forward(self, x):
            return self.body(x)


    class TwoHeads(EmbedNet):
        def __init__(self, dim=16, classes=5):
            super().__init__(dim)
            self.classifier = nn.Linear(dim, classes)

        def forward(self, x):
            emb = self.body(x)
            return emb, self.classifier(emb)


    class DictHeads(TwoHeads):
        def forward(self, x):
            emb, logits = super().forward(x)
            return {"embedding": emb, "logits": logits}


    class Segmenter(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.out = nn.Conv2d(4, 1, 1)

        def forward(self, x):
            return self.out(torch.relu(self.bn(self.conv(x))))


    def embed_net(**kwargs):
        return EmbedNet(**kwargs)
''')


def _user(tmp_path, cls: str = "EmbedNet", seed: int = 0, **kwargs):
    """The user's file on disk, and one of its classes trained-looking (random but non-default BN statistics)."""
    path = tmp_path / "my_arch.py"
    path.write_text(USER_CODE)
    ns: dict = {}
    exec(compile(USER_CODE, str(path), "exec"), ns)  # the test's own copy of the user's class
    torch.manual_seed(seed)
    m = ns[cls](**kwargs)
    with torch.no_grad():
        for bn in (x for x in m.modules() if isinstance(x, torch.nn.modules.batchnorm._BatchNorm)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    return path, m.eval()


def _req(tmp_path, src, **kw):
    kw.setdefault("input_size", SIZE)
    return ImportRequest(source=src, out=tmp_path / "bundle", **kw)


def test_user_class_with_kwargs_imports_keeps_a_copy_and_prunes(tmp_path):
    from toolchain.compress.run import prune_structured

    path, m = _user(tmp_path, dim=12)
    save_file(m.state_dict(), str(tmp_path / "w.safetensors"))
    res = import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=f"{path}:EmbedNet",
                            arch_kwargs={"dim": 12}))
    arch = res.meta["architecture"]
    assert arch["source"] == "file" and arch["kwargs"] == {"dim": 12} and res.meta["feature_dim"] == 12
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert arch["code"]["sha256"] == sha and arch["code"]["origin"] == str(path.resolve())
    copy = res.path / arch["code"]["file"]
    assert copy.read_bytes() == path.read_bytes()
    path.unlink()  # later loads rebuild the network from the bundle's copy, not the user's file
    b = load_bundle(res.path)
    x = torch.randn(3, 3, SIZE, SIZE)
    with torch.no_grad():
        np.testing.assert_allclose(b.model(x).numpy(), m(x).numpy(), rtol=1e-4, atol=1e-5)
    # width pruning rebuilds the user's class from the copy and writes the copy into the pruned bundle
    pruned = prune_structured(res.path, tmp_path / "p", multiplier=0.5)
    pb = load_bundle(pruned.bundle)
    assert (pb.path / arch["code"]["file"]).read_bytes() == copy.read_bytes()
    assert pb.meta["weights"]["num_parameters"] < b.meta["weights"]["num_parameters"]


def test_a_changed_copy_is_refused(tmp_path):
    path, m = _user(tmp_path)
    save_file(m.state_dict(), str(tmp_path / "w.safetensors"))
    res = import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=f"{path}:EmbedNet"))
    copy = res.path / res.meta["architecture"]["code"]["file"]
    copy.write_text(copy.read_text() + "\nprint('changed')\n")
    with pytest.raises(BundleError, match="does not match the sha256 in model.json"):
        load_bundle(res.path)


def test_a_card_naming_a_file_and_class(tmp_path):
    """Was: "unknown architecture source" for a card naming the user's class."""
    from toolchain.models.bundle import init_bundle

    path, m = _user(tmp_path, "embed_net", dim=10)  # a factory function, as insightface's iresnet50
    card = tmp_path / "cards" / "mine.toml"
    card.parent.mkdir()
    card.write_text(textwrap.dedent(f'''
        name = "mine"
        [architecture]
        file = "../{path.name}"
        name = "embed_net"
        kwargs = {{dim = 10}}
        [input]
        size = {SIZE}
    '''))
    save_file(m.state_dict(), str(tmp_path / "w.safetensors"))
    res = import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=str(card), input_size=None))
    assert res.meta["feature_dim"] == 10 and res.record["verification"]["status"] == "passed"
    out = init_bundle(str(card), tmp_path / "fresh")  # `deploy model init CARD` too
    assert load_bundle(out).meta["architecture"]["code"]["sha256"] == res.meta["architecture"]["code"]["sha256"]


def test_unknown_class_and_bad_kwargs_are_clear(tmp_path):
    from toolchain.errors import CardError

    path, m = _user(tmp_path)
    save_file(m.state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(CardError, match="no class or function 'Nope'.*EmbedNet"):
        import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=f"{path}:Nope"))
    with pytest.raises(CardError, match="--arch-kwargs"):
        import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=f"{path}:EmbedNet", arch_kwargs={"depth": 3}))
    (tmp_path / "sib.py").write_text("from my_helpers import Block\n")
    with pytest.raises(CardError, match="self-contained"):
        import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=f"{tmp_path / 'sib.py'}:Net"))


@pytest.mark.parametrize("cls,pick", [("TwoHeads", "0"), ("DictHeads", "embedding")])
def test_several_outputs_need_output(tmp_path, cls, pick):
    """Was: AttributeError: 'tuple' object has no attribute 'numpy'."""
    path, m = _user(tmp_path, cls)
    save_file(m.state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(ImportModelError, match=r"returns 2 outputs \(.*\[1, 16\].*\[1, 5\]\).*--output"):
        import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=f"{path}:{cls}"))
    with pytest.raises(ImportModelError, match="has no output 'nope'"):
        import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=f"{path}:{cls}", output="nope"))
    res = import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=f"{path}:{cls}", output=pick))
    assert res.meta["feature_dim"] == 16 and res.meta["architecture"]["output"] in (0, "embedding")
    b = load_bundle(res.path)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        want = m(x)
        want = want[0] if isinstance(want, tuple) else want["embedding"]
        np.testing.assert_allclose(b.model(x).numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["torchscript", "pt2"])
def test_programs_returning_a_tuple(tmp_path, kind):
    """.pt2 and TorchScript imports of a tuple-returning model: the clear error, then --output."""
    _, m = _user(tmp_path, "TwoHeads")
    x = torch.rand(1, 3, SIZE, SIZE)
    if kind == "torchscript":
        src = tmp_path / "m.pt"
        torch.jit.trace(m, x).save(str(src))
    else:
        src = tmp_path / "m.pt2"
        torch.export.save(torch.export.export(m, (x,)), str(src))
    with pytest.raises(ImportModelError, match=r"returns 2 outputs .*\[1, 16\].*\[1, 5\].*--output"):
        import_model(_req(tmp_path, src))
    res = import_model(_req(tmp_path, src, output="1"))
    assert res.meta["feature_dim"] == 5
    b = load_bundle(res.path)
    xs = torch.randn(3, 3, SIZE, SIZE)
    with torch.no_grad():
        np.testing.assert_allclose(b.model(xs).numpy(), m(xs)[1].numpy(), rtol=1e-4, atol=1e-5)


def test_wrong_architecture_with_strict_false_is_a_clear_error(tmp_path):
    """Was: RuntimeError: mat1 and mat2 shapes cannot be multiplied."""
    path, m = _user(tmp_path, width=16)  # trained at width 16, imported as the default width 8
    save_file(m.state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(ImportModelError, match="does not match"):
        import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=f"{path}:EmbedNet"))
    # trained with a 3x3 pool before its embedding Linear (144 inputs), imported as the default 2x2 (64): the
    # kept embedding layer takes the file's width, and the network's layers no longer connect
    path, m = _user(tmp_path, pool=3)
    save_file(m.state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(ImportModelError, match=r"does not run on a \[3, 32, 32\] input.*--strict false.*--arch"):
        import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=f"{path}:EmbedNet", strict=False))


def test_map_output_is_refused_then_kept_as_a_map(tmp_path):
    """Was: a segmenter's map averaged into a "feature" of dimension 1 (whose cosine is always 1)."""
    path, m = _user(tmp_path, "Segmenter")
    save_file(m.state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(ImportModelError, match=r"a map of shape \[1, 1, 32, 32\].*--output"):
        import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=f"{path}:Segmenter"))
    res = import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=f"{path}:Segmenter", output="0"))
    assert res.meta["feature_dim"] == SIZE * SIZE  # every value of the map, not one pooled number
    b = load_bundle(res.path)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        np.testing.assert_allclose(b.model(x).numpy(), m(x).numpy(), rtol=1e-4, atol=1e-5)


def test_a_map_is_compared_over_all_its_values():
    """Two maps with the same mean (a pooled 1-d "feature": cosine 1) but different content must not pass."""
    from toolchain.artifact.compare import compare

    ref = np.zeros((2, 1, 8, 8), np.float32)
    ref[:, :, :4] = 1.0
    got = np.zeros_like(ref)
    got[:, :, 4:] = 1.0  # same mean, the other half lit
    res = compare(ref, got, min_cosine=0.99, runtime="test")
    assert res.status == "failed" and res.cosine_min == pytest.approx(0.0)
    assert compare(ref, ref.copy(), min_cosine=0.99, runtime="test").status == "passed"


def test_cli_arch_kwargs_and_output(tmp_path):
    from typer.testing import CliRunner

    from toolchain.cli import app

    path, m = _user(tmp_path, "TwoHeads", dim=12)
    save_file(m.state_dict(), str(tmp_path / "w.safetensors"))
    base = ["model", "import", str(tmp_path / "w.safetensors"), "--arch", f"{path}:TwoHeads", "--input-size",
            str(SIZE), "--out", str(tmp_path / "b")]
    r = CliRunner().invoke(app, base + ["--arch-kwargs", "{dim: 12}"])
    assert r.exit_code != 0 and "--arch-kwargs is not JSON" in str(r.exception)
    r = CliRunner().invoke(app, base + ["--arch-kwargs", json.dumps({"dim": 12})])
    assert isinstance(r.exception, ImportModelError) and "--output" in str(r.exception)
    r = CliRunner().invoke(app, base + ["--arch-kwargs", json.dumps({"dim": 12}), "--output", "0"])
    assert r.exit_code == 0, r.output
    assert "feature dim 12" in r.output
    from toolchain.models import user_code

    def never(*_a, **_k):
        raise AssertionError("model info ran the bundle's code")

    real, user_code.register = user_code.register, never  # info reads and checks files, runs nothing
    try:
        r = CliRunner().invoke(app, ["model", "info", str(tmp_path / "b")])
    finally:
        user_code.register = real
    text = " ".join(r.output.split())  # rich wraps long lines
    assert r.exit_code == 0, r.output
    assert "code/my_arch.py" in text and "every command that loads this bundle runs it (not `model info`)" in text
    (tmp_path / "b" / "code" / "my_arch.py").write_text("print('tampered')\n")
    r = CliRunner().invoke(app, ["model", "info", str(tmp_path / "b")])
    assert r.exit_code != 0 and "does not match the sha256" in str(r.exception)


def _onnx(tmp_path, model, name="m.onnx"):
    import logging

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    path = tmp_path / name
    import warnings

    with warnings.catch_warnings():  # the legacy exporter (seconds faster than dynamo's) warns it is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 3, SIZE, SIZE),), str(path), dynamo=False, opset_version=17)
    return path


def test_onnx_map_is_refused_then_picked_and_compared_as_a_map(tmp_path):
    """Was: a segmenter's (1, 1, H, W) map averaged into a 1-d "feature", imported as verified."""
    _, m = _user(tmp_path, "Segmenter")
    src = _onnx(tmp_path, m)
    with pytest.raises(ImportModelError, match=r"returns a map \(0: '.*' \[1, 1, 32, 32\]\).*--output 0"):
        import_model(_req(tmp_path, src))
    res = import_model(_req(tmp_path, src, output="0"))
    assert res.meta["feature_dim"] == SIZE * SIZE and res.record["verification"]["status"] == "passed"
    b = load_bundle(res.path)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        np.testing.assert_allclose(b.model(x).numpy(), m(x).numpy(), rtol=1e-4, atol=1e-5)


def test_onnx_with_several_outputs_needs_output(tmp_path):
    _, m = _user(tmp_path, "TwoHeads")
    src = _onnx(tmp_path, m)
    with pytest.raises(ImportModelError, match=r"returns 2 outputs \(0: .*\[1, 16\], 1: .*\[1, 5\]\).*--output"):
        import_model(_req(tmp_path, src))
    with pytest.raises(ImportModelError, match="has no output 7"):
        import_model(_req(tmp_path, src, output="7"))
    res = import_model(_req(tmp_path, src, output="0"))
    assert res.meta["feature_dim"] == 16
    b = load_bundle(res.path)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        np.testing.assert_allclose(b.model(x).numpy(), m(x)[0].numpy(), rtol=1e-4, atol=1e-5)


def test_a_map_exports_and_is_compared_as_a_map(tmp_path):
    """Export parity of a picked map: every value compared (ONNX keeps the map's shape; the iPhone 6's spec-3
    Core ML model returns it flattened, [D], and is compared value for value in the same order)."""
    from toolchain.export.base import ExportRequest, export_bundle

    path, m = _user(tmp_path, "Segmenter")
    save_file(m.state_dict(), str(tmp_path / "w.safetensors"))
    res = import_model(_req(tmp_path, tmp_path / "w.safetensors", arch=f"{path}:Segmenter", output="0"))
    for target, devices in (("onnx", []), ("coreml", ["iphone6"])):
        for o in export_bundle(ExportRequest(res.path, target, tmp_path / "e", devices=devices)):
            assert o.manifest.parity.status == "passed" and o.manifest.output.dim == SIZE * SIZE, o.manifest.name
            assert o.manifest.parity.cosine_min > 0.999


def test_a_flattened_map_in_another_order_fails():
    from toolchain.artifact.compare import compare

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    assert compare(ref, ref.reshape(2, -1), min_cosine=0.99, runtime="t").status == "passed"
    channels_last = ref.transpose(0, 2, 3, 1).reshape(2, -1)  # same values, NHWC order
    assert compare(ref, channels_last, min_cosine=0.99, runtime="t").status == "failed"
    assert compare(ref, ref.reshape(2, -1)[:, :59], min_cosine=0.99, runtime="t").status == "failed"  # not a map of it


@pytest.mark.parametrize("strict", [True, False])
def test_a_card_whose_layers_do_not_connect_is_a_clear_error(tmp_path, strict):
    """The same failure through a built-in card (was a raw ``mat1 and mat2 shapes cannot be multiplied``): a final
    Linear whose output equals the feature width is kept as an embedding with the file's own input width (32),
    which the trunk (64 channels) cannot feed."""
    from toolchain.models.arch import TinyResNet

    state = TinyResNet(num_classes=10).state_dict()
    state["fc.weight"] = torch.randn(64, 32)
    state["fc.bias"] = torch.zeros(64)
    save_file(state, str(tmp_path / "w.safetensors"))
    with pytest.raises(ImportModelError, match=r"does not run on a \[3, 32, 32\] input .*mat1 and mat2.*--arch"):
        import_model(_req(tmp_path, tmp_path / "w.safetensors", arch="tiny_ocular", strict=strict))
