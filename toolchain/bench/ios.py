"""iOS: two transports for the harness's ``Documents/results`` — pymobiledevice3 and devicectl — and which to use.

- ``pymobiledevice3`` (Linux and macOS, every iOS the harness supports): house-arrest (AFC on the
  app's Documents, ``VendDocuments``). The device refuses it unless the installed app sets
  ``UIFileSharingEnabled`` (the harness does); pymobiledevice3 then raises ``InstallationLookupFailed``.
  Launching needs a mounted developer disk image (iOS 17+: a tunnel too). An optional extra
  (``pip install '.[ios]'``), imported only here and only when used; async and sync APIs both work.
- ``devicectl`` (macOS, Xcode 15+): Apple's CoreDevice tool. CoreDevice handles iOS 17 and later
  only: an older device is listed with ``pairingState: unsupported`` and no UDID, and every
  ``devicectl device ... --device UDID`` fails with CoreDeviceError 1000 "The specified device was
  not found" (callstack/agent-device#331, sweetpad-dev/sweetpad#224, flutter_tools core_devices_test).

:func:`choose_via` picks pymobiledevice3 for any device below iOS 17 (iPhone 6, iPhone X, iPad Air 2
always; an iPhone XR or iPad 7 that was never updated) and says why.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from toolchain.bench.apps import APP_ID, WAIT_TIMEOUT_S
from toolchain.bench.schema import load_plan
from toolchain.bench.store import ResultStore
from toolchain.bench.transport import (Launch, ReadFailed, RemoteFile, RemoteFolderMissing, TooLarge, Transient,
                                       Transport, check_launch_id, collect, new_launch_id)
from toolchain.bench.tool_errors import LOST_CONNECTION, devicectl_copy_error
from toolchain.bench.wait import PlanReport, wait_for_plan
from toolchain.devices import get_device
from toolchain.errors import CollectError
from toolchain.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_BUNDLE_ID = APP_ID  # PRODUCT_BUNDLE_IDENTIFIER in ios_harness
DOCUMENTS_RESULTS = "/Documents/results"  # house-arrest VendDocuments root is the container
DEVICECTL_RESULTS = "Documents/results"
#: CoreDevice (devicectl) handles iOS 17 and later only.
DEVICECTL_MIN_IOS = 17
INSTALL_HINT = "pip install '.[ios]' (pymobiledevice3), or on macOS with an iOS 17+ device use --via devicectl"

#: (bundle_id, udid) -> a house-arrest service object (listdir, get_file_contents, optional stat,
#: set_file_contents, makedirs); its methods may be sync or async. Tests inject a fake here.
ServiceFactory = Callable[[str, "str | None"], Any]


def launch_arguments(launch: Launch) -> list[str]:
    """What ios_harness's AppDelegate reads through UserDefaults' argument domain."""
    args = ["-autorun", "YES", "-launch_id", check_launch_id(launch.launch_id)]
    return args + (["-plan", launch.plan_ref] if launch.plan_ref else [])


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _tool(argv: list[str], what: str, timeout_s: float = 600.0,
          error: Callable[[str, str], CollectError] | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which(argv[0])
    if exe is None:
        hint = ("devicectl needs macOS with Xcode 15+; elsewhere use --via pymobiledevice3" if argv[0] == "xcrun"
                else INSTALL_HINT)
        raise CollectError(f"{argv[0]} not found for {what}: {hint}")
    cp = subprocess.run([exe, *argv[1:]], capture_output=True, timeout=timeout_s)
    if cp.returncode != 0:
        text = (cp.stderr or cp.stdout).decode("utf-8", "replace").strip()
        lines = text.splitlines()
        msg = f"{what} failed (`{' '.join(argv)}`): {lines[-1] if lines else f'exit {cp.returncode}'}"
        raise (error or (lambda _text, m: CollectError(m)))(text, msg)
    return cp


def _house_arrest_error(bundle_id: str, e: Exception) -> CollectError:
    text = f"{type(e).__name__}: {e}"
    if type(e).__name__ == "AppNotInstalledError" or "ApplicationLookupFailed" in text:
        return CollectError(f"{bundle_id} is not installed on the device ({text}): install the harness first")
    if "InstallationLookupFailed" in text:
        return CollectError(f"the device refused {bundle_id}'s Documents ({text}): the installed build has file "
                            "sharing off (UIFileSharingEnabled) or is not a development-signed build; rebuild "
                            "ios_harness (its Info.plist sets UIFileSharingEnabled) and reinstall")
    return CollectError(f"cannot open {bundle_id}'s Documents over USB ({text}); is the device connected, "
                        "unlocked and trusted?")


class HouseArrestTransport(Transport):
    """pymobiledevice3's house-arrest: AFC on the app's Documents (one event loop for the async API)."""

    name = "pymobiledevice3"

    def __init__(self, bundle_id: str = DEFAULT_BUNDLE_ID, udid: str | None = None,
                 service_factory: ServiceFactory | None = None) -> None:
        self.bundle_id, self.udid = bundle_id, udid
        self._factory = service_factory or _pymobiledevice3_service
        self._loop = asyncio.new_event_loop()
        self._service: Any = None

    def _run(self, value: Any) -> Any:
        return self._loop.run_until_complete(_maybe(value))

    def _svc(self) -> Any:
        if self._service is None:
            try:
                self._service = self._run(self._factory(self.bundle_id, self.udid))
            except CollectError:
                raise
            except Exception as e:  # noqa: BLE001 - pymobiledevice3's errors: no device, not paired, app missing
                if type(e).__name__ in LOST_CONNECTION:
                    raise Transient(f"cannot reach the device for {self.bundle_id} ({type(e).__name__}: {e})") from None
                raise _house_arrest_error(self.bundle_id, e) from None
        return self._service

    def _lost(self, e: Exception) -> None:
        """A dead connection: drop the service (the next try opens a new one) and raise Transient."""
        if type(e).__name__ in LOST_CONNECTION:
            self._service = None  # its socket is gone: closing it would only fail again
            raise Transient(f"the connection to the device dropped ({type(e).__name__}: {e})") from None

    def list(self) -> list[RemoteFile]:
        svc = self._svc()
        try:
            names = self._run(svc.listdir(DOCUMENTS_RESULTS))
        except Exception as e:  # noqa: BLE001
            self._lost(e)
            if type(e).__name__ == "AfcFileNotFoundError" or isinstance(e, FileNotFoundError):
                raise RemoteFolderMissing(f"{self.bundle_id} has no {DOCUMENTS_RESULTS} yet: has the app run a plan "
                                          "yet?") from None
            raise CollectError(f"{self.bundle_id}: cannot list {DOCUMENTS_RESULTS} ({type(e).__name__}: {e})") from None
        out = []
        for name in names:
            name = str(name)
            if name in (".", "..", ""):
                continue
            size = None
            if name.endswith(".json") and hasattr(svc, "stat"):
                try:
                    size = int(self._run(svc.stat(f"{DOCUMENTS_RESULTS}/{name}")).get("st_size"))
                except Exception:  # noqa: BLE001 - size unknown: the limit is checked after reading
                    size = None
            out.append(RemoteFile(name, f"usb:{self.bundle_id}:{DOCUMENTS_RESULTS}/{name}", size))
        return out

    def read(self, file: RemoteFile, limit_bytes: int) -> bytes:
        try:
            data = bytes(self._run(self._svc().get_file_contents(f"{DOCUMENTS_RESULTS}/{file.name}")))
        except Transient:
            raise
        except Exception as e:  # noqa: BLE001
            self._lost(e)
            raise ReadFailed(f"{type(e).__name__}: {e}") from None
        if len(data) > limit_bytes:
            raise TooLarge(f"{len(data)} bytes")
        return data

    def write(self, local: Path, remote: str) -> str:
        """Copy a folder into the app's Documents, one file at a time (AFC writes single files)."""
        svc, local = self._svc(), Path(local)
        for p in sorted(local.rglob("*")):
            rel = p.relative_to(local).as_posix()
            target = f"/Documents/{remote.strip('/')}/{rel}"
            if p.is_dir():
                self._run(svc.makedirs(target))
            elif p.is_file() and not p.is_symlink():
                self._run(svc.makedirs(target.rsplit("/", 1)[0]))
                self._run(svc.set_file_contents(target, p.read_bytes()))
        return remote

    def install(self, app: Path) -> None:
        _tool(["pymobiledevice3", "apps", "install", *self._udid_args(), str(app)], "installing the app")

    def launch(self, launch: Launch) -> None:
        _tool(["pymobiledevice3", "developer", "dvt", "launch", *self._udid_args(),
               " ".join([self.bundle_id, *launch_arguments(launch)])],
              "launching the app (needs a mounted developer disk image: `pymobiledevice3 mounter auto-mount`; "
              "iOS 17+ also a tunnel: `pymobiledevice3 remote tunneld`)")

    def _udid_args(self) -> list[str]:
        return ["--udid", self.udid] if self.udid else []

    def reconnect(self) -> None:
        if self._service is not None and hasattr(self._service, "close"):
            try:
                self._run(self._service.close())
            except Exception:  # noqa: BLE001 - closing a dead connection is not worth an error
                pass
        self._service = None

    def close(self) -> None:
        self.reconnect()
        self._loop.close()


