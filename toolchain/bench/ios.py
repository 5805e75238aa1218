"""iOS: fetch results over USB and run a plan on a connected iPhone or iPad.

Collecting reads ``Documents/results/*.json`` of the harness app (it sets
``UIFileSharingEnabled``):

- ``house-arrest`` (Linux and macOS): pymobiledevice3's house-arrest service (AFC on the app's
  Documents). pymobiledevice3 is an optional extra (``pip install '.[ios]'``), imported only
  here and only when used; its API is async in recent releases and sync in older ones, both
  are accepted. Files are read into memory, so a device-side name never becomes a host path.
- ``devicectl`` (macOS with Xcode 15+): ``xcrun devicectl device copy from`` into a temporary
  folder, then every regular file there goes through the store.

``bench_ios`` installs the app (``devicectl device install app`` or ``pymobiledevice3 apps
install``), launches it with ``-autorun YES -plan BenchPlan/plan.json`` (read through UserDefaults' argument
domain), and collects until every run of the plan reported. Launching from Linux needs a
mounted developer disk image (``pymobiledevice3 mounter auto-mount``; iOS 17+ also a tunnel).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from toolchain.bench.schema import MAX_RESULT_BYTES, load_plan
from toolchain.bench.store import AddOutcome, ResultStore, is_safe_remote_name, label
from toolchain.errors import CollectError
from toolchain.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_BUNDLE_ID = "org.oculardeploy.bench"  # PRODUCT_BUNDLE_IDENTIFIER in ios_harness
DOCUMENTS_RESULTS = "/Documents/results"  # house-arrest VendDocuments root is the container
DEVICECTL_RESULTS = "Documents/results"
#: What ios_harness's AppDelegate reads (UserDefaults argument domain): run the bundled plan at once.
LAUNCH_ARGUMENTS = ["-autorun", "YES", "-plan", "BenchPlan/plan.json"]
INSTALL_HINT = "pip install '.[ios]' (pymobiledevice3), or on macOS use --via devicectl (Xcode 15+)"

#: (bundle_id, udid) -> a house-arrest service object (listdir, get_file_contents, optional stat);
#: its methods may be sync or async. Tests inject a fake here.
ServiceFactory = Callable[[str, "str | None"], Any]


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _pymobiledevice3_service(bundle_id: str, udid: str | None) -> Any:
    try:
        from pymobiledevice3.lockdown import create_using_usbmux
        from pymobiledevice3.services.house_arrest import HouseArrestService
    except ImportError:
        raise CollectError(f"pymobiledevice3 is not installed: {INSTALL_HINT}") from None
    try:
        lockdown = await _maybe(create_using_usbmux(serial=udid))
        create = getattr(HouseArrestService, "create", None)
        if create is not None:
            return await _maybe(create(lockdown, bundle_id=bundle_id, documents_only=True))
        return HouseArrestService(lockdown, bundle_id=bundle_id, documents_only=True)
    except CollectError:
        raise
    except Exception as e:  # noqa: BLE001 - pymobiledevice3's errors: no device, not paired, app missing
        raise CollectError(f"cannot open {bundle_id}'s Documents over USB ({type(e).__name__}: {e}); is the "
                           "device connected, unlocked and trusted, and the app installed?") from None


async def _collect_house_arrest(bundle_id: str, store: ResultStore, udid: str | None,
                                factory: ServiceFactory | None) -> list[AddOutcome]:
    service = await _maybe((factory or _pymobiledevice3_service)(bundle_id, udid))
    try:
        try:
            names = await _maybe(service.listdir(DOCUMENTS_RESULTS))
        except Exception as e:  # noqa: BLE001
            raise CollectError(f"{bundle_id}: cannot list {DOCUMENTS_RESULTS} ({type(e).__name__}: {e}); "
                               "has the app run a plan yet?") from None
        outcomes = []
        for name in names:
            if name in (".", "..") or not str(name).endswith(".json"):
                continue
            source = f"usb:{bundle_id}:{DOCUMENTS_RESULTS}/{name}"
            if not is_safe_remote_name(name):
                outcomes.append(AddOutcome(source, "rejected", f"{label(source)}: unsafe file name, not fetched"))
                continue
            path = f"{DOCUMENTS_RESULTS}/{name}"
            size = None
            if hasattr(service, "stat"):
                try:
                    size = int((await _maybe(service.stat(path))).get("st_size"))
                except Exception:  # noqa: BLE001 - size unknown: the limit is checked after reading
                    size = None
            if size is not None and size > MAX_RESULT_BYTES:
                outcomes.append(AddOutcome(source, "rejected", f"{label(source)}: {size} bytes is larger than "
                                                               f"{MAX_RESULT_BYTES}: not fetched"))
                continue
            try:
                data = await _maybe(service.get_file_contents(path))
            except Exception as e:  # noqa: BLE001
                outcomes.append(AddOutcome(source, "rejected", f"{label(source)}: cannot read ({e})"))
                continue
            outcomes.append(store.add_bytes(bytes(data), source))
        return outcomes
    finally:
        close = getattr(service, "close", None)
        if close is not None:
            await _maybe(close())


def _xcrun(args: list[str], timeout_s: float = 300.0) -> subprocess.CompletedProcess:
    exe = shutil.which("xcrun")
    if exe is None:
        raise CollectError("xcrun not found: devicectl needs macOS with Xcode 15+; elsewhere use --via house-arrest")
    cp = subprocess.run([exe, "devicectl", *args], capture_output=True, timeout=timeout_s)
    if cp.returncode != 0:
        msg = cp.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CollectError(f"`xcrun devicectl {' '.join(args)}` failed: {msg[-1] if msg else cp.returncode}")
    return cp


def _collect_devicectl(bundle_id: str, store: ResultStore, udid: str | None) -> list[AddOutcome]:
    if udid is None:
        raise CollectError("devicectl needs the device: give --udid (see `xcrun devicectl list devices`)")
    with tempfile.TemporaryDirectory(prefix="ios-results-") as tmp:
        _xcrun(["device", "copy", "from", "--device", udid, "--domain-type", "appDataContainer",
                "--domain-identifier", bundle_id, "--source", DEVICECTL_RESULTS, "--destination", tmp])
        root = Path(tmp).resolve()
        outcomes = []
        for p in sorted(root.rglob("*")):
            # Only regular files really inside the temp folder (a symlink could point anywhere).
            if p.is_symlink() or not p.is_file() or not p.resolve().is_relative_to(root) or p.suffix != ".json":
                continue
            outcomes.append(store.add_file(p, source=f"devicectl:{bundle_id}:{p.relative_to(root)}"))
        return outcomes


COLLECTORS: Registry[Callable[..., list[AddOutcome]]] = Registry("iOS transfer")
COLLECTORS.add("house-arrest", lambda bundle_id, store, udid, factory: asyncio.run(
    _collect_house_arrest(bundle_id, store, udid, factory)))
COLLECTORS.add("devicectl", lambda bundle_id, store, udid, factory: _collect_devicectl(bundle_id, store, udid))


def default_via() -> str:
    """house-arrest when pymobiledevice3 is importable, else devicectl on a Mac with xcrun."""
    import importlib.util

    if importlib.util.find_spec("pymobiledevice3") is None and sys.platform == "darwin" and shutil.which("xcrun"):
        return "devicectl"
    return "house-arrest"  # without pymobiledevice3 this reports the install hint


def collect_ios(bundle_id: str, store: ResultStore, udid: str | None = None, via: str | None = None,
                service_factory: ServiceFactory | None = None) -> list[AddOutcome]:
    """Copy the harness app's ``Documents/results/*.json`` into ``store``."""
    return COLLECTORS.get(via or default_via())(bundle_id, store, udid, service_factory)


