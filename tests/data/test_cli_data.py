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
    assert "all-pairs (no sessions" in r.output
    r = run(app, ["data", "split", str(data), "--out", str(tmp_path / "p"), "--seed", "1"])
    assert r.exit_code == 0, r.output
    test = json.loads((tmp_path / "p" / "protocol-test.json").read_text())
    assert test["counts"]["subjects"] >= 2 and test["genuine"]
    # the unreadable file is left out of every protocol, reported, and listed with its reason
    excluded = json.loads((tmp_path / "p" / "excluded.json").read_text())
    assert excluded["count"] == 1 and excluded["images"][0]["path"] == "subject_0001/broken.png"
    assert "cannot read image" in excluded["images"][0]["reason"]
    assert "1 unreadable image(s), e.g. subject_0001/broken.png" in r.output and "excluded.json" in r.output
    for split in ("val", "test"):
        doc = json.loads((tmp_path / "p" / f"protocol-{split}.json").read_text())
        assert all(im["path"] != "subject_0001/broken.png" for im in doc["images"])
        assert doc["meta"]["excluded_images"] == 1
    assert "protocol: all-pairs" in r.output
    r = run(app, ["data", "sheet", str(data), "--out", str(tmp_path / "s.png"), "--subjects", "2", "--per-subject", "3",
                  "--tile", "16"])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "s.png").size == (48, 32)


def test_wrong_layout_is_a_one_line_error(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "1.png")
    r = CliRunner().invoke(app, ["data", "check", str(tmp_path), "--layout", "ufpr"])
    assert r.exit_code != 0 and "ufpr" in str(r.exception)


def test_split_cross_session_on_a_ufpr_like_synthetic_set(tmp_path):
    run = CliRunner().invoke
    data = tmp_path / "u"
    r = run(app, ["data", "synth", "--layout", "ufpr", "--subjects", "8", "--images-per-subject", "3", "--size", "32",
                  "--out", str(data)])
    assert r.exit_code == 0, r.output
    assert "48 images of 8 subjects" in r.output and (data / "C1" / "C1_S2_I1_R.png").is_file()
    r = run(app, ["data", "check", str(data)])
    assert r.exit_code == 0 and "all-pairs, cross-session (enrol 1 -> verify 2, 3" in r.output, r.output
    r = run(app, ["data", "split", str(data), "--out", str(tmp_path / "all"), "--fractions", "0.5,0.25,0.25"])
    assert r.exit_code == 0, r.output
    assert "not comparable with published cross-session" in r.output
    r = run(app, ["data", "split", str(data), "--out", str(tmp_path / "p"), "--protocol", "cross-session",
                  "--fractions", "0.5,0.25,0.25"])
    assert r.exit_code == 0, r.output
    assert "cross-session (enrol 1 -> verify 2, 3" in r.output and "Zanlorensi" in r.output
    doc = json.loads((tmp_path / "p" / "protocol-test.json").read_text())
    assert doc["protocol"]["enrol_sessions"] == ["1"] and doc["protocol"]["verify_sessions"] == ["2", "3"]
    im = doc["images"]
    assert all(im[i]["session"] != im[j]["session"] for i, j in doc["genuine"])


def test_split_cross_session_without_sessions_is_a_one_line_error(tmp_path):
    run = CliRunner().invoke
    data = tmp_path / "s"
    assert run(app, ["data", "synth", "--subjects", "6", "--images-per-subject", "2", "--size", "32",
                     "--out", str(data)]).exit_code == 0
    r = run(app, ["data", "split", str(data), "--out", str(tmp_path / "p"), "--protocol", "cross-session"])
    assert r.exit_code != 0 and "no published cross-session protocol" in str(r.exception)
    assert not (tmp_path / "p").exists()
    r = run(app, ["data", "split", str(data), "--out", str(tmp_path / "p"), "--protocol", "cross-session",
                  "--enrol-sessions", "1", "--verify-sessions", "2"])
    assert r.exit_code != 0 and "no session labels" in str(r.exception)


def test_a_subject_whose_images_all_fail_to_decode_keeps_its_split(tmp_path):
    """`deploy train --splits` scans the same folder and refuses a splits file lacking one of its subjects."""
    from toolchain.data.layouts import scan
    from toolchain.data.splits import load_splits
    from toolchain.train.run import split_dataset

    run = CliRunner().invoke
    data = tmp_path / "synth"
    r = run(app, ["data", "synth", "--subjects", "6", "--images-per-subject", "3", "--size", "32", "--out", str(data)])
    assert r.exit_code == 0, r.output
    dead = sorted(p for p in (data / "subject_0002").iterdir() if p.is_file())
    for p in dead:
        p.write_bytes(b"not an image")
    r = run(app, ["data", "split", str(data), "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    splits = load_splits(tmp_path / "p" / "splits.json")
    assert "subject_0002" in splits and len(splits) == 6
    assert json.loads((tmp_path / "p" / "excluded.json").read_text())["count"] == len(dead)
    assert split_dataset(scan(data), tmp_path / "p" / "splits.json") == splits  # what deploy train --splits does
