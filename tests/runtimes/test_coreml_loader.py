"""Reading Core ML artifacts without coremltools: the same numbers as coremltools' own loader (the oracle), and
``deploy evaluate`` of a Core ML artifact that never imports coremltools or torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from toolchain.export.base import ExportRequest, export_bundle
from toolchain.models.bundle import init_bundle
from toolchain.runtimes.coreml import loader, milblob, milproto, proto

torch.set_num_threads(1)

#: label: export request (tiny model, 32 px): both interpreters, fp32 and fp16, and compressed weights
EXPORTS = {
    "nn_spec3_fp32": dict(devices=["iphone6"], precision="fp32"),
    "nn_spec3_fp16": dict(devices=["iphone6"]),
    "mlprogram_fp32": dict(devices=["iphonexr"], precision="fp32"),
    "mlprogram_fp16": dict(devices=["iphonexr"]),
    "palettize8_ios16": dict(devices=["iphonex"], compress="palettize8"),  # constexpr attributes, packed bits
    "palettize4_ios18": dict(devices=["iphonexr"], compress="palettize4", min_cosine=0.99),  # uint4 blobs
    "int8_ios16": dict(devices=["iphonex"], precision="int8"),
}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("coreml_loader")
    bundle = init_bundle("tiny_ocular", root / "tiny", input_size=32)
    out = {}
    for label, req in EXPORTS.items():
        (o,) = export_bundle(ExportRequest(bundle_dir=bundle, target="coreml", out=root / label, **req))
        out[label] = o.folder / o.manifest.to_json()["file"]
    return out


def _path(artifacts: dict[str, Path], label: str) -> Path:
    return artifacts[label]


@pytest.mark.parametrize("label", sorted(EXPORTS))
def test_new_loader_runs_like_coremltools_loader(label, artifacts):
    """The spec parses identically and the compiled program gives bit-identical outputs on a batch."""
    path = _path(artifacts, label)
    spec, compile_new, what = loader.load(path)
    old_spec, compile_old, old_what = loader.load_with_coremltools(path)
    assert what == old_what == ("ML Program" if path.suffix == ".mlpackage" else "NeuralNetwork")
    assert spec.SerializeToString(deterministic=True) == old_spec.SerializeToString(deterministic=True)
    inp = spec.description.input[0]
    shape = [int(s) for s in inp.type.multiArrayType.shape][-3:]
    x = np.random.default_rng(0).uniform(0, 255, (3, *shape)).astype(np.float32)
    new, old = compile_new(), compile_old()
    assert [s.outputs for s in new.steps] == [s.outputs for s in old.steps]  # the same ops run
    got, want = new.run_batch(inp.name, x), old.run_batch(inp.name, x)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].dtype == want[k].dtype
        np.testing.assert_array_equal(got[k], want[k])
    if label.startswith(("palettize", "int8")):
        ops = {op.type for op in milproto.read_mlpackage(path)[1]["main"].ops}
        assert any(o.startswith("constexpr_") for o in ops), ops


_READ = {1: "read_fp16_data", 2: "read_float_data", 3: "read_uint8_data", 4: "read_int8_data", 6: "read_int16_data",
         7: "read_uint16_data", 8: "read_int4_data", 9: "read_uint1_data", 10: "read_uint2_data",
         11: "read_uint4_data", 12: "read_uint3_data", 13: "read_uint6_data", 14: "read_int32_data",
         15: "read_uint32_data"}


@pytest.mark.parametrize("label", ["mlprogram_fp32", "mlprogram_fp16", "palettize4_ios18", "int8_ios16"])
def test_blob_reader_matches_coremltools(label, artifacts):
    """Every blob of the weight file (walked as StorageReader::GetAllOffsets does) reads as coremltools' reader."""
    from coremltools.libmilstoragepython import _BlobStorageReader

    weights = _path(artifacts, label) / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    ours, theirs = milblob.BlobFile(weights), _BlobStorageReader(str(weights))
    raw = weights.read_bytes()
    count, offset, codes = int.from_bytes(raw[:4], "little"), 64, set()
    assert count > 0
    for _ in range(count):
        code = int.from_bytes(raw[offset + 4:offset + 8], "little")
        codes.add(code)
        want = np.asarray(getattr(theirs, _READ[code])(offset))
        got = ours.read(offset)
        if code == 1:  # coremltools returns fp16 bits as uint16
            want = want.view(np.float16)
        np.testing.assert_array_equal(got, want.reshape(-1))
        end = int.from_bytes(raw[offset + 16:offset + 24], "little") + int.from_bytes(raw[offset + 8:offset + 16],
                                                                                     "little")
        offset = end + (-end % 64)
    assert codes


