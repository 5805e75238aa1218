"""A seeded fuzz of hostile files through the real CLI entry point (``toolchain.cli:main``).

For each generated file — a results file, an artifact manifest, a bundle's model.json — placed next to good
ones, the commands that read it must: exit 0, 1 (``collect``: some files were rejected) or 2 (a clear
error); never raise (an escaping exception is a traceback); change no file outside their ``--out``; and keep
every good file next to the bad one, byte for byte. Bounded and derandomized, so CI time and outcomes are
the same on every run.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bench._results import dumps, fixture, result
from tests.cli._cli import deploy, snapshot

def fuzz(examples: int):
    """Seeded and bounded: the same examples on every run, a fixed share of CI time."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Values a hostile or broken writer puts in a field: wrong types, huge and tiny numbers, markup, paths.
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.sampled_from([10**400, -1, 0, 2**63, 10**13 + 1]),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1e308, -0.0, 5e-324]),
    st.text(max_size=12), st.sampled_from(["[/bold]", "[b]x[/b]", "../../etc/passwd", "/abs", ".hidden", "\x00",
                                           "é" * 3, "nan", "1e999", "fp16", "coreml", "x" * 300]),
)
_VALUES = st.recursive(_SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                        st.dictionaries(st.text(max_size=6), kids, max_size=4)),
                       max_leaves=12)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            out += _paths(v, prefix + (i,))
    return out


def _set(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    obj = copy.deepcopy(obj)
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


def _drop(obj: Any, path: tuple) -> Any:
    if not path:
        return obj
    obj = copy.deepcopy(obj)
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    del cur[path[-1]]
    return obj


@st.composite
def hostile_json(draw, base: dict) -> bytes:
    """``base`` with one field replaced or removed, or its text cut, nested deep, or made of raw bytes."""
    kind = draw(st.sampled_from(["replace", "replace", "replace", "drop", "truncate", "deep", "bytes", "numbers"]))
    if kind in ("replace", "drop"):
        path = draw(st.sampled_from(_paths(base)))
        obj = _set(base, path, draw(_VALUES)) if kind == "replace" else _drop(base, path)
        return json.dumps(obj, allow_nan=True).encode()
    text = json.dumps(base, indent=2).encode()
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text) - 1))]
    if kind == "deep":
        n = draw(st.integers(60, 6000))
        return text[:-2] + b', "x": ' + b"[" * n + b"]" * n + b"}"
    if kind == "numbers":
        lit = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"1" + b"0" * 500, b"7" * 5000]))
        return text.replace(b": 1", b": " + lit, 1) if b": 1" in text else text[:-2] + b', "n": ' + lit + b"}"
    return draw(st.binary(max_size=200))


def _check(r, allowed=(0, 1, 2)) -> None:
    assert r.code in allowed, (r.code, r.out[-500:], r.err[-500:])
    assert "Traceback" not in r.err and "Traceback" not in r.out


@fuzz(60)
@given(data=st.data())
def test_fuzz_results_files_through_collect_list_and_report(capsys, tmp_path_factory, data):
    base = fixture("ok")
    bad = data.draw(hostile_json(base))
    root = tmp_path_factory.mktemp("fz")
    src = root / "incoming"
    src.mkdir()
    (src / "a-bad.json").write_bytes(bad)
    good_id = "good-run-not-generated-0001"  # longer than any generated text: no bad file can claim it
    (src / "b-good.json").write_bytes(dumps(result(good_id)))
    outside = snapshot(root)
    r = deploy(capsys, "collect", "dir", src, "--out", root / "store")
    _check(r)
    assert {k: v for k, v in snapshot(root).items() if not k.startswith("store")} == outside
    stored = sorted(p.name for p in (root / "store").glob(f"{good_id}.*.json"))
    assert len(stored) == 1 and (root / "store" / stored[0]).read_bytes() == (src / "b-good.json").read_bytes()
    _check(deploy(capsys, "results", "list", "--store", root / "store"), allowed=(0,))
    rep = deploy(capsys, "report", "--results", root / "store", "--results", src, "--out", root / "report",
                 "--no-plots")
    _check(rep, allowed=(0,))  # the good run is always there to report


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory) -> Path:
    from toolchain.export.base import ExportRequest, export_bundle
    from toolchain.models.bundle import init_bundle

    root = tmp_path_factory.mktemp("art")
    bundle = init_bundle("tiny_ocular", root / "bundle", seed=0)
    (out,) = export_bundle(ExportRequest(bundle_dir=bundle, target="onnx", out=root / "exports"))
    return out.folder