async def _pymobiledevice3_service(bundle_id: str, udid: str | None) -> Any:
    try:
        from pymobiledevice3.lockdown import create_using_usbmux
        from pymobiledevice3.services.house_arrest import HouseArrestService
    except ImportError:
        raise CollectError(f"pymobiledevice3 is not installed: {INSTALL_HINT}") from None
    lockdown = await _maybe(create_using_usbmux(serial=udid))
    create = getattr(HouseArrestService, "create", None)
    if create is not None:
        return await _maybe(create(lockdown, bundle_id=bundle_id, documents_only=True))
    return HouseArrestService(lockdown, bundle_id=bundle_id, documents_only=True)


@dataclass(frozen=True)
class CoreDevice:
    """One entry of ``devicectl list devices``: its UDID and iOS version (None for devices CoreDevice cannot handle)."""

    udid: str | None
    os_version: str | None
    pairing_state: str | None

    @property
    def os_major(self) -> int | None:
        try:
            return int(str(self.os_version).split(".")[0])
        except ValueError:
            return None


def devicectl_devices() -> list[CoreDevice]:
    """``xcrun devicectl list devices --json-output FILE``, parsed (jsonVersion 2: result.devices[])."""
    with tempfile.TemporaryDirectory(prefix="devicectl-") as tmp:
        out = Path(tmp) / "devices.json"
        _tool(["xcrun", "devicectl", "list", "devices", "--json-output", str(out)], "listing devices with devicectl",
              timeout_s=120)
        try:
            doc = json.loads(out.read_text())
        except (OSError, ValueError) as e:
            raise CollectError(f"devicectl wrote no readable device list ({e})") from None
    devices = []
    for d in (doc.get("result") or {}).get("devices") or []:
        hw, props = d.get("hardwareProperties") or {}, d.get("deviceProperties") or {}
        devices.append(CoreDevice(hw.get("udid"), props.get("osVersionNumber"),
                                  (d.get("connectionProperties") or {}).get("pairingState")))
    return devices


