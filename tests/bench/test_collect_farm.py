"""AWS Device Farm against botocore's Stubber (requests checked against the real API model) and the
service behaviour the model cannot express (tests/fakes/devicefarm.py)."""

from __future__ import annotations

import pytest

from tests.bench._results import dumps, fixture, result
from tests.fakes.devicefarm import PROJECT, RUN, FakeHttp, FarmRun, device, zip_bytes
from toolchain.bench import farm
from toolchain.bench.schema import MAX_RESULT_BYTES
from toolchain.bench.store import ResultStore
from toolchain.errors import CollectError

boto3 = pytest.importorskip("boto3", reason="boto3 is in the dev extra; needed for the Stubber")
from botocore.stub import ANY, Stubber  # noqa: E402

JOB = "arn:aws:devicefarm:us-west-2:123456789012:job:abc/run1/job1"
XR, X, I15 = device("Apple iPhone XR", "17.1"), device("Apple iPhone X", "16.7"), device("Apple iPhone 15", "18.0")


@pytest.fixture
def df():
    c = boto3.client("devicefarm", region_name="us-west-2", aws_access_key_id="testing",
                     aws_secret_access_key="testing")
    with Stubber(c) as stub:
        c.stub = stub
        yield c
        stub.assert_no_pending_responses()


def _stub_collect(df, zips: dict[str, bytes]) -> None:
    df.stub.add_response("get_run", {"run": {"arn": RUN, "status": "COMPLETED"}}, {"arn": RUN})
    df.stub.add_response("list_jobs", {"jobs": [{"arn": JOB, "name": "Apple iPhone XR",
                                                 "device": {"arn": XR["arn"], "name": "Apple iPhone XR"}}]},
                         {"arn": RUN})
    arts = [{"arn": f"{JOB}/a{i}", "name": name, "type": "CUSTOMER_ARTIFACT", "extension": "zip",
             "url": f"https://s3.example/{name}"} for i, name in enumerate(zips)]
    arts.append({"arn": f"{JOB}/log", "name": "Device log", "type": "DEVICE_LOG", "extension": "txt",
                 "url": "https://s3.example/log"})
    df.stub.add_response("list_artifacts", {"artifacts": arts[:1], "nextToken": "page-2"}, {"arn": JOB, "type": "FILE"})
    df.stub.add_response("list_artifacts", {"artifacts": arts[1:]}, {"arn": JOB, "type": "FILE", "nextToken": "page-2"})


def test_collect_extracts_results_from_customer_artifacts_and_rejects_bad_members(df, tmp_path):
    z = zip_bytes({"Documents/results/a.json": dumps(fixture("ok")),
                   "Documents/results/b.json": b"{not json",
                   "Documents/results/../../../evil.json": dumps(result("evil-1")),
                   "Documents/other/metadata.json": b"{}"})
    second = zip_bytes({"results/c.json": dumps(fixture("partial"))})
    _stub_collect(df, {"Customer Artifacts": z, "second": second})
    store = ResultStore(tmp_path / "s")
    report = farm.collect_farm(df, RUN, store, FakeHttp({"https://s3.example/Customer Artifacts": z,
                                                         "https://s3.example/second": second}))
    statuses = {o.source.rsplit("/", 1)[-1]: o.status for o in report.outcomes}
    assert statuses == {"a.json": "stored", "b.json": "rejected", "evil.json": "stored", "c.json": "stored"}
    assert all(o.source.startswith("farm:Apple iPhone XR:") for o in report.outcomes)
    # the hostile member name was only a label: the file lives in the store under its run_id
    assert sorted(e.run_id for e in store.entries()) == sorted([fixture("ok")["run_id"], "evil-1",
                                                                fixture("partial")["run_id"]])
    assert not (tmp_path / "evil.json").exists()
    assert report.complete  # without a plan: at least one results file from the one job


