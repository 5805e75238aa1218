"""AWS Device Farm flow against botocore's Stubber (requests checked against the real API model)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.bench._results import dumps, fixture, result
from toolchain.bench import farm
from toolchain.bench.schema import MAX_RESULT_BYTES
from toolchain.bench.store import ResultStore
from toolchain.errors import CollectError

boto3 = pytest.importorskip("boto3", reason="boto3 is in the dev extra; needed for the Stubber")
from botocore.stub import ANY, Stubber  # noqa: E402

PROJECT = "arn:aws:devicefarm:us-west-2:123456789012:project:abc"
RUN = "arn:aws:devicefarm:us-west-2:123456789012:run:abc/run1"
JOB = "arn:aws:devicefarm:us-west-2:123456789012:job:abc/run1/job1"
DEV_XR, DEV_X, DEV_15 = (f"arn:aws:devicefarm:us-west-2::device:{k:0>32}" for k in ("XR", "X", "15"))


class FakeHttp:
    def __init__(self, downloads: dict[str, bytes]) -> None:
        self.downloads, self.puts = downloads, []

    def put(self, url, data):
        self.puts.append((url, data))

    def get(self, url, limit_bytes):
        return self.downloads[url]


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def df():
    c = boto3.client("devicefarm", region_name="us-west-2", aws_access_key_id="testing",
                     aws_secret_access_key="testing")
    with Stubber(c) as stub:
        c.stub = stub
        yield c
        stub.assert_no_pending_responses()


def _stub_collect(df, zips: dict[str, bytes]) -> None:
    df.stub.add_response("list_jobs", {"jobs": [{"arn": JOB, "name": "Apple iPhone XR",
                                                 "device": {"arn": DEV_XR, "name": "Apple iPhone XR"}}]},
                         {"arn": RUN})
    arts = [{"arn": f"{JOB}/a{i}", "name": name, "type": "CUSTOMER_ARTIFACT", "extension": "zip",
             "url": f"https://s3.example/{name}"} for i, name in enumerate(zips)]
    arts.append({"arn": f"{JOB}/log", "name": "Device log", "type": "DEVICE_LOG", "extension": "txt",
                 "url": "https://s3.example/log"})
    df.stub.add_response("list_artifacts", {"artifacts": arts[:1], "nextToken": "page-2"}, {"arn": JOB, "type": "FILE"})
    df.stub.add_response("list_artifacts", {"artifacts": arts[1:]}, {"arn": JOB, "type": "FILE", "nextToken": "page-2"})


def test_collect_extracts_results_from_customer_artifacts_and_rejects_bad_members(df, tmp_path):
    z = _zip({"Host_Machine_Files/$DEVICEFARM_LOG_DIR/results/a.json": dumps(fixture("ok")),
              "Host_Machine_Files/$DEVICEFARM_LOG_DIR/results/b.json": b"{not json",
              "Host_Machine_Files/$DEVICEFARM_LOG_DIR/results/../../../evil.json": dumps(result("evil-1")),
              "Host_Machine_Files/other/metadata.json": b"{}"})
    _stub_collect(df, {"Customer Artifacts": z, "second": _zip({"results/c.json": dumps(fixture("partial"))})})
    store = ResultStore(tmp_path / "s")
    outs = farm.collect_farm(df, RUN, store, FakeHttp({"https://s3.example/Customer Artifacts": z,
                                                       "https://s3.example/second": _zip(
                                                           {"results/c.json": dumps(fixture("partial"))})}))
    statuses = {o.source.rsplit("/", 1)[-1]: o.status for o in outs}
    assert statuses == {"a.json": "stored", "b.json": "rejected", "evil.json": "stored", "c.json": "stored"}
    assert all(o.source.startswith("farm:Apple iPhone XR:") for o in outs)
    # the hostile member name was only a label: the file lives in the store under its run_id
    assert sorted(e.run_id for e in store.entries()) == sorted([fixture("ok")["run_id"], "evil-1",
                                                                fixture("partial")["run_id"]])
    assert not (tmp_path / "evil.json").exists()


def test_oversized_member_and_bad_zip_are_rejected(df, tmp_path):
    big = _zip({"results/big.json": b" " * (MAX_RESULT_BYTES + 1)})
    _stub_collect(df, {"big": big, "bad": b"not a zip"})
    outs = farm.collect_farm(df, RUN, ResultStore(tmp_path), FakeHttp({"https://s3.example/big": big,
                                                                       "https://s3.example/bad": b"not a zip"}))
    assert [o.status for o in outs] == ["rejected", "rejected"]
    assert "larger than" in outs[0].message and "not a zip" in outs[1].message


def test_bench_farm_uploads_builds_the_pool_schedules_polls_and_collects(df, tmp_path):
    app, pkg = tmp_path / "OcularBench.ipa", tmp_path / "tests.zip"
    app.write_bytes(b"ipa-bytes")
    pkg.write_bytes(b"zip-bytes")
    s = df.stub
    for i, (path, kind) in enumerate([(app, "IOS_APP"), (pkg, "XCTEST_TEST_PACKAGE")]):
        arn = f"{PROJECT}/upload{i}"
        s.add_response("create_upload", {"upload": {"arn": arn, "status": "INITIALIZED", "url": f"https://put/{i}"}},
                       {"projectArn": PROJECT, "name": path.name, "type": kind,
                        "contentType": "application/octet-stream"})
        s.add_response("get_upload", {"upload": {"arn": arn, "status": "PROCESSING"}}, {"arn": arn})
        s.add_response("get_upload", {"upload": {"arn": arn, "status": "SUCCEEDED"}}, {"arn": arn})
    devices = [{"arn": DEV_XR, "name": "Apple iPhone XR", "model": "iPhone XR", "platform": "IOS", "os": "17.1"},
               {"arn": DEV_X, "name": "Apple iPhone X", "model": "iPhone X", "platform": "IOS", "os": "16.7"},
               {"arn": DEV_15, "name": "Apple iPhone 15", "model": "iPhone 15", "platform": "IOS", "os": "18.0"}]
    s.add_response("list_devices", {"devices": devices},
                   {"filters": [{"attribute": "PLATFORM", "operator": "EQUALS", "values": ["IOS"]}]})
    s.add_response("create_device_pool", {"devicePool": {"arn": f"{PROJECT}/pool"}},
                   {"projectArn": PROJECT, "name": "bench-pool",
                    "rules": [{"attribute": "ARN", "operator": "IN", "value": json.dumps([DEV_XR])}]})
    s.add_response("schedule_run", {"run": {"arn": RUN, "status": "SCHEDULING"}},
                   {"projectArn": PROJECT, "appArn": f"{PROJECT}/upload0", "devicePoolArn": f"{PROJECT}/pool",
                    "name": "bench", "test": {"type": "XCTEST", "testPackageArn": f"{PROJECT}/upload1"}})
    s.add_response("get_run", {"run": {"arn": RUN, "status": "RUNNING", "totalJobs": 1, "completedJobs": 0}},
                   {"arn": RUN})
    s.add_response("get_run", {"run": {"arn": RUN, "status": "COMPLETED", "result": "PASSED", "totalJobs": 1,
                                       "completedJobs": 1, "counters": {"passed": 1}}}, {"arn": RUN})
    z = _zip({"results/a.json": dumps(fixture("ok"))})
    _stub_collect(df, {"Customer Artifacts": z})
    http = FakeHttp({"https://s3.example/Customer Artifacts": z})
    stages = []
    run, outs = farm.bench_farm(df, PROJECT, "ios", app, pkg, ResultStore(tmp_path / "s"), ["iphonexr"],
                                name="bench", http=http, poll_s=0, sleep=lambda s: None,
                                progress=lambda stage, info: stages.append((stage, info.get("status"))))
    assert run["result"] == "PASSED" and [o.status for o in outs] == ["stored"]
    assert http.puts == [("https://put/0", b"ipa-bytes"), ("https://put/1", b"zip-bytes")]
    assert ("run", "RUNNING") in stages and ("run", "COMPLETED") in stages


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
        farm.upload(df, PROJECT, app, "IOS_APP", FakeHttp({}), sleep=lambda s: None)
    df.stub.add_client_error("list_jobs", "NotFoundException", "run not found")
    with pytest.raises(CollectError, match="list_jobs failed.*run not found"):
        farm.collect_farm(df, RUN, ResultStore(tmp_path / "s"), FakeHttp({}))