class DevicectlTransport(Transport):
    """Apple's devicectl: copy ``Documents/results`` into a temporary folder on each listing (iOS 17+ only)."""

    name = "devicectl"

    def __init__(self, bundle_id: str = DEFAULT_BUNDLE_ID, udid: str | None = None, check_device: bool = True) -> None:
        if udid is None:
            raise CollectError("devicectl needs the device: give --udid (see `xcrun devicectl list devices`)")
        self.bundle_id, self.udid = bundle_id, udid
        if check_device:
            ok, why = devicectl_supports(udid)
            if not ok:
                raise CollectError(f"devicectl cannot reach {udid}: {why}; use --via pymobiledevice3")
        self._tmp = tempfile.TemporaryDirectory(prefix="ios-results-")

    def _xcrun(self, args: list[str], what: str, error: Callable[[str, str], CollectError] | None = None
               ) -> subprocess.CompletedProcess:
        return _tool(["xcrun", "devicectl", *args], what, error=error)

    def list(self) -> list[RemoteFile]:
        root = Path(self._tmp.name) / f"copy{time.monotonic_ns()}"
        root.mkdir()
        # A missing folder is "not yet" (RemoteFolderMissing), an unplugged or locked phone Transient, and any
        # other failure (trust lost, pairing gone) a CollectError that ends a wait: see bench/tool_errors.py.
        self._xcrun(["device", "copy", "from", "--device", self.udid, "--domain-type", "appDataContainer",
                     "--domain-identifier", self.bundle_id, "--source", DEVICECTL_RESULTS,
                     "--destination", str(root)], f"copying {self.bundle_id}'s {DEVICECTL_RESULTS}",
                    error=devicectl_copy_error)
        root = root.resolve()
        out = []
        for p in sorted(root.rglob("*")):
            # Only regular files really inside the copy (a symlink could point anywhere on this computer).
            if p.is_symlink() or not p.is_file() or not p.resolve().is_relative_to(root):
                continue
            out.append(RemoteFile(p.name, f"devicectl:{self.bundle_id}:{p.relative_to(root).as_posix()}",
                                  p.stat().st_size, ref=p))
        return out

    def read(self, file: RemoteFile, limit_bytes: int) -> bytes:
        try:
            with open(file.ref, "rb") as fh:
                data = fh.read(limit_bytes + 1)
        except OSError as e:
            raise ReadFailed(e.strerror or str(e)) from None
        if len(data) > limit_bytes:
            raise TooLarge(f"more than {limit_bytes} bytes")
        return data

    def write(self, local: Path, remote: str) -> str:
        self._xcrun(["device", "copy", "to", "--device", self.udid, "--domain-type", "appDataContainer",
                     "--domain-identifier", self.bundle_id, "--source", str(local),
                     "--destination", f"Documents/{remote.strip('/')}"], f"copying {local} to the app")
        return remote

    def install(self, app: Path) -> None:
        self._xcrun(["device", "install", "app", "--device", self.udid, str(app)], "installing the app")

    def launch(self, launch: Launch) -> None:
        self._xcrun(["device", "process", "launch", "--device", self.udid, "--terminate-existing", self.bundle_id,
                     *launch_arguments(launch)], "launching the app")

    def close(self) -> None:
        self._tmp.cleanup()


