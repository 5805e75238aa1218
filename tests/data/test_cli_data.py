"""`deploy data synth|check|split|sheet` through the CLI."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from toolchain.cli import app


def test_synth_check_split_sheet(tmp_path):
    run = CliRunner().invoke
    data = tmp_path / "synth"
    r = run(app, ["data", "synth", "--subjects", "7", "--images-per-subject", "3", "--size", "32", "--out", str(data)])
    assert r.exit_code == 0, r.output
    (data / "subject_0001" / "broken.png").write_bytes(b"nope")
    r = run(app, ["data", "check", str(data)])
    assert r.exit_code == 0, r.output
    assert "per-subject" in r.output and "subjects  7" in r.output and "unreadable  1" in r.output
    r = run(app, ["data", "split", str(data), "--out", str(tmp_path / "p"), "--seed", "1"])
    assert r.exit_code == 0, r.output
    test = json.loads((tmp_path / "p" / "protocol-test.json").read_text())
    assert test["counts"]["subjects"] >= 2 and test["genuine"]
    r = run(app, ["data", "sheet", str(data), "--out", str(tmp_path / "s.png"), "--subjects", "2", "--per-subject", "3",
                  "--tile", "16"])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "s.png").size == (48, 32)


def test_wrong_layout_is_a_one_line_error(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "1.png")
    r = CliRunner().invoke(app, ["data", "check", str(tmp_path), "--layout", "ufpr"])
    assert r.exit_code != 0 and "ufpr" in str(r.exception)
