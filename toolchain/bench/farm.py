"""AWS Device Farm: run the harness on many devices at once and fetch the results files.

Flow of :func:`bench_farm` (boto3 ``devicefarm`` client, region us-west-2, the only one):

1. ``create_upload`` the app (IOS_APP / ANDROID_APP) and the test package (XCTEST_TEST_PACKAGE /
   INSTRUMENTATION_TEST_PACKAGE), PUT each file to its pre-signed URL, poll ``get_upload``
   until SUCCEEDED.
2. Build a device pool: ``list_devices`` for the platform, keep the devices whose name or
   model matches a catalog device (``iPhone X`` matches "Apple iPhone X", not "iPhone XR") or a
   ``--farm-device`` pattern, ``create_device_pool`` with an ``ARN IN [...]`` rule.
3. ``schedule_run`` (test type XCTEST for iOS, INSTRUMENTATION for Android), poll ``get_run``
   with a progress callback until COMPLETED.
4. :func:`collect_farm`: for every job, ``list_artifacts(type=FILE)``; each CUSTOMER_ARTIFACT
   zip is downloaded and every ``.json`` under a ``results`` folder in it is read in memory
   (member names are labels only, never paths) into the store.

boto3 is an optional extra (``pip install '.[farm]'``); tests use botocore's Stubber, which
checks every request against the real API model. HTTP transfers go through a seam.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from toolchain.bench.schema import MAX_RESULT_BYTES
from toolchain.bench.store import AddOutcome, ResultStore, label
from toolchain.devices import parse_devices
from toolchain.errors import CollectError

log = logging.getLogger(__name__)

REGION = "us-west-2"
MAX_ARTIFACT_BYTES = 512 << 20
PLATFORM = {"ios": {"app": "IOS_APP", "package": "XCTEST_TEST_PACKAGE", "test": "XCTEST", "farm": "IOS"},
            "android": {"app": "ANDROID_APP", "package": "INSTRUMENTATION_TEST_PACKAGE", "test": "INSTRUMENTATION",
                        "farm": "ANDROID"}}
RUN_DONE = "COMPLETED"


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
    except Exception as e:  # botocore ClientError, NoCredentialsError, ...: one clear line
        raise CollectError(f"Device Farm {what} failed: {type(e).__name__}: {e}") from None


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
    devices = _pages(df.list_devices, "devices", "list_devices", filters=[
        {"attribute": "PLATFORM", "operator": "EQUALS", "values": [PLATFORM[platform]["farm"]]}])
    picked = match_devices(devices, catalog_keys, patterns)
    if not picked:
        raise CollectError(f"no {platform} device on Device Farm matches {catalog_keys + patterns}; "
                           f"available: {', '.join(sorted({d.get('name', '?') for d in devices})[:15]) or 'none'}")
    rule = {"attribute": "ARN", "operator": "IN", "value": json.dumps([d["arn"] for d in picked])}
    kw: dict[str, Any] = {"projectArn": project_arn, "name": name, "rules": [rule]}
    if max_devices:
        kw["maxDevices"] = max_devices
    pool = _call("create_device_pool", df.create_device_pool, **kw)["devicePool"]
    return pool["arn"], picked


def wait_for_run(df: Any, run_arn: str, poll_s: float = 30.0, timeout_s: float = 4 * 3600.0,
                 progress: Callable[[dict], None] | None = None, sleep: Callable[[float], None] = time.sleep) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        run = _call("get_run", df.get_run, arn=run_arn)["run"]
        if progress:
            progress(run)
        if run["status"] == RUN_DONE:
            return run
        if time.monotonic() > deadline:
            raise CollectError(f"run {run_arn} not complete after {timeout_s:.0f} s (status {run['status']}); "
                               f"collect later with `deploy collect farm --run-arn {run_arn}`")
        sleep(poll_s)


def _results_in_zip(data: bytes, source: str, store: ResultStore) -> list[AddOutcome]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        return [AddOutcome(source, "rejected", f"{label(source)}: not a zip archive ({e})")]
    outcomes = []
    with zf:
        for info in zf.infolist():
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            if info.is_dir() or not info.filename.endswith(".json") or "results" not in parts[:-1]:
                continue
            src = f"{source}!{info.filename}"
            if info.file_size > MAX_RESULT_BYTES:
                outcomes.append(AddOutcome(src, "rejected", f"{label(src)}: {info.file_size} bytes is larger than "
                                                            f"{MAX_RESULT_BYTES}: not extracted"))
                continue
            try:
                with zf.open(info) as fh:
                    member = fh.read(MAX_RESULT_BYTES + 1)
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                outcomes.append(AddOutcome(src, "rejected", f"{label(src)}: damaged zip member ({e})"))
                continue
            outcomes.append(store.add_bytes(member, src))
    return outcomes


def collect_farm(df: Any, run_arn: str, store: ResultStore, http: Http | None = None) -> list[AddOutcome]:
    """Download every job's customer artifacts of a run and store the results files inside."""
    http = http or Http()
    outcomes: list[AddOutcome] = []
    for job in _pages(df.list_jobs, "jobs", "list_jobs", arn=run_arn):
        device = (job.get("device") or {}).get("name") or job.get("name") or job["arn"]
        for art in _pages(df.list_artifacts, "artifacts", "list_artifacts", arn=job["arn"], type="FILE"):
            if art.get("type") != "CUSTOMER_ARTIFACT":
                continue
            source = f"farm:{device}:{art.get('name', 'artifact')}.{art.get('extension', 'zip')}"
            try:
                data = http.get(art["url"], MAX_ARTIFACT_BYTES)
            except Exception as e:  # noqa: BLE001 - one bad download must not lose the others
                outcomes.append(AddOutcome(source, "rejected", f"{label(source)}: download failed ({e})"))
                continue
            outcomes += _results_in_zip(data, source, store)
    return outcomes


def bench_farm(df: Any, project_arn: str, platform: str, app: Path, test_package: Path, store: ResultStore,
               devices: list[str], patterns: list[str] = (), name: str = "ocular-bench",
               max_devices: int | None = None, http: Http | None = None, poll_s: float = 30.0,
               progress: Callable[[str, dict], None] | None = None,
               sleep: Callable[[float], None] = time.sleep) -> tuple[dict, list[AddOutcome]]:
    """Upload, schedule on a pool built from the catalog, wait, collect. Returns (final run, outcomes)."""
    if platform not in PLATFORM:
        raise CollectError(f"unknown platform {platform!r}; known: {', '.join(PLATFORM)}")
    p = PLATFORM[platform]
    http = http or Http()
    say = progress or (lambda stage, info: None)
    say("upload", {"file": str(app)})
    app_arn = upload(df, project_arn, app, p["app"], http, sleep=sleep)
    say("upload", {"file": str(test_package)})
    pkg_arn = upload(df, project_arn, test_package, p["package"], http, sleep=sleep)
    pool_arn, picked = device_pool(df, project_arn, platform, list(devices), list(patterns), f"{name}-pool", max_devices)
    say("pool", {"devices": [d.get("name") for d in picked]})
    run = _call("schedule_run", df.schedule_run, projectArn=project_arn, appArn=app_arn, devicePoolArn=pool_arn,
                name=name, test={"type": p["test"], "testPackageArn": pkg_arn})["run"]
    final = wait_for_run(df, run["arn"], poll_s=poll_s, progress=lambda r: say("run", r), sleep=sleep)
    return final, collect_farm(df, run["arn"], store, http)
