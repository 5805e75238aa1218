"""Host runner: real ONNX Runtime / LiteRT / PyTorch timing of a tiny exported bundle, results v1 out."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from toolchain.bench.host import TimingProtocol, bench_host, resolve_target, run_target
from toolchain.bench.schema import load_result, validate_result
from toolchain.errors import ArtifactError, ManifestError, RuntimeUnavailable, ToolchainError
from toolchain.fsutil import sha256_file
from toolchain.runtimes import RUNTIMES, get_runtime

PROTO = TimingProtocol(warmup=1, iterations=5, threads=1)


@pytest.fixture(scope="module")
def exported(tiny_bundle, tmp_path_factory):
    from toolchain.export.base import ExportRequest, export_bundle

    out = tmp_path_factory.mktemp("artifacts")
    folders = {"pytorch": tiny_bundle}
    for target in ("onnx", "tflite"):
        folders[target] = export_bundle(ExportRequest(bundle_dir=tiny_bundle, target=target, out=out))[0].folder
    return folders


def _cos(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "pytorch"])
def test_run_writes_a_valid_result_with_raw_samples_and_reference_numerics(exported, fmt):
    target = resolve_target(exported[fmt])
    run = run_target(target, PROTO)
    r = run.result
    validate_result(r, fmt)
    assert r["status"] == "ok" and r["error"] is None
    assert r["artifact"]["format"] == fmt and r["runtime"]["threads"] == 1
    assert len(r["latency_ns"]) == 5 and all(isinstance(v, int) and v > 0 for v in r["latency_ns"])
    assert r["load_ns"] > 0 and r["first_inference_ns"] > 0
    assert r["device"]["platform"] == ("macos" if sys.platform == "darwin" else "linux")
    assert r["device"]["cores"] >= 1
    # The same fixed input as the export's reference: features agree with PyTorch's.
    man = json.loads((exported["onnx"] / "manifest.json").read_text())
    ref = man["reference_features"]["sample"]
    assert r["feature_dim"] == man["output"]["dim"]
    assert _cos(r["feature_sample"], ref) > 0.9999
    assert np.allclose(r["feature_sample"], ref, atol=1e-3)


def test_artifact_hash_and_input_source_come_from_the_manifest(exported):
    man = json.loads((exported["tflite"] / "manifest.json").read_text())
    t = resolve_target(exported["tflite"])
    assert t.sha256 == man["sha256"] and t.input_source == "image" and t.size_bytes == man["size_bytes"]
    b = resolve_target(exported["pytorch"])
    assert b.format == "pytorch" and b.input_source == "random" and b.input_seed == 1234


def test_bench_host_stores_files_that_load_back(exported, tmp_path):
    outcomes = bench_host([exported["onnx"], exported["tflite"]], PROTO, tmp_path / "results")
    assert [o.stored.status for o in outcomes] == ["stored", "stored"]
    runtimes = sorted(load_result(o.stored.path)["runtime"]["name"] for o in outcomes)
    assert runtimes == ["litert", "onnxruntime"]


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on macOS; this checks the message elsewhere")
def test_coreml_needs_macos_and_other_targets_still_run(exported, tmp_path):
    art = tmp_path / "cm"
    art.mkdir()
    man = json.loads((exported["onnx"] / "manifest.json").read_text())
    (art / "m.mlmodel").write_bytes(b"not really")
    (art / "fixed_input.png").write_bytes((exported["onnx"] / "fixed_input.png").read_bytes())
    man.update(format="coreml", file="m.mlmodel", name="cm", sha256=sha256_file(art / "m.mlmodel"))
    (art / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(RuntimeUnavailable, match="need macOS"):
        run_target(resolve_target(art), PROTO)
    outcomes = bench_host([art, exported["onnx"]], PROTO, tmp_path / "results")
    assert "need macOS" in outcomes[0].skipped and outcomes[0].error is None and outcomes[0].run is None
    assert outcomes[1].stored.status == "stored"
    from typer.testing import CliRunner

    from toolchain.cli import app

    # the CLI: one line for the skipped artifact, the rest timed, exit 0 (the README's `bench host exports/*`)
    res = CliRunner().invoke(app, ["bench", "host", str(art), str(exported["onnx"]), "--warmup", "0", "--iterations",
                                   "2", "--out", str(tmp_path / "r2")])
    assert res.exit_code == 0, res.output
    skipped = [ln for ln in res.output.splitlines() if ln.startswith("skipped")]
    assert len(skipped) == 1 and skipped[0].startswith("skipped cm: Core ML artifacts need macOS"), res.output
    only_coreml = CliRunner().invoke(app, ["bench", "host", str(art), "--out", str(tmp_path / "r3")])
    assert only_coreml.exit_code == 2 and "nothing could be timed" in only_coreml.output


def test_every_registered_runtime_is_covered():
    """Timed above: onnxruntime, litert, pytorch; Apple's Core ML by the macOS test; coreml-ref never times."""
    assert RUNTIMES.names() == ["coreml", "coreml-ref", "litert", "onnxruntime", "pytorch"]
    timing = {n: get_runtime(n).formats for n in RUNTIMES if get_runtime(n).timing}
    assert timing == {"coreml": ("coreml",), "litert": ("tflite",), "onnxruntime": ("onnx",),
                      "pytorch": ("pytorch",)}


