"""The typed manifest: whole-file validation, version-1 migration, containment, the committed JSON Schema."""

from __future__ import annotations

import json

import jsonschema
import pytest

from toolchain.artifact import manifest as M
from toolchain.errors import ManifestError


def _v2(**over) -> dict:
    man = {"manifest_version": 2, "name": "a", "format": "onnx", "file": "a.onnx", "sha256": "0" * 64,
           "input": {"name": "pixels", "shape": ["batch", 3, 8, 8], "dtype": "float32", "layout": "nchw"},
           "output": {"name": "features", "dim": 4}, "parity": {"status": "passed", "reference": "x"},
           "onnx": {"opset": 18}}
    man.update(over)
    return man


def _folder(tmp_path, man: dict, file_name: str = "a.onnx"):
    d = tmp_path / "art"
    d.mkdir(exist_ok=True)
    (d / file_name).write_bytes(b"x")
    (d / "manifest.json").write_text(json.dumps(man))
    return d


def test_committed_json_schema_is_current_and_valid():
    assert M.DOC_PATH.read_text() == M.schema_text(), \
        "docs/manifest-schema.json is stale: run python -m toolchain.artifact.manifest --write"
    jsonschema.Draft202012Validator.check_schema(json.loads(M.DOC_PATH.read_text()))


def test_a_written_manifest_validates_against_the_schema_and_reads_back(tmp_path):
    man = M.parse(_v2(), "test")
    jsonschema.validate(man.to_json(), M.schema_document())
    assert "coreml" not in man.to_json() and man.onnx.opset == 18
    assert M.read(_folder(tmp_path, man.to_json())) == man


def test_every_problem_is_named_at_once(tmp_path):
    bad = _v2(size_bytes="big", devices="iphone6", extra_key=1)
    bad["input"]["layout"] = "hwc"
    bad["parity"]["status"] = "fine"
    with pytest.raises(ManifestError) as e:
        M.read(_folder(tmp_path, bad))
    text = str(e.value)
    assert "5 problems" in text
    for part in ("size_bytes: expected an integer", "devices: expected a list", "unknown key extra_key",
                 "input.layout: 'hwc' is not one of", "parity.status: 'fine'"):
        assert part in text, text


def test_format_facts_cannot_overwrite_top_level_keys():
    """Before: describe()'s **extra was spread over the top level; now a converter's facts live in its block."""
    with pytest.raises(ManifestError, match="unknown key sha256 in onnx"):
        M.parse(_v2(onnx={"opset": 18, "sha256": "f" * 64}), "test")


def test_version_1_manifests_are_migrated():
    v1 = {"name": "c", "format": "coreml", "file": "c.mlmodel", "sha256": "1" * 64, "spec_version": 3, "min_ios": 12,
          "coreml_format": "neuralnetwork", "nn_layers": {"flatten": 1}, "weights": "fp16",
          "apple_runtime": {"status": "skipped", "reason": "needs macOS"}, "int8_mode": None,
          "input": {"name": "pixels", "shape": [3, 8, 8]}, "output": {"name": "features", "dim": 4}}
    man = M.parse(v1, "v1")
    assert man.manifest_version == 2 and man.coreml.spec_version == 3 and man.coreml.nn_layers == {"flatten": 1}
    assert man.parity_by_runtime["coreml"].status == "skipped" and man.tflite is None
    with pytest.raises(ManifestError, match="upgrade the toolchain"):
        M.parse(_v2(manifest_version=3), "future")
    with pytest.raises(ManifestError, match="lacks 'input'"):
        M.parse({k: v for k, v in _v2().items() if k != "input"}, "partial")


@pytest.mark.parametrize("name", ["../a.onnx", "/etc/hostname", "."])
def test_a_file_outside_the_folder_is_refused(tmp_path, name):
    d = _folder(tmp_path, _v2(file=name))
    (tmp_path / "a.onnx").write_bytes(b"outside")
    with pytest.raises(ManifestError, match="outside"):
        M.read(d)


def test_not_a_manifest(tmp_path):
    with pytest.raises(ManifestError, match="no manifest.json"):
        M.read(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        M.read(tmp_path)
    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ManifestError, match="expected a JSON object"):
        M.read(tmp_path)
