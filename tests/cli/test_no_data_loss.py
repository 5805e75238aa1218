"""Nothing the user owns is deleted: every command with --out refuses a folder it did not write (exit 2,
the folder byte for byte as it was), replaces its own outputs, and replaces anything with --force; store
operations never reach outside the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench._results import dumps, fixture
from tests.cli._cli import deploy, snapshot


@pytest.fixture
def victim(tmp_path) -> Path:
    """A user's folder: a thesis and a data set of their own."""
    v = tmp_path / "thesis"
    (v / "chapters").mkdir(parents=True)
    (v / "main.tex").write_text("\\documentclass{article}")
    (v / "chapters" / "results.tex").write_text("EER 2.1 %")
    return v


def _refused(r, victim: Path, before: dict) -> None:
    assert r.code == 2, (r.out, r.err)
    assert "Traceback" not in r.err and "nothing was changed" in r.err and "--force" in r.err
    assert snapshot(victim) == before


def test_data_synth_and_model_init_refuse_a_users_folder(capsys, victim):
    before = snapshot(victim)
    _refused(deploy(capsys, "data", "synth", "--out", victim, "--subjects", "2", "--images-per-subject", "1",
                    "--size", "32"), victim, before)
    _refused(deploy(capsys, "model", "init", "tiny_ocular", "--out", victim), victim, before)


def test_own_outputs_are_replaced_other_kinds_and_files_refused(capsys, tmp_path):
    synth = tmp_path / "synth"
    args = ["data", "synth", "--out", synth, "--subjects", "2", "--images-per-subject", "1", "--size", "32"]
    assert deploy(capsys, *args).code == 0
    first = snapshot(synth)
    assert deploy(capsys, *args, "--seed", "1").code == 0  # its own output: replaced
    assert snapshot(synth) != first and (synth / ".toolchain-output.json").is_file()
    r = deploy(capsys, "model", "init", "tiny_ocular", "--out", synth)  # a synth folder is not a bundle
    assert r.code == 2 and "holds a synth written by deploy, not a bundle" in r.err
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    r = deploy(capsys, "model", "init", "tiny_ocular", "--out", f)
    assert r.code == 2 and "exists and is not a folder" in r.err and f.read_text() == "mine"


def test_force_replaces_and_says_so_in_help(capsys, victim):
    r = deploy(capsys, "data", "synth", "--help")
    assert "--force" in r.out
    r = deploy(capsys, "data", "synth", "--out", victim, "--subjects", "2", "--images-per-subject", "1", "--size",
               "32", "--force")
    assert r.code == 0, r.err
    assert not (victim / "main.tex").exists() and (victim / "synth.json").is_file()


def test_prune_train_distill_evaluate_split_report_plan_refuse(capsys, tmp_path, victim, tiny_bundle):
    before = snapshot(victim)
    data = tmp_path / "data"
    assert deploy(capsys, "data", "synth", "--out", data, "--subjects", "6", "--images-per-subject", "2",
                  "--size", "32").code == 0
    cases = [
        ["prune", tiny_bundle, "--out", victim, "--ratio", "2"],
        ["train", "tiny_ocular", "--data", data, "--out", victim, "--epochs", "1"],
        ["distill", "--teacher", tiny_bundle, "--student", "tiny_ocular", "--data", data, "--out", victim,
         "--epochs", "1"],
        ["data", "split", data, "--out", victim],
        ["report", "--results", tmp_path / "no-results", "--out", victim],
        ["evaluate", tiny_bundle, "--data", data, "--protocol", tmp_path / "p.json", "--out", victim],
    ]
    for args in cases:
        _refused(deploy(capsys, *args), victim, before)


def test_prune_replaces_its_own_bundle_but_not_a_users(capsys, tmp_path, tiny_bundle):
    run = tmp_path / "run"
    assert deploy(capsys, "prune", tiny_bundle, "--out", run, "--ratio", "2").code == 0
    assert deploy(capsys, "prune", tiny_bundle, "--out", run, "--ratio", "4").code == 0  # its own run folder
    assert json.loads((run / "bundle" / "model.json").read_text())["provenance"]["recipe"]["ratio"] == 4
    users = tmp_path / "users"
    (users / "bundle").mkdir(parents=True)
    (users / "bundle" / "weights.bin").write_bytes(b"precious")
    before = snapshot(users)
    _refused(deploy(capsys, "prune", tiny_bundle, "--out", users, "--ratio", "2"), users, before)


def test_export_refuses_to_replace_a_folder_named_like_its_artifact(capsys, tmp_path, tiny_bundle):
    out = tmp_path / "exports"
    clash = out / "tiny_ocular_onnx_fp32"
    clash.mkdir(parents=True)
    (clash / "mine.txt").write_text("not an artifact")
    before = snapshot(out)
    r = deploy(capsys, "export", tiny_bundle, "--target", "onnx", "--out", out)
    assert r.code == 2 and "artifact folder" in r.err and snapshot(out) == before
    assert deploy(capsys, "export", tiny_bundle, "--target", "onnx", "--out", out, "--force").code == 0
    assert (clash / "manifest.json").is_file() and not (clash / "mine.txt").exists()


def test_results_rm_and_show_stay_inside_the_store(capsys, tmp_path):
    store = tmp_path / "store"
    victim = tmp_path / "victim"
    victim.mkdir()
    r = fixture("ok")
    r["run_id"] = "x"
    target = victim / f"x.{'0' * 64}.json"  # what a "../victim/x" run id would have globbed to
    target.write_bytes(dumps(r))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ok.json").write_bytes(dumps(fixture("ok")))
    assert deploy(capsys, "collect", "dir", tmp_path / "in", "--out", store).code == 0
    for bad in ("../victim/x", str(target), "/etc/passwd", ".hidden", "a/b"):
        for cmd in (["results", "rm", bad, "--store", store], ["results", "show", bad, "--store", store]):
            out = deploy(capsys, *cmd)
            assert out.code == 2 and "is not a run id" in out.err and "Traceback" not in out.err, (cmd, out.err)
    assert target.is_file()
    assert deploy(capsys, "results", "show", fixture("ok")["run_id"], "--store", store).code == 0


def test_a_run_id_with_a_leading_dot_is_rejected_not_hidden(capsys, tmp_path):
    r = fixture("ok")
    r["run_id"] = ".sneaky"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "r.json").write_bytes(dumps(r))
    out = deploy(capsys, "collect", "dir", tmp_path / "in", "--out", tmp_path / "store")
    assert out.code != 0 and "run_id" in out.err
    assert not list((tmp_path / "store").glob(".sneaky*"))