@fuzz(20)
@given(data=st.data())
def test_fuzz_manifests_through_bench_host_and_report(capsys, tmp_path_factory, onnx_artifact, data):
    base = json.loads((onnx_artifact / "manifest.json").read_text())
    bad = data.draw(hostile_json(base))
    root = tmp_path_factory.mktemp("fm")
    art = root / "exports" / onnx_artifact.name
    shutil.copytree(onnx_artifact, art)
    (art / "manifest.json").write_bytes(bad)
    good = root / "exports" / "good"
    shutil.copytree(onnx_artifact, good)
    outside = snapshot(root)
    r = deploy(capsys, "bench", "host", art, "--warmup", "0", "--iterations", "1", "--threads", "1",
               "--out", root / "store")
    _check(r, allowed=(0, 2))
    rep = deploy(capsys, "report", "--results", root / "store", "--artifacts", root / "exports", "--out",
                 root / "report", "--no-plots")
    _check(rep, allowed=(0, 2))
    after = snapshot(root)
    assert {k: v for k, v in after.items() if not k.startswith(("store", "report"))} == outside


@pytest.fixture(scope="module")
def tiny_bundle_dir(tmp_path_factory) -> Path:
    from toolchain.models.bundle import init_bundle

    return init_bundle("tiny_ocular", tmp_path_factory.mktemp("tb") / "bundle", seed=0)


@fuzz(20)
@given(data=st.data())
def test_fuzz_model_json_through_model_info_and_export(capsys, tmp_path_factory, tiny_bundle_dir, data):
    base = json.loads((tiny_bundle_dir / "model.json").read_text())
    bad = data.draw(hostile_json(base))
    root = tmp_path_factory.mktemp("fb")
    b = root / "bundle"
    shutil.copytree(tiny_bundle_dir, b)
    (b / "model.json").write_bytes(bad)
    outside = snapshot(root)
    _check(deploy(capsys, "model", "info", b), allowed=(0, 2))
    r = deploy(capsys, "export", b, "--target", "onnx", "--out", root / "exports", "--no-verify")
    _check(r, allowed=(0, 2))
    after = snapshot(root)
    assert {k: v for k, v in after.items() if not k.startswith("exports")} == outside


