"""Hostile model files and cards through `deploy model import` / `model init` (issue 29, second round).

Each case once ended in a traceback or an "imported" model that is not one; now each is one clean line
(exit 2), in bounded time, with nothing left at ``--out``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from tests.cli._cli import deploy
from tests.cli._hostile import refused, run_refused


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    from toolchain.models.arch import base_network

    torch.manual_seed(0)
    return {k: v.clone() for k, v in base_network("toolchain", "tiny_resnet").state_dict().items()}


def _save(path: Path, state: dict) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_good_checkpoint_imports(capsys, tmp_path, tiny_state):
    src = _save(tmp_path / "w.safetensors", tiny_state)
    r = deploy(capsys, "model", "import", src, "--arch", "tiny_ocular", "--out", tmp_path / "b")
    assert r.code == 0, r.err


@pytest.mark.parametrize("how", ["nan", "inf", "bool"])
def test_non_finite_or_non_float_weights_refused(capsys, tmp_path, tiny_state, how):
    state = dict(tiny_state)
    name = "fc.weight" if "fc.weight" in state else next(k for k in state if k.endswith("weight"))
    if how == "bool":
        state[name] = torch.ones_like(state[name], dtype=torch.bool)
    else:
        w = state[name].clone()
        w[0, 0] = float(how)
        state[name] = w
    src = _save(tmp_path / "w.safetensors", state)
    run_refused(capsys, tmp_path, "model", "import", src, "--arch", "tiny_ocular", "--out", tmp_path / "b",
                needles=(name,), out=tmp_path / "b")


def test_strict_false_loading_nothing_refused(capsys, tmp_path, tiny_state):
    src = _save(tmp_path / "w.safetensors", {f"t{i}": v for i, v in enumerate(tiny_state.values())})
    run_refused(capsys, tmp_path, "model", "import", src, "--arch", "tiny_ocular", "--strict", "false",
                "--out", tmp_path / "b", needles=("0 of",), out=tmp_path / "b")


def test_strict_false_loading_too_little_refused(capsys, tmp_path, tiny_state):
    keys = sorted(tiny_state)
    src = _save(tmp_path / "w.safetensors", {k: v for k, v in tiny_state.items() if k in keys[:3]})
    run_refused(capsys, tmp_path, "model", "import", src, "--arch", "tiny_ocular", "--strict", "false",
                "--out", tmp_path / "b", needles=("--strict false",), out=tmp_path / "b")


def test_empty_feature_layer_refused(capsys, tmp_path, tiny_state):
    src = _save(tmp_path / "w.safetensors", tiny_state)
    run_refused(capsys, tmp_path, "model", "import", src, "--arch", "tiny_ocular", "--feature-layer", "",
                "--out", tmp_path / "b", needles=("--feature-layer",), out=tmp_path / "b")


def test_head_name_at_first_conv_refused(capsys, tmp_path, tiny_state):
    from toolchain.models.arch import base_network

    first = next(n for n, m in base_network("toolchain", "tiny_resnet").named_modules()
                 if isinstance(m, torch.nn.Conv2d))
    src = _save(tmp_path / "w.safetensors", tiny_state)
    run_refused(capsys, tmp_path, "model", "import", src, "--arch", "tiny_ocular", "--head-name", first,
                "--out", tmp_path / "b", needles=("--head-name",), out=tmp_path / "b")


def _pt2_with_bad_name(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/a\u00e9.json", b"{}")  # stored as UTF-8 with the UTF-8 flag set
    data = path.read_bytes().replace("a\u00e9".encode(), b"a\xff\xfe")
    path.write_bytes(data)
    return path


def test_pt2_with_non_utf8_entry_names(capsys, tmp_path):
    src = _pt2_with_bad_name(tmp_path / "m.pt2")
    run_refused(capsys, tmp_path, "model", "import", src, "--input-size", "32", "--out", tmp_path / "b",
                needles=("m.pt2",), out=tmp_path / "b")


def _onnx(path: Path, *, init_dims=None, input_dims=(1, 3, 32, 32), cycle=False) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_dims))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = []
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r" if not cycle else "z"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["y" if not cycle else "z"], name="flat")]
    if cycle:
        nodes.append(helper.make_node("Identity", ["z"], ["y"], name="out"))
    if init_dims is not None:
        t = TensorProto(name="big", dims=list(init_dims), data_type=TensorProto.FLOAT)  # claims, holds nothing
        inits.append(t)
        nodes[-1:-1] = []
        nodes.append(helper.make_node("Add", ["y", "big"], ["y2"], name="add"))
        y = helper.make_tensor_value_info("y2", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("case", ["init1e9", "init1e18", "input100000", "cycle"])
def test_hostile_onnx_files(capsys, tmp_path, case):
    kw = {"init1e9": {"init_dims": (1000, 1000, 1000)}, "init1e18": {"init_dims": (10 ** 9, 10 ** 9)},
          "input100000": {"input_dims": (1, 3, 100000, 100000)}, "cycle": {"cycle": True}}[case]
    src = _onnx(tmp_path / "m.onnx", **kw)
    run_refused(capsys, tmp_path, "model", "import", src, "--out", tmp_path / "b", needles=("m.onnx",),
                out=tmp_path / "b", seconds=60)


def _card(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "card.toml"
    p.write_text(text)
    return p


_ARCH = '[architecture]\nsource = "toolchain"\nname = "tiny_resnet"\n'


@pytest.mark.parametrize("body, needles", [
    (_ARCH + "kwargs = { widths = [100000, 100000] }\n[input]\nsize = 64\n", ("parameters",)),
    (_ARCH + "[input]\nsize = -8\n", ("[input] size", "[16, 1024]")),
    (_ARCH + "[input]\nsize = 100000\n", ("[input] size", "[16, 1024]")),
    (_ARCH + "input_size = 64\n[input]\nsize = 64\n", ("input_size",)),  # misplaced: inside [architecture]
    ('input_size = 64\nmean = [0.5, 0.5, 0.5]\n' + _ARCH, ("input_size",)),  # misplaced: top level
    (_ARCH + "[input]\nsize = 64\nstd = [0.0, 0.2, 0.2]\n", ("std",)),
    (_ARCH + "[input]\nsize = 64\nstd = [nan, 0.2, 0.2]\n", ("std",)),
    (_ARCH + "[input]\nsize = 64\nmean = [inf, 0.2, 0.2]\n", ("mean",)),
    (_ARCH + "[input]\nsize = 64\ncolour = 'rgb'\n", ("colour",)),  # unknown key
])
def test_hostile_cards_through_model_init(capsys, tmp_path, body, needles):
    card = _card(tmp_path, 'name = "c"\n' + body)
    run_refused(capsys, tmp_path, "model", "init", card, "--out", tmp_path / "b", needles=needles,
                out=tmp_path / "b", seconds=60)


def test_good_card_still_builds(capsys, tmp_path):
    card = _card(tmp_path, 'name = "c"\n' + _ARCH + "[input]\nsize = 32\nmean = [0.5, 0.5, 0.5]\n"
                 "std = [0.25, 0.25, 0.25]\n[features]\ndim = 64\n")
    r = deploy(capsys, "model", "init", card, "--out", tmp_path / "b")
    assert r.code == 0, r.err


def test_refusals_are_one_line(capsys, tmp_path):
    """The helper itself: a clean refusal passes, a success does not (the checks can fail)."""
    r = deploy(capsys, "model", "init", "no_such_card", "--out", tmp_path / "b")
    refused(r, "unknown model card")
    with pytest.raises(AssertionError):
        refused(deploy(capsys, "model", "init", "tiny_ocular", "--out", tmp_path / "b2"))