def test_not_an_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(ToolchainError, match="neither an exported artifact"):
        resolve_target(tmp_path)


@pytest.mark.parametrize("fail_at,status", [(0, "error"), (3, "partial")])
def test_a_failing_runtime_still_writes_a_valid_result(exported, monkeypatch, fail_at, status):
    calls = {"n": 0}

    class Flaky:
        runtime = {"name": "onnxruntime", "version": "x", "compute_units": "cpu", "delegate": None, "threads": 1}
        description, output_name = "flaky", None

        def prepare(self, pixels):
            return self.infer

        def infer(self):
            calls["n"] += 1
            # call 1 is the first inference, 2 the warmup, then the timed runs
            if fail_at == 0 or calls["n"] > 2 + fail_at:
                raise RuntimeError("device lost")
            return np.ones((1, 4), np.float32)

    monkeypatch.setattr(type(get_runtime("onnxruntime")), "open", lambda self, model, threads=None: Flaky())
    r = run_target(resolve_target(exported["onnx"]), PROTO).result
    validate_result(r, "flaky")
    assert r["status"] == status and "device lost" in r["error"]
    assert len(r["latency_ns"]) == fail_at


def test_bad_protocol_is_refused():
    with pytest.raises(ToolchainError, match="iterations >= 1"):
        TimingProtocol(iterations=0)


def test_cli_bench_host(exported, tmp_path):
    from typer.testing import CliRunner

    from toolchain.cli import app

    res = CliRunner().invoke(app, ["bench", "host", str(exported["onnx"]), "--warmup", "1", "--iterations", "3",
                                   "--threads", "1", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    files = list((tmp_path / "r").glob("*.json"))
    assert len(files) == 1 and len(load_result(files[0])["latency_ns"]) == 3


# --- every artifact is checked exactly as `deploy bench plan` checks it (issue 11) ----------------


def _copy(folder, tmp_path, name="copy"):
    import shutil

    dest = tmp_path / name
    shutil.copytree(folder, dest)
    return dest


def test_tampered_bytes_are_refused_before_any_timing(exported, tmp_path):
    """Before: the host runner timed the changed file and recorded the manifest's sha256."""
    art = _copy(exported["onnx"], tmp_path)
    man = json.loads((art / "manifest.json").read_text())
    f = art / man["file"]
    f.write_bytes(f.read_bytes() + b"\0")
    with pytest.raises(ManifestError, match="changed after export"):
        resolve_target(art)
    with pytest.raises(ManifestError, match="changed after export"):
        bench_host([art], PROTO, tmp_path / "results")
    assert not list((tmp_path / "results").glob("*.json"))


def test_the_recorded_sha256_is_the_measured_one(exported):
    t = resolve_target(exported["tflite"])
    man = json.loads((exported["tflite"] / "manifest.json").read_text())
    assert t.sha256 == sha256_file(exported["tflite"] / man["file"])
    assert run_target(t, PROTO).result["artifact"]["sha256"] == t.sha256


def test_parity_failed_is_refused_unless_allowed_then_warned(exported, tmp_path):
    """Before: a parity-failed artifact was timed without a word."""
    art = _copy(exported["onnx"], tmp_path)
    man = json.loads((art / "manifest.json").read_text())
    man["parity"].update(status="failed", mismatches=["sample 0: cosine 0.2 < 0.99999"])
    (art / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ArtifactError, match="parity with PyTorch failed"):
        bench_host([art], PROTO, tmp_path / "r1")
    (o,) = bench_host([art], PROTO, tmp_path / "r2", allow_parity_failed=True)
    assert o.stored.status == "stored" and any("FAILED" in w for w in o.warnings)


def test_a_manifest_file_outside_the_folder_is_refused(exported, tmp_path):
    """Before: the host runner followed `file` wherever it pointed."""
    art = _copy(exported["onnx"], tmp_path, "inner")
    man = json.loads((art / "manifest.json").read_text())
    outside = tmp_path / "elsewhere.onnx"
    (art / man["file"]).rename(outside)
    man["file"] = "../elsewhere.onnx"
    (art / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ManifestError, match="outside"):
        resolve_target(art)


def test_cli_refuses_then_allows_with_a_warning(exported, tmp_path):
    from typer.testing import CliRunner

    from toolchain.cli import app

    art = _copy(exported["onnx"], tmp_path)
    man = json.loads((art / "manifest.json").read_text())
    man["parity"].update(status="failed", mismatches=["sample 1: cosine 0.5 < 0.99999"])
    (art / "manifest.json").write_text(json.dumps(man))
    args = ["bench", "host", str(art), "--warmup", "0", "--iterations", "2", "--out", str(tmp_path / "r")]
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code != 0 and isinstance(bad.exception, ArtifactError)
    ok = CliRunner().invoke(app, [*args, "--allow-parity-failed"])
    assert ok.exit_code == 0, ok.output
    assert "warning" in ok.output and "FAILED" in ok.output
