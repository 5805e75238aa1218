"""`deploy train` end to end on the tiny set (torchrun with 2 CPU processes: test_distributed.py)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from toolchain.cli import app

ARGS = ["--epochs", "2", "--batch-size", "8", "--input-size", "32", "--device", "cpu"]


def test_deploy_train_writes_a_bundle_with_head_and_provenance(synth_tiny, tmp_path):
    from toolchain.models.bundle import load_bundle

    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "tiny_ocular", "--data", str(synth_tiny), "--out", str(out), *ARGS])
    assert r.exit_code == 0, r.output
    b = load_bundle(out / "bundle")
    assert b.meta["architecture"]["num_classes"] == b.model.head.out_features >= 2
    tr = b.meta["provenance"]["training"]
    assert tr["config"]["epochs"] == 2 and len(tr["history"]) == 2 and tr["best_epoch"] in (1, 2)
    assert b.meta["provenance"]["metrics"]["val_eer"] == tr["best_val_eer"]
    for f in ("splits.json", "protocol-val.json", "protocol-test.json", "checkpoint.json", "checkpoint.safetensors"):
        assert (out / f).is_file(), f
    splits = json.loads((out / "splits.json").read_text())["subjects"]
    test_subjects = {im["subject"] for im in json.loads((out / "protocol-test.json").read_text())["images"]}
    assert test_subjects and all(splits[s] == "test" for s in test_subjects)
    # a second run into the same folder must not overwrite the checkpoint silently
    again = CliRunner().invoke(app, ["train", "tiny_ocular", "--data", str(synth_tiny), "--out", str(out), *ARGS])
    assert again.exit_code != 0 and "--resume" in str(again.exception)
