"""Android: fetch results over ``adb`` and run a plan on a connected device.

The harness app writes one results file per run into its private files folder
(``files/results`` under the app's data directory). ``adb exec-out run-as PKG`` reads that
folder for a debuggable build (what ``deploy bench`` installs); for a release build the app
also mirrors results to its external files folder, read without ``run-as``. Files are read
into memory one by one (``cat``), so a device-side name never becomes a host path; names
are checked before they are asked for.

Running a plan: ``adb push`` the plan folder to :data:`DEVICE_PLAN_ROOT`, start the activity
with its ``plan.json`` as the ``plan`` extra, then collect until every run of the plan has a
result (or the timeout passes; what arrived is kept).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from toolchain.bench.schema import MAX_RESULT_BYTES, load_plan
from toolchain.bench.store import AddOutcome, ResultStore, is_safe_remote_name, label
from toolchain.errors import CollectError

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "org.oculardeploy.bench"
DEFAULT_ACTIVITY = ".MainActivity"  # android_harness/app: MainActivity reads the "plan" extra
PLAN_EXTRA = "plan"  # a plan.json path on the device
RESULTS_DIR = "files/results"  # relative to the app's data dir (run-as starts there)
EXTERNAL_RESULTS = "/sdcard/Android/data/{package}/files/results"
#: The app's external files folder: adb can write it and the app reads it without permissions
#: (apps cannot read /data/local/tmp under SELinux).
DEVICE_PLAN_ROOT = "/sdcard/Android/data/{package}/files/plans"


@dataclass
class Adb:
    """A thin ``adb`` wrapper; ``adb`` is found on PATH or through ``$ADB``."""

    serial: str | None = None
    exe: str | None = None
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        self.exe = self.exe or os.environ.get("ADB") or shutil.which("adb")
        if not self.exe:
            raise CollectError("adb not found: install Android platform-tools (Debian: apt-get install adb) "
                               "or set $ADB")

    def _argv(self, args: list[str]) -> list[str]:
        return [self.exe, *(["-s", self.serial] if self.serial else []), *args]

    def run(self, args: list[str], check: bool = True, limit_bytes: int | None = None) -> subprocess.CompletedProcess:
        """Run adb; with ``limit_bytes`` stdout is cut there (an oversized file is not read whole)."""
        argv = self._argv(args)
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            raise CollectError(f"cannot run {self.exe}: {e.strerror or e}") from None
        try:
            if limit_bytes is None:
                out, err = proc.communicate(timeout=self.timeout_s)
            else:
                out = proc.stdout.read(limit_bytes + 1)
                if len(out) > limit_bytes:
                    proc.kill()
                err = proc.communicate(timeout=self.timeout_s)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            raise CollectError(f"`{' '.join(argv)}` did not finish in {self.timeout_s:.0f} s") from None
        cp = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        if check and proc.returncode != 0 and not (limit_bytes is not None and len(out) > limit_bytes):
            msg = (err or out).decode("utf-8", "replace").strip().splitlines()
            raise CollectError(f"`adb {' '.join(args)}` failed: {msg[-1] if msg else f'exit {proc.returncode}'}")
        return cp

    def devices(self) -> list[str]:
        lines = self.run(["devices"]).stdout.decode("utf-8", "replace").splitlines()
        return [ln.split()[0] for ln in lines[1:] if ln.strip().endswith("device")]

    def require_device(self) -> None:
        found = self.devices()
        if not found:
            raise CollectError("no Android device is connected (`adb devices` lists none): plug one in and "
                               "accept the USB debugging prompt")
        if self.serial is None and len(found) > 1:
            raise CollectError(f"{len(found)} devices connected ({', '.join(found)}): choose one with --serial")
        if self.serial is not None and self.serial not in found:
            raise CollectError(f"device {self.serial} is not connected; connected: {', '.join(found)}")


def _locations(package: str) -> list[tuple[str, str, Callable[..., list[str]]]]:
    """(description, folder, argv builder for a command there) for the private and external folders."""
    external = EXTERNAL_RESULTS.format(package=package)
    return [(f"run-as {package} {RESULTS_DIR}", RESULTS_DIR, lambda *cmd: ["exec-out", "run-as", package, *cmd]),
            (external, external, lambda *cmd: ["exec-out", *cmd])]


def collect_android(package: str, store: ResultStore, adb: Adb | None = None) -> list[AddOutcome]:
    """Copy every results file of ``package`` from the device into ``store``."""
    adb = adb or Adb()
    adb.require_device()
    problems = []
    for where, folder, argv in _locations(package):
        listing = adb.run(argv("ls", "-1", folder), check=False)
        if listing.returncode != 0:
            problems.append(f"{where}: {listing.stderr.decode('utf-8', 'replace').strip() or 'not readable'}")
            continue
        outcomes = []
        for name in listing.stdout.decode("utf-8", "replace").splitlines():
            name = name.strip("\r")
            if not name.endswith(".json"):
                continue  # never fetched: temporary files the app writes before renaming, other files
            source = f"adb:{package}:{folder}/{name}"
            if not is_safe_remote_name(name):
                outcomes.append(AddOutcome(source, "rejected", f"{label(source)}: unsafe file name, not fetched"))
                continue
            cp = adb.run(argv("cat", f"{folder}/{name}"), check=False, limit_bytes=MAX_RESULT_BYTES)
            if len(cp.stdout) > MAX_RESULT_BYTES:
                outcomes.append(AddOutcome(source, "rejected", f"{label(source)}: larger than {MAX_RESULT_BYTES} "
                                                               "bytes: not a results file (left on the device)"))
            elif cp.returncode != 0:
                outcomes.append(AddOutcome(source, "rejected", f"{label(source)}: cannot read: "
                                           f"{cp.stderr.decode('utf-8', 'replace').strip()}"))
            else:
                outcomes.append(store.add_bytes(cp.stdout, source))
        return outcomes
    raise CollectError(f"cannot list results of {package}: " + "; ".join(problems)
                       + " (is the app installed, and a debuggable build?)")


def bench_android(plan_dir: str | Path, store: ResultStore, package: str = DEFAULT_PACKAGE,
                  activity: str = DEFAULT_ACTIVITY, adb: Adb | None = None, timeout_s: float = 1800.0,
                  poll_s: float = 5.0, progress: Callable[[int, int], None] | None = None) -> list[AddOutcome]:
    """Push a plan, start the harness with it and collect until every run reported (or time out)."""
    plan_dir = Path(plan_dir)
    plan = load_plan(plan_dir / "plan.json")
    adb = adb or Adb()
    adb.require_device()
    root = DEVICE_PLAN_ROOT.format(package=package)
    remote = f"{root}/{plan['plan_id']}"
    adb.run(["shell", "rm", "-rf", remote])
    adb.run(["shell", "mkdir", "-p", root])
    adb.run(["push", str(plan_dir), remote])
    adb.run(["shell", "am", "start", "-W", "-S", "-n", f"{package}/{activity}", "--es", PLAN_EXTRA,
             f"{remote}/plan.json"])
    expected = {r["key"] for r in plan["runs"]}
    deadline = time.monotonic() + timeout_s
    outcomes: dict[str, AddOutcome] = {}
    while True:
        for o in collect_android(package, store, adb):
            outcomes[o.source] = o
        done = {e.run_id for e in store.entries()}
        got = sum(1 for o in outcomes.values() if o.ok and o.run_id in done and _in_plan(store, o, plan["plan_id"]))
        if progress:
            progress(got, len(expected))
        if got >= len(expected):
            return list(outcomes.values())
        if time.monotonic() >= deadline:
            raise CollectError(f"plan {plan['plan_id']}: {got} of {len(expected)} results after {timeout_s:.0f} s; "
                               f"those are kept in {store.root}. Check the app on the device, then "
                               f"`deploy collect android --package {package}`")
        time.sleep(poll_s)


def _in_plan(store: ResultStore, o: AddOutcome, plan_id: str) -> bool:
    try:
        return store.get(o.run_id).get("plan_id") == plan_id
    except Exception:  # noqa: BLE001 - a removed or unreadable file simply does not count
        return False
