"""AWS Device Farm: run the harness on many devices at once; its artifacts are a :class:`Transport`.

Flow of :func:`bench_farm` (boto3 ``devicefarm`` client, region us-west-2, the only one):

1. ``create_upload`` the app (IOS_APP / ANDROID_APP) and the test package (XCTEST_TEST_PACKAGE /
   INSTRUMENTATION_TEST_PACKAGE), PUT each file to its pre-signed URL, poll ``get_upload``.
2. A device pool: ``list_devices`` for the platform, the devices whose name or model matches a
   catalog device (``iPhone X`` matches "Apple iPhone X", not "iPhone XR") or a ``--farm-device``
   pattern, ``create_device_pool`` with an ``ARN IN [...]`` rule. Device Farm's iOS hosts run
   iOS 15 to 26 (developer guide, "Hosts for custom test environments"): a catalog device whose last
   iOS is older — the iPhone 6 (12.5.7) — can never be in a pool, and is refused saying so.
3. ``schedule_run``. Android runs in *custom mode* (what AWS recommends): an INSTRUMENTATION_TEST_SPEC
   (:func:`android_test_spec`) runs the instrumentation and copies the results folder into
   ``$DEVICEFARM_LOG_DIR``, which custom mode collects. iOS XCTEST has no test-spec upload type in the
   service model, so iOS stays in standard mode with ``configuration.customerArtifactPaths`` naming the
   app's ``Documents/results`` (Device Farm copies files off the device only from those paths; API
   reference, CustomerArtifactPaths).
4. :class:`FarmTransport` lists every job's CUSTOMER_ARTIFACT zips; each ``.json`` under an
   ``ocular_results`` (custom mode) or ``results`` (standard mode) folder in them is one results file
   of that job's device (member names are labels only, never paths).
   :func:`~toolchain.bench.wait.wait_for_plan` polls it until the run completes and reports which
   device/run pairs never produced a file, and which jobs the service reports ERRORED or STOPPED
   (a run that failed at parsing, ``resultCode: PARSING_FAILED``, has no jobs at all).

boto3 is an optional extra (``pip install '.[farm]'``); tests use botocore's Stubber, which checks
every request against the real API model. HTTP transfers go through a seam (:class:`Http`).
"""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
import time
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from toolchain.bench.android import EXTERNAL_RESULTS
from toolchain.bench.apps import APP_ID
from toolchain.bench.ios import DEVICECTL_RESULTS
from toolchain.bench.store import ResultStore
from toolchain.bench.tool_errors import aws_error
from toolchain.bench.transport import ReadFailed, RemoteFile, TooLarge, Transport
from toolchain.bench.wait import PlanReport, wait_for_plan
from toolchain.devices import parse_devices
from toolchain.errors import CollectError

log = logging.getLogger(__name__)

REGION = "us-west-2"
MAX_ARTIFACT_BYTES = 512 << 20
#: The oldest iOS a Device Farm iOS host runs (macos_sequoia host: "iOS 15 to 26").
FARM_MIN_IOS = 15
#: ``spec``: the test-spec upload type of the platform's custom mode; XCTEST has none in the service model
#: (UploadType lists XCTEST_UI_TEST_SPEC only), so iOS stays in standard mode with customerArtifactPaths.
PLATFORM = {"ios": {"app": "IOS_APP", "package": "XCTEST_TEST_PACKAGE", "test": "XCTEST", "farm": "IOS", "spec": None},
            "android": {"app": "ANDROID_APP", "package": "INSTRUMENTATION_TEST_PACKAGE", "test": "INSTRUMENTATION",
                        "farm": "ANDROID", "spec": "INSTRUMENTATION_TEST_SPEC"}}