def test_bad_weight_files_are_typed_errors(tmp_path):
    from toolchain.errors import ArtifactError

    (tmp_path / "w.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ArtifactError, match="not a MIL blob storage"):
        milblob.BlobFile(tmp_path / "w.bin")
    (tmp_path / "w.bin").write_bytes(np.array([1, 2], "<u4").tobytes() + b"\0" * 120)
    with pytest.raises(ArtifactError, match="invalid blob metadata"):
        milblob.BlobFile(tmp_path / "w.bin").read(64)
    (tmp_path / "m.mlpackage").mkdir()
    with pytest.raises(ArtifactError, match="not a readable .mlpackage"):
        loader.load(tmp_path / "m.mlpackage")
    (tmp_path / "m.mlmodel").write_bytes(b"\xff\xff\xff")
    with pytest.raises(ArtifactError, match="m.mlmodel is not a readable Core ML model spec"):
        loader.load(tmp_path / "m.mlmodel")


def test_private_protos_then_coremltools_parse_identically(artifacts):
    """In a fresh process: the private protobuf modules first, then ``import coremltools`` (its proto modules
    register the same files again) still works and parses the same bytes to the same message."""
    path = _path(artifacts, "mlprogram_fp16")
    code = textwrap.dedent(f"""
        import sys
        from toolchain.runtimes.coreml import loader
        spec, compile_plan, _ = loader.load({str(path)!r})
        compile_plan()
        assert "coremltools" not in sys.modules and "torch" not in sys.modules
        import coremltools as ct
        from coremltools.proto import Model_pb2
        theirs = ct.utils.load_spec({str(path)!r})
        assert isinstance(theirs, Model_pb2.Model)
        assert theirs.SerializeToString(deterministic=True) == spec.SerializeToString(deterministic=True)
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


def test_evaluate_of_a_coreml_artifact_imports_neither_coremltools_nor_torch(artifacts, tmp_path):
    """The whole ``deploy evaluate`` of an ML Program and of a NeuralNetwork artifact, in a fresh process."""
    from PIL import Image

    from toolchain.data.layouts import scan
    from toolchain.data.splits import make_protocol, save_protocol

    data = tmp_path / "eyes"
    rng = np.random.default_rng(1)
    for s in range(3):
        (data / f"s{s}").mkdir(parents=True)
        for k in range(2):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "RGB").save(data / f"s{s}" / f"{k}.png")
    protocol = save_protocol(make_protocol(scan(data).samples, root=data), tmp_path / "protocol.json")
    for label in ("mlprogram_fp16", "nn_spec3_fp32"):
        folder = _path(artifacts, label).parent
        code = textwrap.dedent(f"""
            import json, sys
            sys.argv = ["deploy", "evaluate", {str(folder)!r}, "--data", {str(data)!r}, "--protocol",
                        {str(protocol)!r}, "--out", {str(tmp_path / label)!r}, "--allow-parity-failed"]
            from toolchain.cli import main
            try:
                main()
            except SystemExit as e:
                assert not e.code, e.code
            print(json.dumps({{m: m in sys.modules for m in ("coremltools", "torch")}}))
        """)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads(r.stdout.strip().splitlines()[-1]) == {"coremltools": False, "torch": False}
        doc = json.loads((tmp_path / label / "metrics.json").read_text())
        assert "coreml-ref" in json.dumps(doc)
