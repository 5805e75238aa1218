"""Careless arguments get one clear line and exit 2, never a traceback: outputs that cannot be written,
out-of-range numbers, absurd sizes."""

from __future__ import annotations

import pytest

from tests.cli._cli import deploy


@pytest.fixture
def afile(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    return f


def _cases(tmp_path, afile, bundle):
    through_file = afile / "out"
    return {
        "synth through a file": ["data", "synth", "--out", through_file, "--subjects", "1", "--images-per-subject",
                                 "1", "--size", "32"],
        "synth under /proc": ["data", "synth", "--out", "/proc/toolchain-test/x", "--subjects", "1",
                              "--images-per-subject", "1", "--size", "32"],
        "model init through a file": ["model", "init", "tiny_ocular", "--out", through_file],
        "prune through a file": ["prune", bundle, "--out", through_file, "--ratio", "2"],
        "export through a file": ["export", bundle, "--target", "onnx", "--out", through_file],
        "collect into a file": ["collect", "dir", tmp_path, "--out", afile],
        "report into a file": ["report", "--results", tmp_path, "--out", afile],
        "split through a file": ["data", "split", tmp_path, "--out", through_file],
        "workers -1": ["train", "tiny_ocular", "--data", tmp_path, "--out", tmp_path / "r", "--workers", "-1"],
        "synth size 100000": ["data", "synth", "--out", tmp_path / "s", "--size", "100000"],
        "input size 99999": ["model", "init", "tiny_ocular", "--out", tmp_path / "b", "--input-size", "99999"],
        "batch size 0": ["prune", bundle, "--out", tmp_path / "p", "--batch-size", "0"],
        "epochs 0 distill": ["distill", "--teacher", bundle, "--student", "tiny_ocular", "--data", tmp_path,
                             "--out", tmp_path / "d", "--epochs", "0"],
    }


def test_bad_arguments_are_one_line_exit_2(capsys, tmp_path, afile, tiny_bundle):
    failures = []
    for name, args in _cases(tmp_path, afile, tiny_bundle).items():
        r = deploy(capsys, *args)
        if r.code != 2 or "Traceback" in r.err:
            failures.append(f"{name}: exit {r.code}: {r.err[-300:]}")
    assert not failures, "\n".join(failures)
    assert afile.read_text() == "mine"
