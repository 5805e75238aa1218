"""The results store: validated, raw, de-duplicated, never overwritten, safe names, safe concurrency."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from tests.bench._results import FIXTURES, dumps, fixture, result
from toolchain.bench.schema import MAX_RESULT_BYTES
from toolchain.bench.store import ResultStore, is_safe_remote_name, load_results_dirs, parse_result_bytes
from toolchain.errors import SchemaError, StoreError


@pytest.mark.parametrize("name", ["ok", "error", "partial"])
def test_fixtures_are_stored_raw_under_run_id_and_hash(tmp_path, name):
    import hashlib

    data = (FIXTURES / f"{name}.json").read_bytes()
    store = ResultStore(tmp_path / "s")
    out = store.add_bytes(data, f"{name}.json")
    assert out.status == "stored"
    run_id = fixture(name)["run_id"]
    assert out.path.name == f"{run_id}.{hashlib.sha256(data).hexdigest()}.json"
    assert out.path.read_bytes() == data  # byte for byte
    assert store.get(run_id) == fixture(name)


def test_duplicates_are_not_stored_twice_and_reformatted_json_is_a_duplicate(tmp_path):
    store = ResultStore(tmp_path)
    r = fixture("ok")
    assert store.add_bytes(dumps(r), "a").status == "stored"
    assert store.add_bytes(dumps(r), "b").status == "duplicate"
    assert store.add_bytes(json.dumps(r, separators=(",", ":")).encode(), "c").status == "duplicate"
    assert len(store.entries()) == 1


def test_same_run_id_with_other_content_is_a_conflict_and_never_overwrites(tmp_path):
    store = ResultStore(tmp_path)
    first = store.add_bytes(dumps(result("run-1", [5, 6, 7])), "first")
    before = first.path.read_bytes()
    second = store.add_bytes(dumps(result("run-1", [9, 9, 9])), "second.json")
    assert second.status == "conflict" and "second.json" in second.message
    assert first.path.read_bytes() == before
    assert [e.run_id for e in store.entries()] == ["run-1"]
    assert store.get("run-1")["latency_ns"] == [5, 6, 7]
    assert second.path.parent.name == "rejected" and second.path.exists()  # the newcomer is kept aside


@pytest.mark.parametrize("data,problem", [
    (b"", "empty file"),
    (b"{\"schema_version\": 1, \"run_id\": \"x\", \"latency_ns\": [1, 2", "truncated"),
    (b"\xff\xfe not utf-8", "not UTF-8"),
    (b"[1, 2, 3]", "one JSON object"),
    (b"{\"schema_version\": 1}", "not a valid result"),
])
def test_bad_files_are_rejected_with_file_and_problem_and_good_files_kept(tmp_path, data, problem):
    store = ResultStore(tmp_path)
    good = store.add_bytes(dumps(fixture("ok")), "good.json")
    bad = store.add_bytes(data, "device/bad.json")
    assert good.status == "stored" and bad.status == "rejected"
    assert "device/bad.json" in bad.message and problem in bad.message
    assert [e.path for e in store.entries()] == [good.path]
    if data:
        assert bad.path.read_bytes() == data  # kept in rejected/, nothing lost
        assert "device/bad.json" in bad.path.with_suffix(".why.txt").read_text()


def test_truncated_copy_of_a_valid_file_is_rejected(tmp_path):
    data = (FIXTURES / "ok.json").read_bytes()
    out = ResultStore(tmp_path).add_bytes(data[: len(data) // 2], "half.json")
    assert out.status == "rejected" and "not valid JSON" in out.message


def test_huge_file_is_refused_without_being_read_or_copied(tmp_path):
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as fh:
        fh.write(b"{\"pad\": \"")
        fh.seek(MAX_RESULT_BYTES + 10)
        fh.write(b"\"}")
    store = ResultStore(tmp_path / "s")
    out = store.add_file(huge)
    assert out.status == "rejected" and "larger than" in out.message and str(huge) in out.message
    assert store.entries() == [] and store.rejected() == []


@pytest.mark.parametrize("name", ["../../etc/passwd.json", "/abs.json", "a/b.json", "..json", ".hidden.json",
                                  "x\x00.json", "new\nline.json", "C:\\x.json", "results.txt"])
def test_hostile_remote_names_are_refused(name):
    assert not is_safe_remote_name(name)


def test_store_names_never_come_from_the_source_label(tmp_path):
    store = ResultStore(tmp_path / "s")
    out = store.add_bytes(dumps(fixture("ok")), "../../../../escape.json")
    assert out.status == "stored" and out.path.parent == store.root
    assert not (tmp_path / "escape.json").exists()
    # run_id cannot carry a path either: the schema refuses it before anything is written
    bad = store.add_bytes(dumps(result("../evil")), "x.json")
    assert bad.status == "rejected" and "run_id" in bad.message
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted([".lock", "rejected", out.path.name])


def _add_all(args):
    root, payloads = args
    store = ResultStore(root)
    return [store.add_bytes(p, f"proc-{i}").status for i, p in enumerate(payloads)]


def test_concurrent_collectors_store_each_run_once_and_no_file_is_corrupt(tmp_path):
    payloads = [dumps(result(f"run-{i}", [i + 1] * 3)) for i in range(12)]
    ctx = mp.get_context("spawn")  # fork is unsafe once JAX (litert) threads exist
    with ctx.Pool(4) as pool:
        statuses = pool.map(_add_all, [(tmp_path, payloads)] * 4)
    flat = [s for st in statuses for s in st]
    assert flat.count("stored") == 12 and flat.count("duplicate") == 36
    store = ResultStore(tmp_path)
    assert sorted(e.run_id for e in store.entries()) == sorted(f"run-{i}" for i in range(12))
    results, problems = store.load_all()
    assert len(results) == 12 and problems == []
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_get_remove_and_unknown_run(tmp_path):
    store = ResultStore(tmp_path)
    store.add_bytes(dumps(result("abc-1")), "a")
    store.add_bytes(dumps(result("abc-2")), "b")
    with pytest.raises(StoreError, match="abc-1, abc-2"):
        store.get("abc")
    removed = store.remove("abc-1")
    assert not removed.exists() and [e.run_id for e in store.entries()] == ["abc-2"]
    with pytest.raises(StoreError):
        store.remove("abc-1")


def test_store_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        ResultStore(f)


def test_load_results_dirs_skips_rejected_and_reports_bad_files(tmp_path):
    store = ResultStore(tmp_path / "s")
    store.add_bytes(dumps(fixture("ok")), "ok")
    store.add_bytes(b"{broken", "bad")
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "p.json").write_bytes((FIXTURES / "partial.json").read_bytes())
    (tmp_path / "loose" / "dup.json").write_bytes((FIXTURES / "ok.json").read_bytes())
    (tmp_path / "loose" / "junk.json").write_text("nope")
    results, problems = load_results_dirs([tmp_path / "s", tmp_path / "loose"])
    assert sorted(r["status"] for r in results) == ["ok", "partial"]
    assert len(problems) == 1 and "junk.json" in problems[0]


def test_parse_result_bytes_names_the_source():
    with pytest.raises(SchemaError, match="phone:1.json"):
        parse_result_bytes(b"{}", "phone:1.json")


def test_a_batch_finds_duplicates_among_its_own_not_yet_visible_writes(tmp_path):
    """In a batch, files become visible at commit; a reformatted copy of a run written earlier in the same
    batch is still a duplicate (read from its pending temp), and a different one a conflict."""
    obj = result("run-batch", [1000, 1100, 1200])
    store = ResultStore(tmp_path / "store")
    with store.batch():
        first = store.add_bytes(dumps(obj), "a.json")
        assert first.status == "stored" and not first.path.exists()  # pending until the batch commits
        again = store.add_bytes(json.dumps(obj, indent=4).encode(), "b.json")
        other = store.add_bytes(dumps(result("run-batch", [9, 9, 9])), "c.json")
    assert (again.status, other.status) == ("duplicate", "conflict")
    assert [e.run_id for e in store.entries()] == ["run-batch"]
    assert json.loads(first.path.read_bytes()) == obj
    assert not [p for p in (tmp_path / "store").rglob("*.tmp")]


def _add_then_die(root: str) -> None:
    import os
    import signal

    store = ResultStore(root)
    with store.batch():
        for i in range(5):
            store.add_bytes(dumps(result(f"run-{i}", [1000 + i] * 3)), f"r{i}.json")
        os.kill(os.getpid(), signal.SIGKILL)  # before the batch commits


def test_kill_9_inside_a_batch_leaves_no_partial_file_and_a_rerun_stores_everything(tmp_path):
    root = tmp_path / "store"
    p = mp.get_context("spawn").Process(target=_add_then_die, args=(str(root),))
    p.start()
    p.join(60)
    assert p.exitcode == -9
    assert ResultStore(root).entries() == [] and len(list(root.glob(".*.tmp"))) == 5  # temps only, no target
    store = ResultStore(root)
    with store.batch():
        outcomes = [store.add_bytes(dumps(result(f"run-{i}", [1000 + i] * 3)), f"r{i}.json") for i in range(5)]
    assert {o.status for o in outcomes} == {"stored"}
    assert len(store.entries()) == 5 and not list(root.glob(".*.tmp"))  # the dead writer's temps are gone
