"""AWS Device Farm as botocore's Stubber plays it: every request is checked against botocore's real
``devicefarm`` service model (``botocore/data/devicefarm/2015-06-23/service-2.json``), every response
shaped by it. On top, :class:`FarmRun` behaves like the service where the model cannot say:

- Files come off a device only from the paths the run declared in ``configuration.customerArtifactPaths``
  (``iosPaths`` / ``androidPaths``; API reference, CustomerArtifactPaths and ScheduleRunConfiguration):
  a run scheduled without them has device logs but no CUSTOMER_ARTIFACT zip at all.
- A job's artifacts exist once the job has finished; ``get_run`` moves from RUNNING to COMPLETED
  (ExecutionStatus in the model).
- iOS hosts run iOS 15 to 26 (developer guide, "Hosts for custom test environments"): ``list_devices``
  never lists an older iPhone, so an iPhone 6 cannot be in a pool.
- A run has no jobs until it is scheduled: ``list_jobs`` answers ``{"jobs": []}`` while ``get_run`` says
  SCHEDULING / PENDING (ExecutionStatus), and stays empty for good when the test package or spec failed
  at parsing: the run COMPLETES with ``result: ERRORED`` and ``resultCode: PARSING_FAILED``
  (ExecutionResultCode in the model; developer guide, "Runs").
- A job can end ERRORED or STOPPED (ExecutionResult) with a ``message``; it may have no customer artifacts.
- Any call may be refused with ``ThrottlingException`` (AWS common errors; botocore ``data/_retry.json``
  lists it among the throttling codes its own retry handler retries — the Stubber bypasses that handler).
- Custom mode (``test.testSpecArn``): ``customerArtifactPaths`` are not used; the job's "Customer Artifacts"
  zip holds what the spec left in ``$DEVICEFARM_LOG_DIR``, under ``Host_Machine_Files/$DEVICEFARM_LOG_DIR/``
  (developer guide, "Test spec reference": artifacts). The fake reads the uploaded spec: only a spec whose
  ``post_test`` pulls the app's results folder into ``$DEVICEFARM_LOG_DIR/<folder>`` and whose ``artifacts``
  name ``$DEVICEFARM_LOG_DIR`` brings the results back.

The artifact zip holds each pulled folder under its declared path (the member names are only labels
to the collector); each device's "app" writes one result per plan run (tests/fakes/harness_app.py).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from toolchain.bench.apps import APP_ID

PROJECT = "arn:aws:devicefarm:us-west-2:123456789012:project:abc"
RUN = "arn:aws:devicefarm:us-west-2:123456789012:run:abc/run1"

APP_RESULTS = {"ios": "Documents/results",
               "android": f"/sdcard/Android/data/{APP_ID}/files/results"}


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


class FakeHttp:
    """The pre-signed S3 transfers: PUTs recorded, GETs served from ``downloads``."""

    def __init__(self, downloads: dict[str, bytes] | None = None) -> None:
        self.downloads, self.puts = dict(downloads or {}), []

    def put(self, url, data):
        self.puts.append((url, data))

    def get(self, url, limit_bytes):
        return self.downloads[url]


def device(name: str, os_version: str, platform: str = "IOS") -> dict:
    key = name.replace(" ", "")[-12:]
    return {"arn": f"arn:aws:devicefarm:us-west-2::device:{key:0>32}", "name": name, "model": name.split(" ", 1)[-1],
            "platform": platform, "os": os_version}


def spec_folder(spec: str, app_results: str) -> str | None:
    """Where a custom-mode spec leaves the app's results in the artifact zip, or None if it does not."""
    import re

    m = re.search(r'pull "?' + re.escape(app_results) + r'/?\.?"? "?\$DEVICEFARM_LOG_DIR/([A-Za-z0-9_.-]+)/?"?', spec)
    if m is None or not re.search(r"^artifacts:\s*\n\s*- \$DEVICEFARM_LOG_DIR\s*$", spec, re.M):
        return None
    return f"Host_Machine_Files/$DEVICEFARM_LOG_DIR/{m.group(1)}"


def _declares(paths: list[str], folder: str) -> bool:
    """A declared path pulls ``folder`` when it is that folder or one of its parents."""
    f = folder.strip("/")
    return any(f == p.strip("/") or f.startswith(p.strip("/") + "/") for p in paths)


