"""`deploy prune|distill|measure` end to end on a tiny model and synthetic data; pruned bundles export."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from toolchain.cli import app
from toolchain.compress.config import METHODS, STRUCTURED
from toolchain.compress.pruning.masks import compression_ratio
from toolchain.errors import CompressionError
from toolchain.models.bundle import load_bundle

#: CLI options of each structured method; the methods themselves come from the registry (a test below checks).
STRUCTURED_ARGS = {"channel": ["--ratio", "2", "--importance", "l2"], "depth": ["--remove-block", "layer2.0"],
                   "width-multiplier": ["--multiplier", "0.5"]}
FAST = ["--finetune-epochs", "1", "--batch-size", "8", "--device", "cpu", "--augment", "none"]


def deploy(*args: str) -> str:
    res = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bundle, synth_data):
    """One pruned bundle per registered method (module-scoped: each is reused by the export tests)."""
    root = tmp_path_factory.mktemp("prune")
    out = {}
    for method in [*METHODS.names(), *STRUCTURED.names()]:
        extra = STRUCTURED_ARGS.get(method, ["--ratio", "8"])
        deploy("prune", tiny_bundle, "--method", method, *extra, "--data", synth_data, *FAST, "--out", root / method)
        out[method] = root / method / "bundle"
    return out


@pytest.mark.parametrize("method", METHODS.names())
def test_unstructured_prune_from_cli(runs, method):
    b = load_bundle(runs[method])
    # Fine-tuning can leave a BatchNorm bias at exactly 0 (a channel whose outgoing weights were all
    # pruned gets no gradient), so the reached ratio may lie a little above the target, never below.
    assert 8.0 * 0.995 <= compression_ratio(b.model) <= 8.0 * 1.02
    prov = b.meta["provenance"]
    assert prov["recipe"]["method"] == method and prov["recipe"]["finetune_epochs"] == 1
    assert prov["compression"]["sparsity"] == pytest.approx(0.875, abs=0.005)
    assert prov["compression"]["ratio_reached"] == pytest.approx(compression_ratio(b.model))
    assert prov["training"]["history"] and prov["parent_sha256"]
    assert (runs[method].parent / "protocol-test.json").is_file()


def test_every_structured_method_is_exercised():
    assert sorted(STRUCTURED_ARGS) == STRUCTURED.names()


@pytest.mark.parametrize("method", STRUCTURED.names())
def test_structured_prune_from_cli_shrinks(runs, tiny_bundle, method):
    b = load_bundle(runs[method])
    before = sum(p.numel() for p in load_bundle(tiny_bundle).model.trunk.parameters())
    after = sum(p.numel() for p in b.model.trunk.parameters())
    assert after < before * (0.6 if method != "depth" else 0.95)
    with torch.no_grad():
        assert b.model(torch.randn(1, 3, 64, 64)).shape == (1, b.feature_dim)
    assert b.meta["provenance"]["compression"]["parameters_after"] == after


@pytest.mark.parametrize("method", ["layer-magnitude", *STRUCTURED.names()])
@pytest.mark.parametrize("target", ["onnx", "coreml", "tflite"])
def test_pruned_bundles_export_with_parity(runs, tmp_path, method, target):
    from toolchain.export.base import ExportRequest, export_bundle

    compress = "sparse" if target == "coreml" and method == "layer-magnitude" else None
    (o,) = export_bundle(ExportRequest(runs[method], target, tmp_path, compress=compress))
    assert o.manifest.parity.status in ("passed",), o.manifest.parity
    if compress:
        assert o.manifest.compress == "sparse" and o.folder.name.endswith("_sparse")


def test_sparse_core_ml_storage_shrinks_a_pruned_bundle(runs, tmp_path):
    from toolchain.export.base import ExportRequest, export_bundle

    (dense,) = export_bundle(ExportRequest(runs["global-magnitude"], "coreml", tmp_path / "d", devices=["iphonexr"]))
    (sparse,) = export_bundle(ExportRequest(runs["global-magnitude"], "coreml", tmp_path / "s", devices=["iphonexr"],
                                            compress="sparse"))
    assert sparse.manifest.parity.status == "passed"
    assert sparse.manifest.size_bytes < 0.6 * dense.manifest.size_bytes  # 87.5 % zeros, stored sparsely


def test_distill_then_prune_to_distill(runs, tiny_bundle, synth_data, tmp_path):
    teacher = runs["layer-magnitude"]  # fine-tuned: has a head for the data's training classes
    deploy("distill", "--teacher", teacher, "--student", "tiny_ocular", "--student-width", "0.5", "--data", synth_data,
           "--out", tmp_path / "kd", "--epochs", "1", "--batch-size", "8", "--device", "cpu")
    s = load_bundle(tmp_path / "kd" / "bundle")
    assert s.feature_dim == 32 and s.meta["provenance"]["recipe"]["teacher_sha256"] == load_bundle(teacher).sha256
    assert {"loss_kd_hinton", "loss_kd_feature-cosine"} <= set(s.meta["provenance"]["training"]["history"][0])
    # prune -> distill: the pruned bundle is the student and keeps its zeros.
    deploy("distill", "--teacher", teacher, "--student", runs["global-magnitude"], "--loss", "feature-mse",
           "--data", synth_data, "--out", tmp_path / "pkd", "--epochs", "1", "--batch-size", "8", "--device", "cpu")
    p = load_bundle(tmp_path / "pkd" / "bundle")
    assert compression_ratio(p.model) >= 8.0 * 0.995


def test_measure_cli_reports_json(runs, tiny_bundle):
    out = deploy("measure", runs["global-magnitude"], "--reference", tiny_bundle, "--json")
    m = json.loads(out)
    assert m["compression_ratio"] == pytest.approx(8.0, rel=0.01) and m["gzip_bytes"] < m["dense_bytes"]
    # ShrinkBench's count adds the (dense) classification head to both sides: a lower ratio
    b = load_bundle(runs["global-magnitude"])
    head = sum(p.numel() for p in b.model.head.parameters())
    assert m["compression_deployed"] == m["compression_ratio"]
    assert m["shrinkbench_parameters"] == m["parameters"] + head
    # the reference (a fresh card bundle) has no head: its whole model is its trunk
    assert m["reference"]["shrinkbench_parameters"] == m["reference"]["parameters"]
    assert m["compression_shrinkbench"] == pytest.approx(
        m["reference"]["parameters"] / m["shrinkbench_nonzero_parameters"], rel=1e-3)
    assert 1.0 < m["compression_shrinkbench"] < m["compression_deployed"]
    text = deploy("measure", runs["global-magnitude"])
    assert "compression_deployed" in text and "compression_shrinkbench" in text


def test_user_errors_are_typed(tiny_bundle, tmp_path):
    with pytest.raises(CompressionError, match="--data"):
        deploy("prune", tiny_bundle, "--method", "global-gradient", "--out", tmp_path / "x")
    with pytest.raises(CompressionError, match="unknown pruning method"):
        deploy("prune", tiny_bundle, "--method", "magic", "--out", tmp_path / "x")
    assert not (tmp_path / "x" / "bundle").exists()


def test_options_a_method_ignores_warn_in_one_line(tiny_bundle, tmp_path):
    res = CliRunner().invoke(app, ["prune", str(tiny_bundle), "--method", "depth", "--remove-block", "layer2.0",
                                   "--ratio-of", "shrinkbench", "--gradient-mode", "eval", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert "--ratio-of and --gradient-mode have no effect with --method depth" in line
    res = CliRunner().invoke(app, ["prune", str(tiny_bundle), "--method", "layer-magnitude", "--ratio", "2",
                                   "--ratio-of", "shrinkbench", "--gradient-mode", "eval", "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert "warning: --gradient-mode has no effect with --method layer-magnitude" in res.stderr
    assert "--ratio-of" not in res.stderr  # unstructured methods read it
    res = CliRunner().invoke(app, ["prune", str(tiny_bundle), "--method", "width-multiplier", "--out", str(tmp_path / "w")])
    assert res.exit_code == 0, res.output
    assert "warning" not in res.stderr  # defaults: nothing to warn about