#: The folder the custom-mode test spec copies the results into, under ``$DEVICEFARM_LOG_DIR``.
SPEC_RESULTS = "ocular_results"
#: Zip member folders whose .json files are results: the spec's folder, and the app's own ``results``
#: (standard mode, where the zip holds the pulled customerArtifactPaths folder).
RESULT_FOLDERS = (SPEC_RESULTS, "results")
RUN_DONE = "COMPLETED"
#: ExecutionResult values that mean the run or job did not run the app to its end (service model enum).
FAILED_RESULTS = ("ERRORED", "STOPPED")


def artifact_paths(platform: str, package: str = APP_ID) -> dict[str, list[str]]:
    """``configuration.customerArtifactPaths`` for the harness: where each app writes its results.

    iOS paths are inside the app's sandbox (the XCTest host is the app, so PlanRunTests writes to the
    app's Documents/results); Android's is the external files folder HarnessSession writes to.
    """
    if platform == "ios":
        return {"iosPaths": [DEVICECTL_RESULTS]}
    return {"androidPaths": [EXTERNAL_RESULTS.format(package=package)]}


def android_test_spec(package: str = "org.oculardeploy.bench") -> str:
    """Device Farm custom-mode test spec: run the harness instrumentation, then copy its results folder
    into ``$DEVICEFARM_LOG_DIR``, the folder custom mode collects as the job's "Customer Artifacts".

    The test phase is AWS's default Android instrumentation spec (developer guide, "Test spec reference"
    and "Android instrumentation" custom environment); ``post_test`` runs whether the test passed or not,
    so the results of a run that crashed half-way still come back. ExecuTorch's Android benchmark spec
    pulls its results into ``$DEVICEFARM_LOG_DIR`` the same way.
    """
    results = EXTERNAL_RESULTS.format(package=package)
    return f"""version: 0.1
# Written by `deploy bench farm` (toolchain/bench/farm.py): custom mode for the ocular harness.
phases:
  install:
    commands:
  pre_test:
    commands:
  test:
    commands:
      - echo "Running the harness instrumentation"
      - |
        adb -s "$DEVICEFARM_DEVICE_UDID" shell "am instrument -r -w --no-window-animation $DEVICEFARM_TEST_PACKAGE_NAME/$DEVICEFARM_TEST_PACKAGE_RUNNER 2>&1 || echo ': -1'" | tee $DEVICEFARM_LOG_DIR/instrument.log
  post_test:
    commands:
      - mkdir -p "$DEVICEFARM_LOG_DIR/{SPEC_RESULTS}"
      - adb -s "$DEVICEFARM_DEVICE_UDID" pull "{results}/." "$DEVICEFARM_LOG_DIR/{SPEC_RESULTS}/" || true
artifacts:
  - $DEVICEFARM_LOG_DIR
"""


@dataclass
class Http:
    """Transfers to/from pre-signed S3 URLs (a seam: tests pass a fake)."""

    timeout_s: float = 300.0

    def put(self, url: str, data: bytes) -> None:
        req = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - AWS pre-signed https URL
            if resp.status >= 300:
                raise CollectError(f"upload to Device Farm failed: HTTP {resp.status}")

    def get(self, url: str, limit_bytes: int) -> bytes:
        with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:  # noqa: S310
            data = resp.read(limit_bytes + 1)
        if len(data) > limit_bytes:
            raise CollectError(f"artifact larger than {limit_bytes} bytes: not downloaded")
        return data


def client(region: str = REGION) -> Any:
    try:
        import boto3
    except ImportError:
        raise CollectError("boto3 is not installed: pip install '.[farm]'") from None
    return boto3.client("devicefarm", region_name=region)


def _call(what: str, fn: Callable[..., dict], **kw: Any) -> dict:
    try:
        return fn(**kw)
    except Exception as e:  # botocore ClientError, NoCredentialsError, ...: one clear line (Transient if throttled)
        raise aws_error(what, e) from None


def _pages(fn: Callable[..., dict], key: str, what: str, **kw: Any) -> list[dict]:
    out, token = [], None
    while True:
        page = _call(what, fn, **kw, **({"nextToken": token} if token else {}))
        out += page.get(key, [])
        token = page.get("nextToken")
        if not token:
            return out


