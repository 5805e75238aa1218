"""Hostile pipeline files (issue 29, second round): `--dry-run` checks every value's type and range and every path
it names; a refused real run leaves no work folder; deep nesting and a full disk are one clean line."""

from __future__ import annotations

import errno
import shutil
from importlib import resources
from pathlib import Path

import pytest

from tests.cli._cli import deploy
from tests.cli._hostile import run_refused


def _base(tmp_path: Path) -> str:
    text = (resources.files("toolchain.pipeline") / "demo_quick.toml").read_text()
    return text.replace('work_dir = "runs/demo-quick"', f'work_dir = "{tmp_path / "work"}"')


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "pipeline.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("old, new, needles", [
    ("iterations = 20", "iterations = 18446744073709551616", ("[bench] iterations",)),
    ("lr = 0.1", "lr = inf", ("[teacher] lr", "finite")),
    ("lr = 0.1", "lr = 0.1\nweight_decay = nan", ("[teacher] weight_decay", "finite")),
    ("epochs = 40", "epochs = 40\ninput_size = 100000", ("[teacher] input_size", "maximum")),
    ("subjects = 20", "subjects = 1000000000", ("subjects",)),
    ("size = 64 }", "size = 1000000 }", ("size",)),
    ("ratio = 8 }", "ratio = inf }", ("ratio",)),
    ('student = "tiny_ocular"', 'student = "no/such/bundle"', ("student",)),
    ('name = "layer-magnitude-8x"', f'name = "{"x" * 300}"', ("300 characters",)),
    ("seed = 0", "seed = -1", ("[pipeline] seed",)),
])
def test_dry_run_checks_every_value(capsys, tmp_path, old, new, needles):
    base = _base(tmp_path)
    assert old in base
    cfg = _write(tmp_path, base.replace(old, new, 1))
    run_refused(capsys, tmp_path, "pipeline", "run", cfg, "--dry-run", needles=needles, seconds=30)
    assert not (tmp_path / "work").exists()


def test_the_unchanged_file_passes_dry_run(capsys, tmp_path):
    """The check above can pass: the base file itself is accepted."""
    r = deploy(capsys, "pipeline", "run", _write(tmp_path, _base(tmp_path)), "--dry-run")
    assert r.code == 0, r.err


@pytest.mark.parametrize("old, new", [
    ("lr = 0.1", "lr = inf"),
    ('name = "layer-magnitude-8x"', f'name = "{"y" * 300}"'),
])
def test_a_refused_real_run_leaves_no_work_folder(capsys, tmp_path, old, new):
    cfg = _write(tmp_path, _base(tmp_path).replace(old, new, 1))
    run_refused(capsys, tmp_path, "pipeline", "run", cfg, seconds=30)
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("depth", [3000, 5000])
def test_deeply_nested_toml_is_one_clean_line(capsys, tmp_path, depth):
    cfg = _write(tmp_path, _base(tmp_path) + "\n[report]\nx = " + "[" * depth + "]" * depth + "\n")
    run_refused(capsys, tmp_path, "pipeline", "run", cfg, "--dry-run", needles=("nested too deep",), seconds=30)


def test_full_disk_while_copying_is_one_line(capsys, tmp_path, monkeypatch):
    from toolchain.models.bundle import init_bundle

    bundle = init_bundle("tiny_ocular", tmp_path / "teacher", seed=0, input_size=32)
    cfg = _write(tmp_path, f'[pipeline]\nwork_dir = "{tmp_path / "work"}"\n[teacher]\nmodel = "{bundle}"\nepochs = 0\n'
                 '[export]\ntargets = ["onnx"]\ndevices = []\n[bench]\nformats = []\n[plan]\ndevices = []\n')

    def full(src, dst, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", dst)

    monkeypatch.setattr(shutil, "copyfile", full)  # what copytree's copy2 calls for each file
    r = deploy(capsys, "pipeline", "run", cfg, "--only", "train")
    assert r.code == 2 and "Traceback" not in r.err
    line = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "No space left on device" in line[0] and "[(" not in line[0], r.err