def test_oversized_member_and_bad_zip_are_rejected_and_the_job_is_named(df, tmp_path):
    big = zip_bytes({"results/big.json": b" " * (MAX_RESULT_BYTES + 1)})
    _stub_collect(df, {"big": big, "bad": b"not a zip"})
    report = farm.collect_farm(df, RUN, ResultStore(tmp_path), FakeHttp({"https://s3.example/big": big,
                                                                        "https://s3.example/bad": b"not a zip"}))
    assert [o.status for o in report.outcomes] == ["rejected", "rejected"]
    assert "larger than" in report.outcomes[0].message and "not a zip" in report.outcomes[1].message
    assert report.missing == ["Apple iPhone XR: no results file"]


def test_a_corrupt_member_is_rejected_and_the_good_member_beside_it_stored(df, tmp_path):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Documents/results/a-bad.json", dumps(fixture("ok")))
        zf.writestr("Documents/results/b-good.json", dumps(fixture("partial")))
    data = bytearray(buf.getvalue())
    start = 30 + len("Documents/results/a-bad.json")  # the first member's deflate stream
    for i in range(start + 2, start + 12):
        data[i] ^= 0xFF  # zlib.error on read: "invalid distance too far back" or similar
    _stub_collect(df, {"results": bytes(data)})
    report = farm.collect_farm(df, RUN, ResultStore(tmp_path), FakeHttp({"https://s3.example/results": bytes(data)}))
    statuses = {o.source.rsplit("!", 1)[-1]: (o.status, o.message) for o in report.outcomes}
    assert statuses["Documents/results/a-bad.json"][0] == "rejected"
    assert "damaged zip member" in statuses["Documents/results/a-bad.json"][1]
    assert statuses["Documents/results/b-good.json"][0] == "stored"


def _plan(platform="ios", keys=("r1", "r2"), device_key="iphonexr"):
    return {"plan_version": 1, "plan_id": "pf", "created_at": "2025-03-02T09:15:00Z", "device": device_key,
            "platform": platform, "protocol": fixture("ok")["protocol"], "inputs": [],
            "runs": [{"key": k, "artifact": {"name": "m", "format": "coreml" if platform == "ios" else "tflite",
                                             "path": "artifacts/m/m.bin", "sha256": "a" * 64, "precision": "fp16",
                                             "size_bytes": 1},
                      "compute_units": "all" if platform == "ios" else "cpu", "delegate": None, "threads": None,
                      "input": {"name": "x", "shape": [1, 3, 8, 8], "layout": "nchw", "dtype": "float32"},
                      "output": {"name": "features", "dim": 8}, "fixed_input": None, "reference_sample": None}
                     for k in keys]}


def _files(tmp_path, platform):
    app = tmp_path / ("OcularBench.ipa" if platform == "ios" else "app-release.apk")
    pkg = tmp_path / ("tests.zip" if platform == "ios" else "app-androidTest.apk")
    app.write_bytes(b"app-bytes")
    pkg.write_bytes(b"pkg-bytes")
    return app, pkg


@pytest.mark.parametrize("platform,fleet,keys,expect_paths", [
    ("ios", [XR, X, I15], ["iphonexr", "iphonex"], {"iosPaths": ["Documents/results"]}),
    ("android", [device("Google Pixel 6a", "14", "ANDROID")], [], None),
])
def test_bench_farm_declares_the_results_folder_and_collects_every_run_of_every_device(df, tmp_path, platform, fleet,
                                                                                     keys, expect_paths):
    """The defect: schedule_run set no customerArtifactPaths, so Device Farm pulled nothing off the devices.

    Android runs in custom mode: its spec copies the results into $DEVICEFARM_LOG_DIR (the zip layout differs)."""
    plan = _plan(platform)
    sim = FarmRun(df, platform, fleet, plan=plan)
    picked = fleet[:2] if platform == "ios" else fleet
    app, pkg = _files(tmp_path, platform)
    sim.stub_uploads(app.name, pkg.name)
    sim.stub_pool(picked)
    sim.stub_schedule(picked)
    stages = []
    run, report = farm.bench_farm(df, PROJECT, platform, app, pkg, ResultStore(tmp_path / "s"), keys,
                                  [] if platform == "ios" else ["Pixel"], plan=plan, name="bench", http=sim.http,
                                  poll_s=0, sleep=lambda s: None, progress=lambda st, info: stages.append((st, info)))
    if expect_paths is None:
        assert "configuration" not in sim.scheduled and sim.scheduled["test"]["testSpecArn"] == f"{PROJECT}/upload2"
        assert sim.http.puts[2][1].decode() == farm.android_test_spec()
    else:
        assert sim.scheduled["configuration"]["customerArtifactPaths"] == expect_paths
    assert run["status"] == "COMPLETED" and report.complete and report.expected == 2 * len(picked)
    assert sorted(report.found) == sorted((d["name"], k) for d in picked for k in ("r1", "r2"))
    assert sim.http.puts[:2] == [("https://put/0", b"app-bytes"), ("https://put/1", b"pkg-bytes")]
    assert any(st == "run" and info.get("status") == "RUNNING" for st, info in stages)