def upload(df: Any, project_arn: str, path: Path, kind: str, http: Http, poll_s: float = 5.0,
           timeout_s: float = 900.0, sleep: Callable[[float], None] = time.sleep) -> str:
    """Upload one file; returns its ARN once Device Farm has processed it."""
    path = Path(path)
    if not path.is_file():
        raise CollectError(f"{path} is not a file (Device Farm takes an .ipa/.apk and a zipped test package)")
    up = _call("create_upload", df.create_upload, projectArn=project_arn, name=path.name, type=kind,
               contentType="application/octet-stream")["upload"]
    http.put(up["url"], path.read_bytes())
    deadline = time.monotonic() + timeout_s
    while True:
        u = _call("get_upload", df.get_upload, arn=up["arn"])["upload"]
        if u["status"] == "SUCCEEDED":
            return u["arn"]
        if u["status"] == "FAILED":
            raise CollectError(f"Device Farm rejected {path.name}: {u.get('message') or u.get('metadata') or 'no reason'}")
        if time.monotonic() > deadline:
            raise CollectError(f"Device Farm did not process {path.name} within {timeout_s:.0f} s")
        sleep(poll_s)


def unreachable_on_farm(catalog_keys: list[str]) -> list[str]:
    """Catalog devices Device Farm can never provide, each with why (its iOS hosts run iOS 15-26).

    >>> unreachable_on_farm(["iphone6", "iphonexr"])
    ['iPhone 6: its last iOS is 12.5.7; Device Farm runs iOS 15 to 26 only']
    """
    return [f"{d.name}: its last iOS is {d.last_os}; Device Farm runs iOS {FARM_MIN_IOS} to 26 only"
            for d in parse_devices(catalog_keys) if not _on_farm(d)]


def _on_farm(d: Any) -> bool:
    return d.platform != "ios" or d.last_os_major >= FARM_MIN_IOS


def match_devices(farm_devices: list[dict], catalog_keys: list[str], patterns: list[str]) -> list[dict]:
    """Farm devices whose name/model names a catalog device (word-bounded) or contains a pattern."""
    regexes = [re.compile(rf"(?<![A-Za-z0-9]){re.escape(d.name)}(?![A-Za-z0-9])", re.I)
               for d in parse_devices(catalog_keys) if d.key != "android"]
    regexes += [re.compile(re.escape(p), re.I) for p in patterns]
    picked = []
    for d in farm_devices:
        text = f"{d.get('name', '')} | {d.get('model', '')}"
        if any(r.search(text) for r in regexes):
            picked.append(d)
    return picked


def device_pool(df: Any, project_arn: str, platform: str, catalog_keys: list[str], patterns: list[str],
                name: str, max_devices: int | None = None) -> tuple[str, list[dict]]:
    reachable = [d for d in parse_devices(catalog_keys) if _on_farm(d)]
    if catalog_keys and not reachable and not patterns:
        raise CollectError("no Device Farm pool can hold " + "; ".join(unreachable_on_farm(catalog_keys)))
    devices = _pages(df.list_devices, "devices", "list_devices", filters=[
        {"attribute": "PLATFORM", "operator": "EQUALS", "values": [PLATFORM[platform]["farm"]]}])
    picked = match_devices(devices, [d.key for d in reachable], patterns)
    if not picked:
        raise CollectError(f"no {platform} device on Device Farm matches {catalog_keys + list(patterns)}; "
                           f"available: {', '.join(sorted({d.get('name', '?') for d in devices})[:15]) or 'none'}")
    rule = {"attribute": "ARN", "operator": "IN", "value": json.dumps([d["arn"] for d in picked])}
    kw: dict[str, Any] = {"projectArn": project_arn, "name": name, "rules": [rule]}
    if max_devices:
        kw["maxDevices"] = max_devices
    pool = _call("create_device_pool", df.create_device_pool, **kw)["devicePool"]
    return pool["arn"], picked