def _toml_value(v: Any) -> str | None:
    """TOML text for a generated value (None has no TOML form: the key is left out)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if not isinstance(v, float) or abs(v) < 1e300 else "1e300"
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        items = [t for t in map(_toml_value, v) if t is not None]
        return "[" + ", ".join(items) + "]"
    if isinstance(v, dict):
        items = [f"{json.dumps(str(k))} = {t}" for k, x in v.items() if (t := _toml_value(x)) is not None]
        return "{ " + ", ".join(items) + " }"
    raise TypeError(type(v))


def _toml(config: dict[str, Any]) -> str:
    lines = [f"{json.dumps(k)} = {t}" for k, v in config.items()  # top-level keys first: a broken section
             if not (isinstance(v, dict) or (isinstance(v, list) and v and all(isinstance(x, dict) for x in v)))
             and (t := _toml_value(v)) is not None]
    for section, body in config.items():
        if not (isinstance(body, dict) or (isinstance(body, list) and body and all(isinstance(x, dict) for x in body))):
            continue
        if isinstance(body, list):
            for item in body:
                lines.append(f"[[{section}]]")
                lines += [f"{json.dumps(k)} = {t}" for k, v in item.items() if (t := _toml_value(v)) is not None]
        else:
            lines.append(f"[{section}]")
            lines += [f"{json.dumps(k)} = {t}" for k, v in body.items() if (t := _toml_value(v)) is not None]
    return "\n".join(lines) + "\n"


@fuzz(40)
@given(data=st.data())
def test_fuzz_pipeline_configs_through_dry_run(capsys, tmp_path_factory, data):
    import tomllib

    from toolchain import pipeline

    base = tomllib.loads((Path(pipeline.__file__).parent / "demo_quick.toml").read_text())
    path = data.draw(st.sampled_from([p for p in _paths(base) if len(p) >= 2]))
    kind = data.draw(st.sampled_from(["replace", "drop"]))
    cfg = _set(base, path, data.draw(_VALUES)) if kind == "replace" else _drop(base, path)
    root = tmp_path_factory.mktemp("fp")
    cfg.setdefault("pipeline", {})["work_dir"] = str(root / "work")
    try:
        text = _toml(cfg)
    except TypeError:
        return
    (root / "pipeline.toml").write_text(text)
    before = snapshot(root)
    r = deploy(capsys, "pipeline", "run", root / "pipeline.toml", "--dry-run")
    _check(r, allowed=(0, 2))
    assert snapshot(root) == before  # a dry run writes nothing


# ---- second round (issue 29): model files, cards, CSV indexes and folder trees ------------------------------

def _mutate_bytes(data: bytes, draw) -> bytes:
    """Flip, cut, splice or repeat bytes of a valid file: what a damaged or forged copy looks like."""
    kind = draw(st.sampled_from(["flip", "cut", "splice", "repeat"]))
    if not data:
        return data
    i = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
    if kind == "cut":
        return data[:i]
    if kind == "splice":
        return data[:i] + draw(st.binary(min_size=1, max_size=16)) + data[i:]
    return data[:i] + data[i:i + 64] * draw(st.integers(2, 50)) + data[i + 64:]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, bytes]:
    """A small valid ONNX file (Conv-Relu-Pool-Gemm) and a torch.export .pt2 archive of a tiny network."""
    import io

    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((4, 5)).astype(np.float32), "fc")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "fc"], ["y"], name="head")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], initializer=inits)
    onnx_bytes = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    buf = io.BytesIO()
    torch.export.save(torch.export.export(net, (torch.zeros(1, 3, 32, 32),)), buf)
    return {"m.onnx": onnx_bytes, "m.pt2": buf.getvalue()}


@fuzz(6)
@given(data=st.data())
def test_fuzz_model_files_through_model_import(capsys, tmp_path_factory, model_files, data):
    name = data.draw(st.sampled_from(sorted(model_files)))
    root = tmp_path_factory.mktemp("fi")
    (root / name).write_bytes(_mutate_bytes(model_files[name], data.draw))
    outside = snapshot(root)
    r = deploy(capsys, "model", "import", root / name, "--input-size", "32", "--out", root / "b")
    _check(r, allowed=(0, 2))
    after = snapshot(root)
    assert {k: v for k, v in after.items() if not k.startswith("b")} == outside
    if r.code != 0:
        assert not (root / "b").exists()  # no half-made bundle


_CARD = {"name": "c", "architecture": {"source": "toolchain", "name": "tiny_resnet"},
         "input": {"size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}, "features": {"dim": 64}}
_CARD_VALUES = st.one_of(_VALUES, st.sampled_from([float("nan"), float("inf"), -1, 0, 100000, 10 ** 12, [0, 0, 0],
                                                   {"widths": [100000, 100000]}, {"widths": [4, 4]}, "conv1", ""]))


@fuzz(10)
@given(data=st.data())
def test_fuzz_cards_through_model_init(capsys, tmp_path_factory, data):
    paths = _paths(_CARD) + [("input", "input_size"), ("input_size",), ("architecture", "kwargs"), ("colour",)]
    path = data.draw(st.sampled_from([p for p in paths if p]))
    kind = data.draw(st.sampled_from(["replace", "replace", "drop"]))
    cfg = copy.deepcopy(_CARD)
    if kind == "drop" and path[0] in cfg and (len(path) == 1 or path[-1] in cfg.get(path[0], {})):
        cfg = _drop(cfg, path)
    else:
        cur = cfg
        for p in path[:-1]:
            cur = cur.setdefault(p, {}) if isinstance(cur, dict) else cur
        if isinstance(cur, dict):
            cur[path[-1]] = data.draw(_CARD_VALUES)
    try:
        text = _toml(cfg).replace("nan", "nan").replace("1e300", "inf" if data.draw(st.booleans()) else "1e300")
    except TypeError:
        return
    root = tmp_path_factory.mktemp("fc")
    (root / "card.toml").write_text(text)
    outside = snapshot(root)
    r = deploy(capsys, "model", "init", root / "card.toml", "--out", root / "b")
    _check(r, allowed=(0, 2))
    assert {k: v for k, v in snapshot(root).items() if not k.startswith("b")} == outside
    if r.code != 0:
        assert not (root / "b").exists()


def _tiny_images(root: Path, names: list[str]) -> None:
    from PIL import Image

    for i, n in enumerate(names):
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i * 7 % 256, 40, 90)).save(p)


_FIELDS = st.one_of(st.text(max_size=8), st.sampled_from(["", " ", "a" * 5000, "../x.png", "/etc/passwd", "\x00",
                                                          '"', "s,1", "é", "a\nb", "0.png", "s00/0.png"]))


@fuzz(10)
@given(data=st.data())
def test_fuzz_csv_indexes_through_data_check_and_split(capsys, tmp_path_factory, data):
    root = tmp_path_factory.mktemp("fx")
    names = [f"s{s:02d}/{i}.png" for s in range(4) for i in range(2)]
    _tiny_images(root / "data", names)
    rows = [[n, n.split("/")[0]] for n in names]
    for _ in range(data.draw(st.integers(0, 4))):
        rows.insert(data.draw(st.integers(0, len(rows))), [data.draw(_FIELDS), data.draw(_FIELDS)])
    if data.draw(st.booleans()):
        rows += [rows[0]] * data.draw(st.integers(1, 200))  # duplicates
    header = data.draw(st.sampled_from(["path,subject", "path,subject,session,eye", "subject,path", "x,y", ""]))
    text = header + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    raw = text.encode("utf-8", "surrogatepass")
    if data.draw(st.booleans()):
        raw = _mutate_bytes(raw, data.draw)
    (root / "data" / "index.csv").write_bytes(raw)
    outside = snapshot(root)
    _check(deploy(capsys, "data", "check", root / "data"), allowed=(0, 2))
    r = deploy(capsys, "data", "split", root / "data", "--out", root / "sp", "--no-check-images",
               "--fractions", "0.5,0.25,0.25")
    _check(r, allowed=(0, 2))
    assert {k: v for k, v in snapshot(root).items() if not k.startswith("sp")} == outside


@fuzz(8)
@given(data=st.data())
def test_fuzz_folder_trees_through_data_check_and_split(capsys, tmp_path_factory, data):
    import os

    root = tmp_path_factory.mktemp("ft")
    parts = st.sampled_from(["s0", "s1", "s2", "a b", ".hidden", "é", "x" * 60, "sub", "C1_S1_I1_L.png"])
    names = set()
    for _ in range(data.draw(st.integers(2, 12))):
        depth = data.draw(st.integers(0, 6))
        folders = [data.draw(parts) for _ in range(depth)]
        names.add("/".join([*folders, data.draw(st.sampled_from(["0.png", "1.jpg", "2.png", "n.txt", ".x.png"]))]))
    try:
        _tiny_images(root / "data", sorted(n for n in names if n.endswith((".png", ".jpg"))))
    except (OSError, ValueError):
        return  # a name the file system refuses (a file where a folder is asked for): not a case
    if data.draw(st.booleans()):  # a symlink loop, a non-UTF-8 name, an empty image
        os.symlink(root / "data", root / "data" / "loop")
        bad = os.path.join(os.fsencode(root / "data"), b"n\xff")
        os.makedirs(bad, exist_ok=True)
        open(os.path.join(bad, b"0.png"), "wb").close()
    outside = snapshot(root) if not (root / "data" / "loop").exists() else None
    _check(deploy(capsys, "data", "check", root / "data"), allowed=(0, 2))
    _check(deploy(capsys, "data", "split", root / "data", "--out", root / "sp", "--no-check-images"), allowed=(0, 2))
    if outside is not None:
        assert {k: v for k, v in snapshot(root).items() if not k.startswith("sp")} == outside
