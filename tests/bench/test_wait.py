"""The one wait: which results count for a launch, which are stale or another plan's, which runs are missing."""

from __future__ import annotations

from tests.bench._results import Polls, result
from toolchain.bench.store import AddOutcome, ResultStore
from toolchain.bench.transport import Collected, RemoteFile, RemoteFolderMissing, Transport
from toolchain.bench.wait import Expectation, match, run_key_of, wait_for_plan

PLAN = {"plan_id": "p", "runs": [{"key": "00-m-cpu"}, {"key": "01-m-gpu"}]}


def _c(r: dict, group=None) -> Collected:
    return Collected(RemoteFile(f"{r['run_id']}.json", f"dev:{r['run_id']}", group=group),
                     AddOutcome("x", "stored", "stored", r["run_id"]), r)


def test_only_this_launchs_results_of_this_plan_count():
    mine = result("p.00-m-cpu.aaaa", plan_id="p", launch_id="L2", run_key="00-m-cpu")
    old = result("p.01-m-gpu.bbbb", plan_id="p", launch_id="L1", run_key="01-m-gpu")
    legacy = result("p.01-m-gpu.cccc", plan_id="p")  # an older app wrote no launch id: never this launch's
    other = result("q.00-m-cpu.dddd", plan_id="q", launch_id="L2")
    report = match(Expectation("p", ("00-m-cpu", "01-m-gpu"), "L2"), [_c(mine), _c(old), _c(legacy), _c(other)], [None])
    assert report.found == {(None, "00-m-cpu"): "p.00-m-cpu.aaaa"}
    assert report.missing == ["01-m-gpu"]
    assert report.stale == ["p.01-m-gpu.bbbb", "p.01-m-gpu.cccc"] and report.foreign == ["q.00-m-cpu.dddd"]


def test_each_device_must_deliver_each_run_and_without_a_plan_one_file_each():
    a = result("p.00-m-cpu.aaaa", plan_id="p")
    exp = Expectation("p", ("00-m-cpu",), None)  # Device Farm: any launch counts
    assert match(exp, [_c(a, "Apple iPhone XR")], ["Apple iPhone XR", "Apple iPhone X"]).missing == ["Apple iPhone X: 00-m-cpu"]
    assert match(Expectation(None, None), [_c(a, "Apple iPhone XR")], ["Apple iPhone XR", "Apple iPhone X"]).missing == [
        "Apple iPhone X: no results file"]


def test_run_key_from_the_run_id_when_a_file_has_none():
    assert run_key_of({"run_id": "p.00-a.b.1234", "plan_id": "p"}, ["00-a", "00-a.b"]) == "00-a.b"
    assert run_key_of({"run_id": "p.9-z.1234", "plan_id": "p"}, ["00-a"]) is None


class Scripted(Transport):
    """Listings that change over time, as an app writing its results does."""

    def __init__(self, listings: list) -> None:
        self.listings, self.reads = listings, []

    def list(self):
        item = self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]
        if isinstance(item, Exception):
            raise item
        return [RemoteFile(n, f"dev:{n}") for n in item]

    def read(self, f, limit_bytes):
        from tests.bench._results import dumps

        self.reads.append(f.name)
        key = f.name.split(".")[1]
        return dumps(result(f.name[:-5], plan_id="p", launch_id="L", run_key=key))


def test_wait_tolerates_a_missing_folder_reads_each_file_once_and_times_out_naming_what_is_missing(tmp_path):
    t = Scripted([RemoteFolderMissing("no results folder yet"), ["p.00-m-cpu.aaaa.json"],
                  ["p.00-m-cpu.aaaa.json"]])
    report = wait_for_plan(t, PLAN, ResultStore(tmp_path), "L", timeout_s=5, poll_s=0, sleep=lambda s: None,
                           clock=Polls())
    assert report.timed_out and report.missing == ["01-m-gpu"] and t.reads == ["p.00-m-cpu.aaaa.json"]
    t = Scripted([RemoteFolderMissing("no results folder yet")])
    report = wait_for_plan(t, PLAN, ResultStore(tmp_path), "L", timeout_s=2, poll_s=0, sleep=lambda s: None,
                           clock=Polls())
    assert report.problem == "no results folder yet" and report.missing == ["00-m-cpu", "01-m-gpu"]


def test_wait_ends_as_soon_as_every_run_arrived(tmp_path):
    t = Scripted([[], ["p.00-m-cpu.a.json"], ["p.00-m-cpu.a.json", "p.01-m-gpu.b.json"]])
    polls = []
    report = wait_for_plan(t, PLAN, ResultStore(tmp_path), "L", timeout_s=100, poll_s=0, sleep=lambda s: None,
                           clock=Polls(), progress=lambda r: polls.append(len(r.found)))
    assert report.complete and not report.timed_out and polls == [0, 1, 2]
