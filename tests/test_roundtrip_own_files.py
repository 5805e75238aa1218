"""Everything the tool writes, it can read back (issue 29): each file kind through its own reader, failed cases
(NaN/Inf numbers) included. A NaN literal in a written file once made `bench host` say "NaN is not a JSON
number" about the tool's own manifest instead of "parity failed"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli._cli import deploy
from tests.cli._hostile import refused
from toolchain import jsonio


def _no_literals(path: Path) -> None:
    """The tool's own strict reader refuses NaN/Infinity literals (and any other non-JSON)."""
    jsonio.read(path)


def test_dumps_never_writes_nan_or_inf():
    text = jsonio.dumps({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}, "e": 2.5})
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": {"d": None}, "e": 2.5}
    assert jsonio.finite({"x": [float("nan")]})[1] == ["x/0"]


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory) -> Path:
    from toolchain.export.base import ExportRequest, export_bundle
    from toolchain.models.bundle import init_bundle

    root = tmp_path_factory.mktemp("rt")
    bundle = init_bundle("tiny_ocular", root / "bundle", seed=0, input_size=32)
    (out,) = export_bundle(ExportRequest(bundle_dir=bundle, target="onnx", out=root / "exports"))
    return out.folder


def test_failed_parity_manifest_reads_back_and_says_parity_failed(capsys, tmp_path, onnx_artifact):
    import shutil

    from toolchain.artifact import manifest as manifest_mod
    from toolchain.artifact.manifest import ParityResult

    art = tmp_path / "art"
    shutil.copytree(onnx_artifact, art)
    man = manifest_mod.read(art)
    failed = ParityResult("failed", "onnxruntime", max_abs=float("nan"), cosine_min=float("nan"),
                          min_cosine_required=0.9999, samples=4, mismatches=["sample 0: cosine nan < 0.9999"])
    man.parity = failed
    man.parity_by_runtime = {"onnxruntime": failed}
    manifest_mod.write(art, man)
    _no_literals(art / "manifest.json")
    back = manifest_mod.read(art)
    assert back.parity.status == "failed" and back.parity.cosine_min is None
    assert "not a finite number" in back.parity.reason
    r = deploy(capsys, "bench", "host", art, "--warmup", "0", "--iterations", "1", "--out", tmp_path / "store")
    refused(r, "parity")
    assert "NaN" not in r.err


def test_every_written_file_kind_reads_back(capsys, tmp_path, onnx_artifact):
    """Bundle, synthetic data set, splits and protocols, manifest, results, plan, report: each written by the
    CLI, each read by the tool's own reader (or jsonio's strict one)."""
    from toolchain.bench.schema import validate_plan
    from toolchain.bench.store import ResultStore
    from toolchain.data.splits import load_protocol, load_splits
    from toolchain.artifact import manifest as manifest_mod
    from toolchain.models.bundle import load_bundle, read_meta

    assert deploy(capsys, "data", "synth", "--out", tmp_path / "d", "--subjects", "6", "--images-per-subject", "3",
                  "--size", "32").code == 0
    assert deploy(capsys, "data", "split", tmp_path / "d", "--out", tmp_path / "sp", "--fractions",
                  "0.34,0.33,0.33", "--no-check-images").code == 0
    assert deploy(capsys, "model", "init", "tiny_ocular", "--out", tmp_path / "b", "--input-size", "32").code == 0
    assert deploy(capsys, "bench", "host", onnx_artifact, "--warmup", "0", "--iterations", "2", "--threads", "1",
                  "--out", tmp_path / "store").code == 0
    # the Android app runs TFLite: a plan of an ONNX artifact is refused, so the plan comes from a TFLite export
    assert deploy(capsys, "export", tmp_path / "b", "--target", "tflite", "--out", tmp_path / "exp").code == 0
    (tflite,) = [p for p in (tmp_path / "exp").iterdir() if p.is_dir()]
    assert deploy(capsys, "bench", "plan", tflite, "--device", "android", "--out", tmp_path / "plan").code == 0
    assert deploy(capsys, "report", "--results", tmp_path / "store", "--artifacts", onnx_artifact.parent,
                  "--out", tmp_path / "report", "--no-plots").code == 0
    for p in sorted(tmp_path.rglob("*.json")):
        _no_literals(p)
    read_meta(tmp_path / "b")
    load_bundle(tmp_path / "b")
    load_splits(tmp_path / "sp" / "splits.json")
    for name in ("protocol-val.json", "protocol-test.json"):
        load_protocol(tmp_path / "sp" / name)
    manifest_mod.read(onnx_artifact)
    results, problems = ResultStore(tmp_path / "store").load_all()
    assert results and not problems
    validate_plan(jsonio.read(tmp_path / "plan" / "plan.json"))


def test_bundle_with_nan_in_provenance_reads_back(tmp_path):
    from toolchain.models.bundle import init_bundle, read_meta, save_bundle, load_bundle

    b = load_bundle(init_bundle("tiny_ocular", tmp_path / "a", seed=0, input_size=32))
    meta = dict(b.meta)
    meta["provenance"] = {**meta["provenance"], "metrics": {"eer": float("nan"), "tar": float("inf")}}
    path = save_bundle(b.model, meta, tmp_path / "b")
    _no_literals(path / "model.json")
    back = read_meta(path)
    assert back["provenance"]["metrics"] == {"eer": None, "tar": None}