def devicectl_supports(udid: str) -> tuple[bool, str]:
    """(can devicectl handle this device, why): it must be listed with its UDID and iOS 17 or later."""
    devices = devicectl_devices()
    match = next((d for d in devices if d.udid == udid), None)
    if match is None:
        unsupported = sum(1 for d in devices if d.pairing_state == "unsupported")
        extra = f" ({unsupported} device(s) listed as pairingState unsupported: iOS below 17)" if unsupported else ""
        return False, f"`devicectl list devices` does not list it{extra}; CoreDevice handles iOS {DEVICECTL_MIN_IOS}+ only"
    if match.os_major is not None and match.os_major < DEVICECTL_MIN_IOS:
        return False, f"it runs iOS {match.os_version}; CoreDevice handles iOS {DEVICECTL_MIN_IOS}+ only"
    return True, f"iOS {match.os_version}"


TRANSPORTS: Registry[Callable[..., Transport]] = Registry("iOS transport")
TRANSPORTS.add("pymobiledevice3", lambda bundle_id, udid, service_factory=None:
               HouseArrestTransport(bundle_id, udid, service_factory))
TRANSPORTS.add("house-arrest", TRANSPORTS.get("pymobiledevice3"))  # the service's name, kept as an alias
TRANSPORTS.add("devicectl", lambda bundle_id, udid, service_factory=None: DevicectlTransport(bundle_id, udid))