def test_bench_farm_names_the_device_and_run_that_wrote_nothing(df, tmp_path):
    plan = _plan()
    sim = FarmRun(df, "ios", [XR, X], plan=plan, skip={"Apple iPhone X": {"r2"}})
    app, pkg = _files(tmp_path, "ios")
    sim.stub_uploads(app.name, pkg.name)
    sim.stub_pool([XR, X])
    sim.stub_schedule([XR, X])
    _, report = farm.bench_farm(df, PROJECT, "ios", app, pkg, ResultStore(tmp_path / "s"), ["iphonexr", "iphonex"],
                                plan=plan, name="bench", http=sim.http, poll_s=0, sleep=lambda s: None)
    assert report.missing == ["Apple iPhone X: r2"] and not report.timed_out


def test_an_iphone_6_can_never_be_in_a_pool_and_says_so(df, tmp_path):
    app, pkg = _files(tmp_path, "ios")
    with pytest.raises(CollectError, match=r"plan pf is for the iPhone 6: its last iOS is 12\.5\.7; Device Farm "
                                           r"runs iOS 15 to 26 only"):
        farm.bench_farm(df, PROJECT, "ios", app, pkg, ResultStore(tmp_path / "s"), ["iphone6"],
                        plan=_plan(device_key="iphone6"), http=FakeHttp())
    with pytest.raises(CollectError, match="no Device Farm pool can hold iPhone 6"):
        farm.device_pool(df, PROJECT, "ios", ["iphone6"], [], "p")
    assert farm.unreachable_on_farm(["all"]) == ["iPhone 6: its last iOS is 12.5.7; Device Farm runs iOS 15 to 26 only"]


def test_a_pool_skips_the_iphone_6_and_keeps_the_rest(df, tmp_path):
    plan = _plan()
    sim = FarmRun(df, "ios", [XR, I15], plan=plan)
    app, pkg = _files(tmp_path, "ios")
    sim.stub_uploads(app.name, pkg.name)
    sim.stub_pool([XR])
    sim.stub_schedule([XR])
    stages = []
    _, report = farm.bench_farm(df, PROJECT, "ios", app, pkg, ResultStore(tmp_path / "s"), ["iphone6", "iphonexr"],
                                plan=plan, name="bench", http=sim.http, poll_s=0, sleep=lambda s: None,
                                progress=lambda st, info: stages.append((st, info)))
    assert report.complete
    assert ("pool", {"skipped": ["iPhone 6: its last iOS is 12.5.7; Device Farm runs iOS 15 to 26 only"]}) in stages


def test_catalog_names_match_word_bounded():
    devs = [{"name": "Apple iPhone X"}, {"name": "Apple iPhone XR"}, {"name": "Apple iPad (7th generation)"}]
    assert [d["name"] for d in farm.match_devices(devs, ["iphonex"], [])] == ["Apple iPhone X"]
    assert [d["name"] for d in farm.match_devices(devs, ["ipad7"], [])] == ["Apple iPad (7th generation)"]
    assert [d["name"] for d in farm.match_devices(devs, [], ["xr"])] == ["Apple iPhone XR"]


