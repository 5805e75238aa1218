"""Hostile data sets, indexes, regexes, images and export options through the real CLI (issue 29, second round).

Each case once ended in a traceback, a hang, or accepted input that is wrong; now each is a clean refusal
(exit 2, one line) within a time bound, changing nothing outside ``--out`` and leaving no ``--out``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.cli._cli import deploy
from tests.cli._hostile import run_refused, within


def _png(path: Path, size: int = 16, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (value, value // 2, 7)).save(path)
    return path


def _dataset(root: Path, subjects: int = 3, images: int = 2) -> Path:
    for s in range(subjects):
        for i in range(images):
            _png(root / f"s{s:02d}" / f"{i}.png", value=10 * s + i)
    return root


def remove_deep(top: Path) -> None:
    """Remove a one-folder-per-level chain without recursion (shutil.rmtree and pytest's cleanup recurse)."""
    cwd = os.getcwd()
    try:
        os.chdir(top)
        depth = 0
        while os.path.isdir("d"):
            os.chdir("d")
            depth += 1
        for _ in range(depth):
            for name in os.listdir("."):
                os.unlink(name)
            os.chdir("..")
            os.rmdir("d")
    finally:
        os.chdir(cwd)


@pytest.fixture
def deep_tree(tmp_path):
    data = _dataset(tmp_path / "data", subjects=4)
    cwd = os.getcwd()
    os.chdir(data / "s00")  # build 1500 levels relatively (one short name each)
    try:
        for _ in range(1500):
            os.mkdir("d")
            os.chdir("d")
        _png(Path("deep.png").absolute())
    finally:
        os.chdir(cwd)
    yield data
    remove_deep(data / "s00")


def test_deep_folder_is_walked_without_recursion(capsys, deep_tree):
    with within(60):
        r = deploy(capsys, "data", "check", deep_tree)
    assert "Traceback" not in r.err and r.code == 0, r.err[-800:]  # walked, not refused
    assert re.search(r"images\s+9\b", r.out), r.out  # 8 images + the deep one, 1500 folders down


def test_non_utf8_subject_folder_refused(capsys, tmp_path):
    data = _dataset(tmp_path / "data")
    bad = os.path.join(os.fsencode(data), b"subj\xff")
    os.mkdir(bad)
    Image.new("RGB", (16, 16)).save(os.fsdecode(os.path.join(bad, b"0.png")))
    Image.new("RGB", (16, 16), 9).save(os.fsdecode(os.path.join(bad, b"1.png")))
    run_refused(capsys, tmp_path, "data", "split", data, "--out", tmp_path / "sp", "--fractions", "0.34,0.33,0.33",
                needles=("utf-8",), out=tmp_path / "sp")


def _index(data: Path, rows: list[tuple[str, str]]) -> Path:
    p = data / "index.csv"
    p.write_text("path,subject\n" + "".join(f"{a},{b}\n" for a, b in rows))
    return p


def test_csv_field_of_200000_characters_refused(capsys, tmp_path):
    data = _dataset(tmp_path / "data")
    _index(data, [("s00/0.png", "a" * 200_000), ("s01/0.png", "b")])
    run_refused(capsys, tmp_path, "data", "check", data, needles=("index.csv", "line 2"))


def test_csv_listing_one_image_five_times_refused(capsys, tmp_path):
    data = _dataset(tmp_path / "data")
    _index(data, [("s00/0.png", "a")] * 5 + [("s01/0.png", "b"), ("s01/1.png", "b"), ("s02/0.png", "c")])
    run_refused(capsys, tmp_path, "data", "split", data, "--out", tmp_path / "sp", needles=("5 times",),
                out=tmp_path / "sp")


def test_csv_of_20000_rows_naming_6_images_is_refused_fast(capsys, tmp_path):
    data = _dataset(tmp_path / "data", subjects=3, images=2)
    names = [f"s{s:02d}/{i}.png" for s in range(3) for i in range(2)]
    _index(data, [(names[k % 6], f"s{k % 6 // 2}") for k in range(20_000)])
    run_refused(capsys, tmp_path, "data", "split", data, "--out", tmp_path / "sp", needles=("more than once",),
                out=tmp_path / "sp", seconds=20)


def test_catastrophic_subject_regex_is_stopped(capsys, tmp_path):
    data = tmp_path / "data"
    for s in range(2):
        _png(data / f"s{s}" / ("a" * 40 + ".png"), value=s)
    run_refused(capsys, tmp_path, "data", "check", data, "--subject-regex", r"(?P<subject>(a|aa)+)$",
                needles=("backtracking",), seconds=20)


def test_synth_negative_seed_refused(capsys, tmp_path):
    run_refused(capsys, tmp_path, "data", "synth", "--out", tmp_path / "s", "--seed", "-1", "--subjects", "2",
                "--size", "32", needles=("seed", "[0, 4294967295]"), out=tmp_path / "s")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from toolchain.models.bundle import init_bundle

    return init_bundle("tiny_ocular", tmp_path_factory.mktemp("hb") / "bundle", seed=0, input_size=32)


def test_decompression_bomb_calibration_image_refused(capsys, tmp_path, bundle):
    calib = tmp_path / "calib"
    calib.mkdir()
    Image.new("1", (9000, 9000)).save(calib / "bomb.png")  # 81 Mpx declared, a few kB on disk
    run_refused(capsys, tmp_path, "export", bundle, "--target", "onnx", "--out", tmp_path / "exp",
                "--calibration", calib, needles=("bomb.png", "pixel"), seconds=60)


@pytest.mark.parametrize("value", ["-1", "0", "2", "nan", "inf"])
def test_min_cosine_out_of_range_refused_before_conversion(capsys, tmp_path, bundle, value):
    run_refused(capsys, tmp_path, "export", bundle, "--target", "onnx", "--out", tmp_path / "exp",
                "--min-cosine", value, needles=("--min-cosine", "(0, 1]"), seconds=10)


def test_tflite_for_an_iphone_refused(capsys, tmp_path, bundle):
    run_refused(capsys, tmp_path, "export", bundle, "--target", "tflite", "--device", "iphone6",
                "--out", tmp_path / "exp", needles=("iphone 6", "coreml"), seconds=10)


def test_edited_bundle_input_size_refused(capsys, tmp_path, bundle):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    meta = json.loads((b / "model.json").read_text())
    meta["input"]["size"] = [4096, 4096]
    (b / "model.json").write_text(json.dumps(meta))
    run_refused(capsys, tmp_path, "export", b, "--target", "onnx", "--out", tmp_path / "exp",
                needles=("input/size",), seconds=20)