class FarmTransport(Transport):
    """A Device Farm run's customer artifacts: one group per job (device); results are zip members."""

    name = "devicefarm"

    def __init__(self, df: Any, run_arn: str, http: Http | None = None) -> None:
        self.df, self.run_arn, self.http = df, run_arn, http or Http()
        self._zips: dict[str, zipfile.ZipFile | str] = {}  # artifact arn -> zip, or why it is unusable
        self._jobs: list[dict] | None = None
        self.run: dict | None = None

    def jobs(self) -> list[dict]:
        self._jobs = _pages(self.df.list_jobs, "jobs", "list_jobs", arn=self.run_arn)
        return self._jobs

    @staticmethod
    def device_of(job: dict) -> str:
        return (job.get("device") or {}).get("name") or job.get("name") or job["arn"]

    def groups(self) -> list[str | None]:
        return [self.device_of(j) for j in (self._jobs if self._jobs is not None else self.jobs())]

    def finished(self) -> bool:
        self.run = _call("get_run", self.df.get_run, arn=self.run_arn)["run"]
        return self.run.get("status") == RUN_DONE

    def failures(self) -> list[str]:
        """The run's and each job's ERRORED/STOPPED result, and a run that failed before any job (PARSING_FAILED)."""
        out = []
        run = self.run or {}
        if run.get("resultCode") or run.get("result") in FAILED_RESULTS:
            why = run.get("resultCode") or run.get("result")
            out.append(f"run {why}: {run.get('message') or 'no message from Device Farm'}")
        for job in self._jobs or []:
            if job.get("result") in FAILED_RESULTS:
                out.append(f"{self.device_of(job)}: job {job['result']}: {job.get('message') or 'no message'}")
        return out

    def _zip(self, art: dict) -> zipfile.ZipFile | str:
        if art["arn"] not in self._zips:
            try:
                data = self.http.get(art["url"], MAX_ARTIFACT_BYTES)
                self._zips[art["arn"]] = zipfile.ZipFile(io.BytesIO(data))
            except zipfile.BadZipFile as e:
                self._zips[art["arn"]] = f"not a zip archive ({e})"
            except Exception as e:  # noqa: BLE001 - one bad download must not lose the others
                return f"download failed ({e})"  # not cached: retried on the next listing
        return self._zips[art["arn"]]

    def list(self) -> list[RemoteFile]:
        out: list[RemoteFile] = []
        for job in self.jobs():
            if job.get("status") not in (None, RUN_DONE):
                continue  # artifacts appear when the job has finished
            device = self.device_of(job)
            for art in _pages(self.df.list_artifacts, "artifacts", "list_artifacts", arn=job["arn"], type="FILE"):
                if art.get("type") != "CUSTOMER_ARTIFACT":
                    continue
                source = f"farm:{device}:{art.get('name', 'artifact')}.{art.get('extension', 'zip')}"
                zf = self._zip(art)
                if isinstance(zf, str):
                    out.append(RemoteFile(f"{art['arn'].rsplit('/', 1)[-1]}.json", source, group=device, ref=zf))
                    continue
                for info in zf.infolist():
                    parts = PurePosixPath(info.filename.replace("\\", "/")).parts
                    if (info.is_dir() or not info.filename.endswith(".json")
                            or not any(f in parts[:-1] for f in RESULT_FOLDERS)):
                        continue
                    out.append(RemoteFile(PurePosixPath(parts[-1]).name, f"{source}!{info.filename}", info.file_size,
                                          group=device, ref=(zf, info)))
        return out

    def read(self, file: RemoteFile, limit_bytes: int) -> bytes:
        if isinstance(file.ref, str):
            raise ReadFailed(file.ref)
        zf, info = file.ref
        try:
            with zf.open(info) as fh:
                data = fh.read(limit_bytes + 1)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as e:
            # zlib.error: corrupt deflate data; NotImplementedError: an unknown compression method;
            # RuntimeError: an encrypted member. Each is one damaged file, not the end of the collection.
            raise ReadFailed(f"damaged zip member ({type(e).__name__}: {e})") from None
        if len(data) > limit_bytes:
            raise TooLarge(f"member is over {limit_bytes} bytes")
        return data


