"""Closed-set probes: K held-out images of every training identity, written by `deploy data split --closed-set K`
and left out of training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolchain.cli import app
from toolchain.data.closed_set import CLOSED_SET_FILE, hold_out, load_closed_set, training_samples
from toolchain.data.layouts import Dataset, Sample, scan
from toolchain.data.splits import load_splits, write_split_files
from toolchain.errors import DataError


def _ds(counts: dict[str, int]) -> Dataset:
    root = Path("/d")
    return Dataset(root, "per-subject", [Sample(root / s / f"{i}.png", s) for s, n in counts.items() for i in range(n)])


def test_k_probes_per_identity_disjoint_from_the_gallery_and_stable():
    ds = _ds({"a": 5, "b": 4, "c": 2})
    cs = hold_out(ds, ["a", "b", "c"], 2, seed=3)
    assert cs.classes == ["a", "b", "c"]
    per_class = {k: sum(1 for _, c in cs.probes if c == k) for k in range(3)}
    assert per_class == {0: 2, 1: 2, 2: 0}  # c has only 2 images: it keeps both for training
    assert cs.identities_without_probes == 1
    probes = {p for p, _ in cs.probes}
    assert not probes & {p for p, _ in cs.gallery} and len(probes) + len(cs.gallery) == 11
    # adding another identity moves no probe of the others; another seed picks other probes
    more = hold_out(_ds({"a": 5, "b": 4, "c": 2, "d": 6}), ["a", "b", "c", "d"], 2, seed=3)
    assert probes <= {p for p, _ in more.probes}
    assert {p for p, _ in hold_out(ds, ["a", "b", "c"], 2, seed=4).probes} != probes
    # only the training subjects take part
    assert hold_out(ds, ["a", "b"], 1).classes == ["a", "b"]


def test_nothing_to_hold_out_is_an_error():
    with pytest.raises(DataError, match="no training identity has more than 3"):
        hold_out(_ds({"a": 3, "b": 2}), ["a", "b"], 3)
    with pytest.raises(DataError, match="at least 1"):
        hold_out(_ds({"a": 3, "b": 2}), ["a", "b"], 0)


def test_split_writes_the_closed_set_and_training_leaves_it_out(synth_small, tmp_path):
    ds = scan(synth_small)
    written = write_split_files(ds, tmp_path / "s", closed_set=1, fractions=(0.5, 0.25, 0.25))
    cs = load_closed_set(written["closed_set"], synth_small)
    assignment = load_splits(written["splits"])
    train = sorted(s for s, k in assignment.items() if k == "train")
    assert cs.classes == train and len(cs.probes) == len(train)
    assert json.loads(written["splits"].read_text())["closed_set"]["file"] == CLOSED_SET_FILE
    assert all(p.is_file() for p in cs.paths(cs.probes))
    kept, held = training_samples(ds, train, written["splits"])
    assert held == len(train) and len(kept) == len(ds.select(train)) - len(train)
    assert not {ds.relative(s) for s in kept} & {p for p, _ in cs.probes}
    # a splits file without a closed set beside it trains on every image of the train split
    assert training_samples(ds, train, None) == (ds.select(train), 0)
    # a run folder that writes its own protocols gets a copy beside them (what `deploy train` does)
    from toolchain.data.closed_set import copy_closed_set

    (tmp_path / "run").mkdir()
    copied = copy_closed_set(written["splits"], tmp_path / "run")
    assert copied is not None and copied.read_bytes() == written["closed_set"].read_bytes()
    assert copy_closed_set(None, tmp_path / "run") is None
    # a re-split without --closed-set leaves no stale probes behind
    write_split_files(ds, tmp_path / "s", fractions=(0.5, 0.25, 0.25))
    assert not (tmp_path / "s" / CLOSED_SET_FILE).exists()
    assert training_samples(ds, train, written["splits"])[1] == 0


def test_a_corrupt_file_is_refused(tmp_path):
    f = tmp_path / CLOSED_SET_FILE
    f.write_text(json.dumps({"format": "toolchain.closed_set", "format_version": 1, "classes": ["a", "b"],
                             "probes": [["a/0.png", 2]], "gallery": []}))
    with pytest.raises(DataError, match="class index < 2"):
        load_closed_set(f)
    with pytest.raises(DataError, match="does not exist"):
        load_closed_set(tmp_path / "nope.json")


def test_cli_split_closed_set(synth_small, tmp_path):
    run = CliRunner().invoke
    r = run(app, ["data", "split", str(synth_small), "--out", str(tmp_path / "p"), "--closed-set", "2"])
    assert r.exit_code == 0, r.output
    assert "closed set:" in r.output and (tmp_path / "p" / CLOSED_SET_FILE).is_file()
    r = run(app, ["data", "split", str(synth_small), "--out", str(tmp_path / "q"), "--closed-set", "4"])
    # a ToolchainError: `deploy` (toolchain.cli.main) prints it as one line and exits 2
    assert isinstance(r.exception, DataError) and "no training identity has more than 4" in str(r.exception)
    assert not (tmp_path / "q" / CLOSED_SET_FILE).exists()


def test_docstring_examples_hold():
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module("toolchain.data.closed_set"))
    assert result.attempted > 0 and result.failed == 0
