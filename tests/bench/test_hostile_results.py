"""Results files written to hurt: none crashes a command, none stops the good files beside it, none is stored
to poison later commands, none hangs a reader."""

from __future__ import annotations

import os
import threading

import pytest

from tests.bench._results import dumps, result
from tests.cli._cli import deploy, snapshot
from toolchain.bench.schema import MAX_NS
from toolchain.bench.store import ResultStore


def _bad_files() -> dict[str, bytes]:
    deep = b'{"schema_version": 1, "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    huge_int = dumps(result("big-int")).replace(b'"latency_ns": [', b'"latency_ns": [1' + b"0" * 400 + b", ", 1)
    return {
        "deep.json": deep,
        "huge-int.json": huge_int,
        "past-bound.json": dumps(result("past-bound", [MAX_NS + 1])),
        "nan.json": dumps(result("nan")).replace(b'"latency_ns": [', b'"latency_ns": [NaN, ', 1),
        "float-ns.json": dumps(result("float-ns", [1.5])),
        "[bold]markup[red].json": dumps(result("[/bold]")),
    }


def test_collect_dir_rejects_each_bad_file_and_stores_the_good_ones_after_it(capsys, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name, data in _bad_files().items():
        (src / name).write_bytes(data)
    good = {f"z-good-{i}.json": dumps(result(f"good-{i}")) for i in range(3)}  # sorted after the bad ones
    for name, data in good.items():
        (src / name).write_bytes(data)
    before = snapshot(src)
    r = deploy(capsys, "collect", "dir", src, "--out", tmp_path / "store")
    assert r.code == 1 and "Traceback" not in r.err  # 1: some files were rejected (documented)
    assert "6 rejected, 3 stored" in r.out
    assert "[bold]markup[red].json" in r.err  # printed as is, never read as markup
    assert sorted(e.run_id for e in ResultStore(tmp_path / "store").entries()) == ["good-0", "good-1", "good-2"]
    assert snapshot(src) == before  # the sources are left as they were
    for cmd in (["results", "list", "--store", tmp_path / "store"],
                ["report", "--results", tmp_path / "store", "--out", tmp_path / "report", "--no-plots"]):
        out = deploy(capsys, *cmd)
        assert out.code == 0 and "Traceback" not in out.err, (cmd, out.err)


def test_report_reads_around_a_fifo_and_a_poisoned_file_already_in_a_folder(capsys, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "good.json").write_bytes(dumps(result("good")))
    (folder / "huge-int.json").write_bytes(_bad_files()["huge-int.json"])
    os.mkfifo(folder / "pipe.json")
    done: list = []
    t = threading.Thread(target=lambda: done.append(
        deploy(capsys, "report", "--results", folder, "--out", tmp_path / "report", "--no-plots")), daemon=True)
    t.start()
    t.join(120)
    assert done, "deploy report hung on a FIFO named *.json"
    r = done[0]
    assert r.code == 0 and "pipe.json" in r.err and "huge-int.json" in r.err, r.err
    assert "report of 1 runs" in r.out


@pytest.mark.parametrize("run_id", [".hidden", "../up", "a/b", "-x" * 100])
def test_unsafe_run_ids_are_rejected_by_the_schema(tmp_path, run_id):
    out = ResultStore(tmp_path).add_bytes(dumps(result(run_id)), "r.json")
    assert out.status == "rejected" and "run_id" in out.message
