"""examples/papers/*.toml: each dry-runs without its data folder (a warning, not an error), each dry-runs at
``--scale tiny``, and the cheapest runs its data and teacher stages at tiny scale for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolchain.cli import app

PAPERS = Path(__file__).resolve().parents[2] / "examples" / "papers"
RECIPES = {"almadan2021": 25 + 2, "latif2024": 4, "hong2022": 6}  # [[compress]] recipes in each


@pytest.mark.parametrize("name", list(RECIPES))
def test_dry_run_without_data_shows_the_whole_plan(name, tmp_path):
    from toolchain.pipeline.config import load
    from toolchain.pipeline.stages import build_stages

    cfg = load(PAPERS / f"{name}.toml")
    assert not Path(cfg.data.path).exists()  # the recipe's data folder is not on this machine
    assert len(cfg.compress) == RECIPES[name]
    cfg.pipeline.work_dir = str(tmp_path / "w")
    from toolchain.cli.pipeline import _run

    reports = _run(cfg, True, None, None, False)
    assert {r.status for r in reports} == {"would run"}
    kinds = {r.kind for r in reports}
    assert {"data", "train", "compress", "evaluate", "export", "bench", "plan", "report"} <= kinds
    assert sum(r.kind == "compress" for r in reports) == RECIPES[name]
    with pytest.raises(Exception, match="is not a folder"):  # a real run still needs the data
        build_stages(cfg)


def test_cli_dry_run_warns_and_exits_0():
    r = CliRunner().invoke(app, ["pipeline", "run", str(PAPERS / "almadan2021.toml"), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "does not exist: the plan below is what would run" in r.output
    for method in ("global-magnitude", "layer-magnitude", "global-gradient", "layer-gradient", "random"):
        for ratio in (2, 4, 8, 16, 32):
            assert f"{method}-{ratio}x" in r.output


@pytest.mark.parametrize("name", list(RECIPES))
def test_tiny_scale_keeps_the_recipe_and_shrinks_the_run(name):
    from toolchain.pipeline.config import load

    full, tiny = load(PAPERS / f"{name}.toml"), load(PAPERS / f"{name}.toml", scale="tiny")
    assert tiny.data.path is None and tiny.data.synth.subjects == 12 and tiny.data.synth.size == 64
    assert tiny.teacher.model == full.teacher.model and tiny.teacher.epochs == 1 and tiny.teacher.input_size == 64
    assert [r.name for r in tiny.compress] == [r.name for r in full.compress]
    assert [r.prune for r in tiny.compress] == [r.prune for r in full.compress]
    assert all(r.finetune_epochs <= 1 for r in tiny.compress)
    assert tiny.export.targets == full.export.targets and tiny.pipeline.work_dir.endswith("-tiny")
    assert tiny.export.precisions == ["fp32"]  # one epoch overflows fp16 (scale.py says what was measured)


def test_hong2022_tiny_runs_its_data_and_teacher(tmp_path):
    """The cheapest recipe (MobileNetV1, 64 px) runs for real at tiny scale: synthetic data with closed-set
    probes, one teacher epoch. The whole tiny recipe (6 students, exports for every target) takes minutes on 2
    cores, so CI runs these two stages; `deploy pipeline run examples/papers/hong2022.toml --scale tiny` runs all."""
    from toolchain.cli.pipeline import _run
    from toolchain.pipeline.config import load

    cfg = load(PAPERS / "hong2022.toml", scale="tiny")
    cfg.pipeline.work_dir = str(tmp_path / "w")
    reports = _run(cfg, False, ["data", "teacher"], None, False)
    done = {r.name: r for r in reports if r.status == "ran"}
    assert set(done) == {"data", "teacher"}
    closed = json.loads((done["data"].path / "closed-set.json").read_text())
    assert closed["per_identity"] == 1 and closed["counts"]["probes"] > 0
    meta = json.loads((done["teacher"].path / "bundle" / "model.json").read_text())
    assert meta["architecture"]["name"] == "mobilenet_v1" and meta["input"]["size"][0] == 64
    assert meta["provenance"]["training"]["data"]["closed_set_held_out"] == closed["counts"]["probes"]
    assert (done["teacher"].path / "run" / "closed-set.json").is_file()  # beside the run's own protocols


def test_docstring_examples_hold():
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module("toolchain.pipeline.scale"))
    assert result.attempted > 0 and result.failed == 0