def _run_tool(argv: list[str], what: str, timeout_s: float = 600.0) -> None:
    exe = shutil.which(argv[0])
    if exe is None:
        raise CollectError(f"{argv[0]} not found for {what}: {INSTALL_HINT}")
    cp = subprocess.run([exe, *argv[1:]], capture_output=True, timeout=timeout_s)
    if cp.returncode != 0:
        msg = (cp.stderr or cp.stdout).decode("utf-8", "replace").strip().splitlines()
        raise CollectError(f"{what} failed (`{' '.join(argv)}`): {msg[-1] if msg else cp.returncode}")


def install_and_launch(app: Path, bundle_id: str, plan_id: str, udid: str | None, via: str) -> None:
    """Install the built app and launch it with the plan id, through devicectl or pymobiledevice3's CLI."""
    if via == "devicectl":
        if udid is None:
            raise CollectError("devicectl needs the device: give --udid (see `xcrun devicectl list devices`)")
        _xcrun(["device", "install", "app", "--device", udid, str(app)])
        _xcrun(["device", "process", "launch", "--device", udid, "--terminate-existing", bundle_id,
                *LAUNCH_ARGUMENTS])
        return
    udid_args = ["--udid", udid] if udid else []
    _run_tool(["pymobiledevice3", "apps", "install", *udid_args, str(app)], "installing the app")
    _run_tool(["pymobiledevice3", "developer", "dvt", "launch", *udid_args,
               " ".join([bundle_id, *LAUNCH_ARGUMENTS])],
              "launching the app (needs a mounted developer disk image: `pymobiledevice3 mounter auto-mount`)")


def bench_ios(plan_dir: str | Path, app: str | Path, store: ResultStore, bundle_id: str = DEFAULT_BUNDLE_ID,
              udid: str | None = None, via: str | None = None, timeout_s: float = 1800.0, poll_s: float = 10.0,
              service_factory: ServiceFactory | None = None,
              progress: Callable[[int, int], None] | None = None) -> list[AddOutcome]:
    """Install ``app`` (built with the plan as its BenchPlan), launch it, collect until every run reported."""
    plan = load_plan(Path(plan_dir) / "plan.json")
    app = Path(app)
    if not app.exists():
        raise CollectError(f"{app} does not exist: build the harness (.app or .ipa) with the plan first")
    via = via or default_via()
    install_and_launch(app, bundle_id, plan["plan_id"], udid, via)
    want = len(plan["runs"])
    deadline = time.monotonic() + timeout_s
    seen: dict[str, AddOutcome] = {}
    while True:
        for o in collect_ios(bundle_id, store, udid, via, service_factory):
            seen[o.source] = o
        got = sum(1 for o in seen.values() if o.ok and o.run_id and _plan_of(store, o.run_id) == plan["plan_id"])
        if progress:
            progress(got, want)
        if got >= want:
            return list(seen.values())
        if time.monotonic() >= deadline:
            raise CollectError(f"plan {plan['plan_id']}: {got} of {want} results after {timeout_s:.0f} s; those "
                               f"are kept in {store.root}. Check the app, then `deploy collect ios`")
        time.sleep(poll_s)


def _plan_of(store: ResultStore, run_id: str) -> str | None:
    try:
        return store.get(run_id).get("plan_id")
    except Exception:  # noqa: BLE001
        return None