@dataclass
class FarmRun:
    """Queues the Stubber responses of one whole run; decides the artifacts from the real schedule_run request."""

    df: Any  # a botocore devicefarm client with .stub = Stubber(client), activated
    platform: str  # "ios" | "android"
    devices: list[dict]  # what list_devices returns (Device Farm's fleet for the platform)
    http: FakeHttp = field(default_factory=FakeHttp)
    plan: dict | None = None
    skip: dict[str, set[str]] = field(default_factory=dict)  # device name -> run keys its app never writes
    polls_before_done: int = 1
    scheduled: dict | None = None
    polls_scheduling: int = 0  # polls while the run is SCHEDULING: list_jobs is empty
    throttle_first_poll: bool = False
    job_results: dict[str, tuple[str, str]] = field(default_factory=dict)  # device name -> (result, message)

    def stub_uploads(self, app_name: str, pkg_name: str) -> None:
        kinds = {"ios": ("IOS_APP", "XCTEST_TEST_PACKAGE"),
                 "android": ("ANDROID_APP", "INSTRUMENTATION_TEST_PACKAGE", "INSTRUMENTATION_TEST_SPEC")}
        names = (app_name, pkg_name, "ocular-bench-spec.yml")
        for i, (name, kind) in enumerate(zip(names, kinds[self.platform])):
            arn = f"{PROJECT}/upload{i}"
            self.df.stub.add_response("create_upload",
                                      {"upload": {"arn": arn, "status": "INITIALIZED", "url": f"https://put/{i}"}},
                                      {"projectArn": PROJECT, "name": name, "type": kind,
                                       "contentType": "application/octet-stream"})
            self.df.stub.add_response("get_upload", {"upload": {"arn": arn, "status": "PROCESSING"}}, {"arn": arn})
            self.df.stub.add_response("get_upload", {"upload": {"arn": arn, "status": "SUCCEEDED"}}, {"arn": arn})

    def stub_pool(self, picked: list[dict], name: str = "bench") -> None:
        self.df.stub.add_response("list_devices", {"devices": self.devices},
                                  {"filters": [{"attribute": "PLATFORM", "operator": "EQUALS",
                                                "values": [self.platform.upper()]}]})
        self.df.stub.add_response("create_device_pool", {"devicePool": {"arn": f"{PROJECT}/pool"}},
                                  {"projectArn": PROJECT, "name": f"{name}-pool",
                                   "rules": [{"attribute": "ARN", "operator": "IN",
                                              "value": json.dumps([d["arn"] for d in picked])}]})

    def stub_schedule(self, picked: list[dict]) -> None:
        # No expected parameters: the request is still validated against the model, and what it asked for
        # (self.scheduled) decides, as on the real service, what comes back.
        self.df.stub.add_response("schedule_run", {"run": {"arn": RUN, "status": "SCHEDULING"}})

        def on_schedule(params, **_):
            self.scheduled = params
            spec = None
            if params["test"].get("testSpecArn"):
                spec = self.http.puts[-1][1].decode()  # the last upload before schedule_run is the spec
            self.stub_progress(picked, (params.get("configuration") or {}).get("customerArtifactPaths") or {}, spec)

        # provide-client-params runs before the Stubber matches the request: the run's outcome is queued
        # from what the code really asked for.
        self.df.meta.events.register_first("provide-client-params.devicefarm.ScheduleRun", on_schedule)

    def _job(self, i: int, d: dict) -> dict:
        job = {"arn": self.job_arn(i), "name": d["name"], "status": "COMPLETED", "result": "PASSED",
               "device": {"arn": d["arn"], "name": d["name"]}}
        if d["name"] in self.job_results:
            job["result"], job["message"] = self.job_results[d["name"]]
        return job

    def job_arn(self, i: int) -> str:
        return f"arn:aws:devicefarm:us-west-2:123456789012:job:abc/run1/{i:05d}"

    def stub_progress(self, picked: list[dict], artifact_paths: dict[str, list[str]], spec: str | None = None) -> None:
        from tests.fakes.harness_app import results_for

        s = self.df.stub
        n = len(picked)
        if self.throttle_first_poll:
            s.add_client_error("get_run", "ThrottlingException", "Rate exceeded", 400)
        for _ in range(self.polls_scheduling):
            s.add_response("get_run", {"run": {"arn": RUN, "status": "SCHEDULING", "totalJobs": 0}}, {"arn": RUN})
            s.add_response("list_jobs", {"jobs": []}, {"arn": RUN})
        for _ in range(self.polls_before_done):
            s.add_response("get_run", {"run": {"arn": RUN, "status": "RUNNING", "totalJobs": n, "completedJobs": 0}},
                           {"arn": RUN})
            s.add_response("list_jobs", {"jobs": [{"arn": self.job_arn(i), "name": d["name"], "status": "RUNNING",
                                                   "device": {"arn": d["arn"], "name": d["name"]}}
                                                  for i, d in enumerate(picked)]}, {"arn": RUN})
        s.add_response("get_run", {"run": {"arn": RUN, "status": "COMPLETED", "result": "PASSED", "totalJobs": n,
                                           "completedJobs": n, "counters": {"passed": n}}}, {"arn": RUN})
        s.add_response("list_jobs", {"jobs": [self._job(i, d) for i, d in enumerate(picked)]}, {"arn": RUN})
        declared = artifact_paths.get("iosPaths" if self.platform == "ios" else "androidPaths") or []
        folder = APP_RESULTS[self.platform]
        if spec is not None:  # custom mode: customerArtifactPaths play no part
            zip_folder = spec_folder(spec, folder)
        else:
            zip_folder = folder.strip("/") if _declares(declared, folder) else None
        for i, d in enumerate(picked):
            arts = [{"arn": f"{self.job_arn(i)}/log", "name": "Device log", "type": "DEVICE_LOG", "extension": "txt",
                     "url": f"https://s3.example/{i}/log"}]
            if zip_folder is not None:
                files = results_for(self.plan, None, self.platform, self.skip.get(d["name"], set())) if self.plan else []
                url = f"https://s3.example/{i}/customer"
                self.http.downloads[url] = zip_bytes({f"{zip_folder}/{name}": data for name, data in files})
                arts.append({"arn": f"{self.job_arn(i)}/customer", "name": "Customer Artifacts",
                             "type": "CUSTOMER_ARTIFACT", "extension": "zip", "url": url})
            s.add_response("list_artifacts", {"artifacts": arts}, {"arn": self.job_arn(i), "type": "FILE"})