def test_failed_upload_and_service_errors_are_clear(df, tmp_path):
    app = tmp_path / "a.ipa"
    app.write_bytes(b"x")
    df.stub.add_response("create_upload", {"upload": {"arn": f"{PROJECT}/u", "url": "https://put/0"}},
                         {"projectArn": PROJECT, "name": "a.ipa", "type": "IOS_APP", "contentType": ANY})
    df.stub.add_response("get_upload", {"upload": {"arn": f"{PROJECT}/u", "status": "FAILED",
                                                      "message": "invalid ipa"}}, {"arn": f"{PROJECT}/u"})
    with pytest.raises(CollectError, match="rejected a.ipa: invalid ipa"):
        farm.upload(df, PROJECT, app, "IOS_APP", FakeHttp(), sleep=lambda s: None)
    df.stub.add_client_error("get_run", "NotFoundException", "run not found")
    with pytest.raises(CollectError, match="get_run failed.*run not found"):
        farm.collect_farm(df, RUN, ResultStore(tmp_path / "s"), FakeHttp())


def test_cli_collect_farm_exits_1_naming_the_device_without_results(df, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from toolchain.cli import app as cli

    df.stub.add_response("get_run", {"run": {"arn": RUN, "status": "COMPLETED"}}, {"arn": RUN})
    df.stub.add_response("list_jobs", {"jobs": [{"arn": JOB, "name": "Apple iPhone XR", "status": "COMPLETED",
                                                 "device": {"arn": XR["arn"], "name": "Apple iPhone XR"}}]},
                         {"arn": RUN})
    df.stub.add_response("list_artifacts", {"artifacts": []}, {"arn": JOB, "type": "FILE"})
    monkeypatch.setattr(farm, "client", lambda region: df)
    res = CliRunner().invoke(cli, ["collect", "farm", "--run-arn", RUN, "--out", str(tmp_path / "s")])
    assert res.exit_code == 1 and "Apple iPhone XR: no results file" in res.output, res.output


def test_collecting_a_run_that_is_still_running_says_so(df, tmp_path):
    df.stub.add_response("get_run", {"run": {"arn": RUN, "status": "RUNNING"}}, {"arn": RUN})
    df.stub.add_response("list_jobs", {"jobs": [{"arn": JOB, "name": "Apple iPhone XR", "status": "RUNNING",
                                                 "device": {"arn": XR["arn"], "name": "Apple iPhone XR"}}]},
                         {"arn": RUN})
    report = farm.collect_farm(df, RUN, ResultStore(tmp_path / "s"), FakeHttp(), plan=_plan())
    assert report.missing == ["Apple iPhone XR: r1", "Apple iPhone XR: r2"] and not report.timed_out
    assert "RUNNING" in report.problem and "collect again later" in report.problem


def test_an_empty_job_list_while_scheduling_is_not_a_complete_plan(df, tmp_path):
    """The defect: ListJobs is empty while the run is SCHEDULING, so 0 of 0 expected runs ended the wait at once."""
    plan = _plan()
    sim = FarmRun(df, "ios", [XR], plan=plan, polls_scheduling=2)
    app, pkg = _files(tmp_path, "ios")
    sim.stub_uploads(app.name, pkg.name)
    sim.stub_pool([XR])
    sim.stub_schedule([XR])
    seen = []
    _, report = farm.bench_farm(df, PROJECT, "ios", app, pkg, ResultStore(tmp_path / "s"), ["iphonexr"], plan=plan,
                                name="bench", http=sim.http, poll_s=0, sleep=lambda s: None,
                                progress=lambda st, info: seen.append(info.get("status")) if st == "run" else None)
    assert seen[:2] == ["SCHEDULING", "SCHEDULING"] and report.complete
    assert sorted(report.found) == [("Apple iPhone XR", "r1"), ("Apple iPhone XR", "r2")]


def test_a_run_that_failed_at_parsing_has_no_jobs_and_is_a_failure_not_success(df, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from toolchain.cli import app as cli

    df.stub.add_response("get_run", {"run": {"arn": RUN, "status": "COMPLETED", "result": "ERRORED",
                                             "resultCode": "PARSING_FAILED", "message": "Invalid test package"}},
                         {"arn": RUN})
    df.stub.add_response("list_jobs", {"jobs": []}, {"arn": RUN})
    report = farm.collect_farm(df, RUN, ResultStore(tmp_path / "s"), FakeHttp(), plan=_plan())
    assert not report.complete and report.failures == ["run PARSING_FAILED: Invalid test package"]
    assert report.missing == ["every run: no device has a job yet (ListJobs is empty)"]
    df.stub.add_response("get_run", {"run": {"arn": RUN, "status": "COMPLETED", "result": "ERRORED",
                                             "resultCode": "PARSING_FAILED", "message": "Invalid test package"}},
                         {"arn": RUN})
    df.stub.add_response("list_jobs", {"jobs": []}, {"arn": RUN})
    monkeypatch.setattr(farm, "client", lambda region: df)
    res = CliRunner().invoke(cli, ["collect", "farm", "--run-arn", RUN, "--out", str(tmp_path / "s2")])
    assert res.exit_code == 1 and "PARSING_FAILED" in res.output, res.output


@pytest.mark.parametrize("result", ["ERRORED", "STOPPED"])
def test_an_errored_or_stopped_job_is_reported_as_a_failure_even_with_its_results(df, tmp_path, result):
    plan = _plan()
    sim = FarmRun(df, "ios", [XR, I15], plan=plan, job_results={"Apple iPhone 15": (result, "Device went offline")})
    app, pkg = _files(tmp_path, "ios")
    sim.stub_uploads(app.name, pkg.name)
    sim.stub_pool([XR, I15])
    sim.stub_schedule([XR, I15])
    _, report = farm.bench_farm(df, PROJECT, "ios", app, pkg, ResultStore(tmp_path / "s"), ["iphonexr"], ["15"],
                                plan=plan, name="bench", http=sim.http, poll_s=0, sleep=lambda s: None)
    assert not report.missing and not report.complete
    assert report.failures == [f"Apple iPhone 15: job {result}: Device went offline"]


def test_throttling_is_retried_and_counted_and_a_permanent_error_ends_the_wait(df, tmp_path):
    plan = _plan()
    sim = FarmRun(df, "ios", [XR], plan=plan, throttle_first_poll=True)
    app, pkg = _files(tmp_path, "ios")
    sim.stub_uploads(app.name, pkg.name)
    sim.stub_pool([XR])
    sim.stub_schedule([XR])
    pauses = []
    _, report = farm.bench_farm(df, PROJECT, "ios", app, pkg, ResultStore(tmp_path / "s"), ["iphonexr"], plan=plan,
                                name="bench", http=sim.http, poll_s=0, sleep=pauses.append)
    assert report.complete and report.retries == 1 and pauses[0] >= 1.0
    from toolchain.bench.wait import wait_for_plan

    df.stub.add_client_error("get_run", "NotFoundException", "run not found")
    with pytest.raises(CollectError, match="run not found") as e:
        wait_for_plan(farm.FarmTransport(df, RUN, FakeHttp()), plan, ResultStore(tmp_path / "s"), None,
                      timeout_s=100, poll_s=0, sleep=lambda s: None)
    assert "transient" not in str(e.value)


def test_results_in_the_custom_mode_layout_and_the_standard_one_are_both_read(df, tmp_path):
    r1, r2 = result("p.r1.a", plan_id="p", run_key="r1"), result("p.r2.b", plan_id="p", run_key="r2")
    z = zip_bytes({"Host_Machine_Files/$DEVICEFARM_LOG_DIR/ocular_results/p.r1.a.json": dumps(r1),
                   "Host_Machine_Files/$DEVICEFARM_LOG_DIR/instrument.log": b"INSTRUMENTATION_CODE: -1",
                   "Documents/results/p.r2.b.json": dumps(r2)})
    _stub_collect(df, {"Customer Artifacts": z})
    store = ResultStore(tmp_path / "s")
    report = farm.collect_farm(df, RUN, store, FakeHttp({"https://s3.example/Customer Artifacts": z}))
    assert sorted(e.run_id for e in store.entries()) == ["p.r1.a", "p.r2.b"] and report.complete
