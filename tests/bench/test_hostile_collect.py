"""`collect dir` and the store, second round (issue 29): unusable timings rejected with a reason, symlinks inside
the folder followed (others named as skipped), and a folder of thousands of files collected in linear time."""

from __future__ import annotations

import os

from tests.bench._results import dumps, result
from tests.cli._cli import deploy
from toolchain.bench.store import ResultStore


def test_all_zero_samples_rejected_with_reason(capsys, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "zero.json").write_bytes(dumps(result("zero-run", [0, 0, 0, 0])))
    (src / "good.json").write_bytes(dumps(result("good-run", [5, 6, 7, 8])))
    r = deploy(capsys, "collect", "dir", src, "--out", tmp_path / "store")
    assert r.code == 1 and "Traceback" not in r.err
    assert "0 ns" in r.out + r.err
    assert [e.run_id for e in ResultStore(tmp_path / "store").entries()] == ["good-run"]
    why = list((tmp_path / "store" / "rejected").glob("*.why.txt"))
    assert len(why) == 1 and "0 ns" in why[0].read_text()


def test_symlink_inside_is_followed_outside_is_named(capsys, tmp_path):
    src = tmp_path / "in"
    (src / "real").mkdir(parents=True)
    (tmp_path / "elsewhere.json").write_bytes(dumps(result("outside-run")))
    (src / "real" / "r.json").write_bytes(dumps(result("inside-run")))
    (src / "deep").mkdir()
    os.symlink(src / "real" / "r.json", src / "deep" / "link.json")
    os.symlink(tmp_path / "elsewhere.json", src / "out-link.json")
    os.symlink(src / "missing.json", src / "dangling.json")
    # the real file is stored once; the link to it is a duplicate, not passed over
    r = deploy(capsys, "collect", "dir", src / "deep", src, "--out", tmp_path / "store")
    assert "Traceback" not in r.err, r.err
    text = r.out + r.err
    assert "out-link.json" in text and "outside" in text and "dangling.json" in text
    assert sorted(e.run_id for e in ResultStore(tmp_path / "store").entries()) == ["inside-run"]


def test_symlink_only_path_to_a_file_is_collected(capsys, tmp_path):
    src = tmp_path / "in"
    (src / "a").mkdir(parents=True)
    (src / "a" / "x.txt").write_bytes(dumps(result("via-link")))  # not *.json itself
    os.symlink(src / "a" / "x.txt", src / "link.json")
    r = deploy(capsys, "collect", "dir", src, "--out", tmp_path / "store")
    assert r.code == 0, r.out + r.err
    assert [e.run_id for e in ResultStore(tmp_path / "store").entries()] == ["via-link"]


def test_collect_dir_lists_the_store_once_not_once_per_file(capsys, tmp_path, monkeypatch):
    """Each add used to glob the whole store and each write rescanned it for stale temps: quadratic (10,000 files
    took 210 s). Now a batch lists it once; counted here, timed in benchmarks/hostile_scaling.py."""
    import pathlib

    from toolchain import fsutil

    src = tmp_path / "in"
    src.mkdir()
    for i in range(200):
        (src / f"r{i:05d}.json").write_bytes(dumps(result(f"run-{i:05d}", [100 + i % 7] * 3)))
    scans = {"temps": 0, "glob": 0}
    clean, glob = fsutil.clean_stale_temps, pathlib.Path.glob

    def counting_clean(*a, **k):
        scans["temps"] += 1
        return clean(*a, **k)

    def counting_glob(self, *a, **k):
        scans["glob"] += 1
        return glob(self, *a, **k)

    monkeypatch.setattr(fsutil, "clean_stale_temps", counting_clean)
    monkeypatch.setattr(pathlib.Path, "glob", counting_glob)
    r = deploy(capsys, "collect", "dir", src, "--out", tmp_path / "store")
    assert r.code == 0, r.err[-500:]
    assert len(ResultStore(tmp_path / "store").entries()) == 200
    assert scans["temps"] <= 3 and scans["glob"] <= 3, scans