def collect_farm(df: Any, run_arn: str, store: ResultStore, http: Http | None = None,
                 plan: dict | None = None) -> PlanReport:
    """Store every results file of a run; the report names each job (and, with a plan, each run) that has none."""
    transport = FarmTransport(df, run_arn, http)
    report = wait_for_plan(transport, plan, store, None, timeout_s=0, poll_s=0, sleep=lambda s: None)
    report.timed_out = False  # one look, not a wait
    status = (transport.run or {}).get("status")
    if status != RUN_DONE and not report.complete:
        report.problem = f"run {run_arn} is {status}: jobs still running have no artifacts yet; collect again later"
    return report


def bench_farm(df: Any, project_arn: str, platform: str, app: Path, test_package: Path, store: ResultStore,
               devices: list[str], patterns: list[str] = (), plan: dict | None = None, name: str = "ocular-bench",
               max_devices: int | None = None, http: Http | None = None, poll_s: float = 30.0,
               timeout_s: float = 4 * 3600.0, package: str = APP_ID,
               progress: Callable[[str, dict], None] | None = None,
               sleep: Callable[[float], None] = time.sleep) -> tuple[dict, PlanReport]:
    """Upload, schedule on a pool built from the catalog, wait until the run completes, collect.

    Returns (the final run, the report); ``report.missing`` names every device/run without a results file.
    """
    if platform not in PLATFORM:
        raise CollectError(f"unknown platform {platform!r}; known: {', '.join(PLATFORM)}")
    if plan is not None:
        never = unreachable_on_farm([plan["device"]])
        if never:
            raise CollectError(f"plan {plan['plan_id']} is for the " + never[0]
                               + ": run it over USB (`deploy bench ios`), not on Device Farm")
    p = PLATFORM[platform]
    http = http or Http()
    say = progress or (lambda stage, info: None)
    skipped = unreachable_on_farm(list(devices))
    if skipped:
        say("pool", {"skipped": skipped})
    say("upload", {"file": str(app)})
    app_arn = upload(df, project_arn, app, p["app"], http, sleep=sleep)
    say("upload", {"file": str(test_package)})
    pkg_arn = upload(df, project_arn, test_package, p["package"], http, sleep=sleep)
    test: dict[str, Any] = {"type": p["test"], "testPackageArn": pkg_arn}
    if p["spec"]:  # custom mode: the spec copies the results into $DEVICEFARM_LOG_DIR, which Device Farm collects
        with tempfile.TemporaryDirectory(prefix="farm-spec-") as tmp:
            spec = Path(tmp) / "ocular-bench-spec.yml"
            spec.write_text(android_test_spec(package))
            say("upload", {"file": spec.name})
            test["testSpecArn"] = upload(df, project_arn, spec, p["spec"], http, sleep=sleep)
    pool_arn, picked = device_pool(df, project_arn, platform, list(devices), list(patterns), f"{name}-pool", max_devices)
    say("pool", {"devices": [d.get("name") for d in picked]})
    # customerArtifactPaths is what standard mode pulls; custom mode collects the spec's artifacts instead.
    config = {} if p["spec"] else {"configuration": {"customerArtifactPaths": artifact_paths(platform, package)}}
    run = _call("schedule_run", df.schedule_run, projectArn=project_arn, appArn=app_arn, devicePoolArn=pool_arn,
                name=name, test=test, **config)["run"]
    say("scheduled", {"arn": run["arn"]})
    transport = FarmTransport(df, run["arn"], http)
    report = wait_for_plan(transport, plan, store, None, timeout_s=timeout_s, poll_s=poll_s, sleep=sleep,
                           progress=lambda r: say("run", dict(transport.run or {}, found=len(r.found),
                                                              expected=r.expected)))
    return transport.run or run, report