def choose_via(udid: str | None, device_key: str | None = None, via: str | None = None,
               platform: str | None = None) -> tuple[str, str]:
    """(transport name, why) for one device.

    A catalog device that never runs iOS 17 (iPhone 6, iPhone X, iPad Air 2) always gets pymobiledevice3;
    on a Mac with Xcode, devicectl when it lists the UDID with iOS 17+; pymobiledevice3 otherwise.
    An explicit ``via="devicectl"`` for a device below iOS 17 is refused with the reason.

    >>> choose_via(None, "iphone6", platform="linux")[0]
    'pymobiledevice3'
    """
    if via is not None:
        TRANSPORTS.get(via)  # unknown names list the known ones
    dev = get_device(device_key) if device_key else None
    if dev is not None and dev.platform == "ios" and dev.last_os_major < DEVICECTL_MIN_IOS:
        why = (f"{dev.name} stops at iOS {dev.last_os}; devicectl (CoreDevice) handles iOS {DEVICECTL_MIN_IOS}+ only")
        if via == "devicectl":
            raise CollectError(f"--via devicectl cannot reach the {dev.name}: {why}; use --via pymobiledevice3")
        return (via or "pymobiledevice3"), why
    if via is not None:
        return via, "asked for with --via"
    if (platform or sys.platform) != "darwin" or shutil.which("xcrun") is None:
        return "pymobiledevice3", "no xcrun here (devicectl needs macOS with Xcode 15+)"
    if udid is None:
        return "pymobiledevice3", "no --udid given, so devicectl cannot be pointed at a device"
    ok, why = devicectl_supports(udid)
    return ("devicectl", f"devicectl lists it: {why}") if ok else ("pymobiledevice3", why)


def transport_for(bundle_id: str, udid: str | None, via: str,
                  service_factory: ServiceFactory | None = None) -> Transport:
    return TRANSPORTS.get(via)(bundle_id, udid, service_factory)


def collect_ios(bundle_id: str, store: ResultStore, udid: str | None = None, via: str | None = None,
                service_factory: ServiceFactory | None = None):
    """Copy the harness app's ``Documents/results/*.json`` into ``store`` (list of Collected)."""
    via = via or choose_via(udid)[0]
    with transport_for(bundle_id, udid, via, service_factory) as t:
        return collect(t, store)


def bench_ios(plan_dir: str | Path, app: str | Path, store: ResultStore, bundle_id: str = DEFAULT_BUNDLE_ID,
              udid: str | None = None, via: str | None = None, launch_id: str | None = None,
              timeout_s: float = WAIT_TIMEOUT_S, poll_s: float = 10.0, service_factory: ServiceFactory | None = None,
              progress: Callable[[PlanReport], None] | None = None,
              on_via: Callable[[str, str], None] | None = None,
              sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] | None = None) -> PlanReport:
    """Install ``app`` (built with the plan as its BenchPlan), launch it with a fresh launch id, wait for its runs.

    Results already in the app's Documents are collected first (nothing is lost) and count as stale.
    ``on_via(name, why)`` is told which transport was chosen and why.
    """
    plan = load_plan(Path(plan_dir) / "plan.json")
    if plan["platform"] != "ios":
        raise CollectError(f"{plan_dir} is a plan for {plan['device']} ({plan['platform']}), not iOS")
    app = Path(app)
    if not app.exists():
        raise CollectError(f"{app} does not exist: build the harness (.app or .ipa) with the plan first")
    name, why = choose_via(udid, plan["device"], via)
    if on_via:
        on_via(name, why)
    with transport_for(bundle_id, udid, name, service_factory) as t:
        try:
            collect(t, store)  # what earlier launches left: stored, and later counted as stale
        except CollectError as e:
            log.info("nothing collected before installing: %s", e)  # not installed yet, or no results folder
        t.install(app)
        launch = Launch(plan["plan_id"], check_launch_id(launch_id) if launch_id else new_launch_id())
        t.launch(launch)
        t.reconnect()  # the app was reinstalled: a connection opened before may be stale
        return wait_for_plan(t, plan, store, launch.launch_id, timeout_s=timeout_s, poll_s=poll_s,
                             progress=progress, sleep=sleep, clock=clock or time.monotonic)
