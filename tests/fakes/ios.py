"""A fake iPhone behind three fakes of real tools: pymobiledevice3's house-arrest service, the
``pymobiledevice3`` CLI, and ``xcrun devicectl``. They share one on-disk phone (``root``).

Behaviours and where they come from:

- House-arrest ``VendDocuments`` (pymobiledevice3 ``services/house_arrest.py``, ``HouseArrestService.create``
  and ``send_command``): an unknown bundle id makes the device answer ``ApplicationLookupFailed``, which
  pymobiledevice3 raises as ``AppNotInstalledError("No app with bundle id ... found")``; any other
  ``Error`` is raised as ``PyMobileDevice3Exception(error)``. The device refuses ``VendDocuments`` with
  ``InstallationLookupFailed`` when the app's ``isFileSharingEnabled`` is false (mobile_house_arrest,
  decompiled iPadOS 18: EthanArbuckle/iPad_10.2_18.0_22A3354_Restore ``mobile_house_arrest.m``).
- AFC (pymobiledevice3 ``services/afc.py``): ``_do_operation`` raises ``AfcFileNotFoundError`` for
  status ``OBJECT_NOT_FOUND`` (8), ``AfcException`` for others; ``listdir`` drops ``.`` and ``..``;
  ``stat`` gives ``st_size`` and ``st_ifmt``.
- ``devicectl`` (CoreDevice) handles iOS 17+ only: ``list devices --json-output`` (jsonVersion 2)
  shows an older device with ``pairingState: unsupported`` and empty ``hardwareProperties`` — no UDID
  (callstack/agent-device#331, sweetpad-dev/sweetpad#224); ``device ... --device UDID`` for it exits 1
  with ``ERROR: The specified device was not found. (com.apple.dt.CoreDeviceError error 1000.)``
  (flutter_tools ``test/general.shard/ios/core_devices_test.dart``). ``device copy from`` a folder the app has
  not made prints ``ERROR: The file couldn’t be opened because it doesn’t exist. (NSCocoaErrorDomain error
  260.)`` (the same flutter_tools test file); exit 1.
- ``device copy from`` on a phone that is unplugged mid-wait fails with the error-1000 line above; on a
  passcode-locked phone with ``The specified device is passcode protected`` (as third-party devicectl
  wrappers' test fixtures report it; not from our own run); after trust was revoked with a pairing error
  (wording *made up*: the collector only relies on it being neither "missing" nor a transient wording).
  ``copy_failures``: a list of "unplugged" / "locked" / "untrusted" consumed one per copy.
- A USB drop (``usb_drops``): every open house-arrest connection dies — its next call raises pymobiledevice3's
  ``ConnectionTerminatedError`` (``exceptions.py``; AFC's ``_recvall`` on a closed socket) — and the next
  ``absent_for`` attempts to open one raise ``NoDeviceConnectedError`` (usbmux lists no device).

The fake app (ios_harness ``PlanSession``): launched with ``-launch_id ID`` (and optionally ``-plan``), it runs
the newest of its bundled ``BenchPlan/plan.json`` and a ``Documents/BenchPlan/plan.json`` (by ``created_at``;
the bundled one on a tie) and writes one result per run into ``Documents/results``, one per later call.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOT_FOUND_1000 = "ERROR: The specified device was not found. (com.apple.dt.CoreDeviceError error 1000.)"


class PyMobileDevice3Exception(Exception):
    pass


class AppNotInstalledError(PyMobileDevice3Exception):
    pass


class ConnectionTerminatedError(PyMobileDevice3Exception):
    pass


class NoDeviceConnectedError(PyMobileDevice3Exception):
    pass


class AfcException(PyMobileDevice3Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, status)
        self.status = status


class AfcFileNotFoundError(AfcException):
    pass


OBJECT_NOT_FOUND = 8


class IPhone:
    """The phone on disk: ``phone.json`` (udid, iOS version, installed apps, the app's work queue) and containers."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.state = json.loads((self.root / "phone.json").read_text())

    @classmethod
    def create(cls, root: Path, udid: str = "00008020-000E1D6A0E10002E", ios: str = "18.3", **state) -> "IPhone":
        root.mkdir(parents=True, exist_ok=True)
        (root / "phone.json").write_text(json.dumps({"udid": udid, "ios": ios, "apps": {}, "queue": [],
                                                     "skip_keys": [], **state}))
        return cls(root)

    def save(self) -> None:
        (self.root / "phone.json").write_text(json.dumps(self.state, indent=1))

    def documents(self, bundle_id: str) -> Path:
        return self.root / "containers" / bundle_id / "Documents"

    @property
    def ios_major(self) -> int:
        return int(self.state["ios"].split(".")[0])

    def install(self, app: Path) -> str:
        """Install a fake .app: a folder with ``Info.json`` (bundle id, file sharing) and its ``BenchPlan``."""
        info = json.loads((Path(app) / "Info.json").read_text())
        plan = Path(app) / "BenchPlan" / "plan.json"
        self.state["apps"][info["bundle_id"]] = {"file_sharing": info["file_sharing"],
                                                 "bundled_plan": plan.read_text() if plan.is_file() else None}
        return info["bundle_id"]

    def launch(self, bundle_id: str, args: list[str]) -> None:
        from tests.fakes.harness_app import results_for

        app = self.state["apps"].get(bundle_id)
        if app is None:
            raise AppNotInstalledError(f"No app with bundle id {bundle_id} found")
        opts = {args[i].lstrip("-"): args[i + 1] for i in range(0, len(args) - 1) if args[i].startswith("-")}
        candidates = []
        if app["bundled_plan"]:
            candidates.append(json.loads(app["bundled_plan"]))
        docs_plan = self.documents(bundle_id) / "BenchPlan" / "plan.json"
        if docs_plan.is_file():
            candidates.append(json.loads(docs_plan.read_text()))
        if not candidates:
            return
        plan = max(candidates, key=lambda p: p["created_at"])  # max keeps the first (bundled) on a tie
        for name, data in results_for(plan, opts.get("launch_id"), "ios", set(self.state["skip_keys"])):
            self.state["queue"].append({"bundle_id": bundle_id, "name": name, "data": data.decode()})

    def app_step(self) -> None:
        if self.state["queue"]:
            item = self.state["queue"].pop(0)
            dest = self.documents(item["bundle_id"]) / "results"
            dest.mkdir(parents=True, exist_ok=True)
            (dest / item["name"]).write_bytes(item["data"].encode())  # Data.write(.atomic)


class HouseArrest:
    """pymobiledevice3's HouseArrestService after ``create(lockdown, bundle_id, documents_only=True)`` (sync API)."""

    def __init__(self, phone: IPhone, bundle_id: str) -> None:
        app = phone.state["apps"].get(bundle_id)
        if app is None:
            raise AppNotInstalledError(f"No app with bundle id {bundle_id} found")
        if not app["file_sharing"]:
            raise PyMobileDevice3Exception("InstallationLookupFailed")
        self.phone, self.bundle_id, self.closed, self.asked = phone, bundle_id, False, []
        self.epoch = phone.state.get("usb_drops", 0)  # the USB connection this service was opened on

    def _path(self, path: str) -> Path:
        rel = path.lstrip("/")
        if not (rel == "Documents" or rel.startswith("Documents/")) or ".." in rel.split("/"):
            raise AfcException(f"opcode: READ_DIR failed with status: PERM_DENIED ({path})", 10)
        return self.phone.documents(self.bundle_id).parent / rel

    def _step(self) -> None:
        self.phone = IPhone(self.phone.root)
        self._alive()
        self.phone.app_step()
        self.phone.save()

    def _alive(self) -> None:
        if self.phone.state.get("usb_drops", 0) != self.epoch:
            raise ConnectionTerminatedError("Connection terminated")

    def listdir(self, path: str) -> list[str]:
        self._step()
        p = self._path(path)
        if not p.is_dir():
            raise AfcFileNotFoundError("opcode: READ_DIR failed with status: OBJECT_NOT_FOUND", OBJECT_NOT_FOUND)
        return sorted(os.listdir(p))

    def stat(self, path: str) -> dict:
        p = self._path(path)
        if not p.exists():
            raise AfcFileNotFoundError("opcode: GET_FILE_INFO failed with status: OBJECT_NOT_FOUND", OBJECT_NOT_FOUND)
        return {"st_size": p.stat().st_size, "st_ifmt": "S_IFDIR" if p.is_dir() else "S_IFREG"}

    def get_file_contents(self, path: str) -> bytes:
        self.phone = IPhone(self.phone.root)
        self._alive()
        self.asked.append(path)
        p = self._path(path)
        if not p.is_file():
            raise AfcFileNotFoundError("opcode: GET_FILE_INFO failed with status: OBJECT_NOT_FOUND", OBJECT_NOT_FOUND)
        return p.read_bytes()

    def makedirs(self, path: str) -> None:
        self._path(path).mkdir(parents=True, exist_ok=True)

    def set_file_contents(self, path: str, data: bytes) -> None:
        self._path(path).write_bytes(data)

    def close(self) -> None:
        self.closed = True


class AsyncHouseArrest(HouseArrest):
    """pymobiledevice3 >= 5: the same service with coroutine methods."""

    async def listdir(self, path):  # type: ignore[override]
        return HouseArrest.listdir(self, path)

    async def stat(self, path):  # type: ignore[override]
        return HouseArrest.stat(self, path)

    async def get_file_contents(self, path):  # type: ignore[override]
        return HouseArrest.get_file_contents(self, path)

    async def makedirs(self, path):  # type: ignore[override]
        return HouseArrest.makedirs(self, path)

    async def set_file_contents(self, path, data):  # type: ignore[override]
        return HouseArrest.set_file_contents(self, path, data)

    async def close(self):  # type: ignore[override]
        self.closed = True


def factory(root: Path, cls: type = HouseArrest):
    """A ``service_factory`` for toolchain.bench.ios: ``(bundle_id, udid) -> service`` on the phone in ``root``."""
    def make(bundle_id: str, udid: str | None):
        phone = IPhone(root)
        if phone.state.get("absent_for", 0) > 0:
            phone.state["absent_for"] -= 1
            phone.save()
            raise NoDeviceConnectedError()
        if udid is not None and udid != phone.state["udid"]:
            raise PyMobileDevice3Exception(f"Device {udid} is not connected")  # usbmux finds no such device
        return cls(phone, bundle_id)
    return make


def fake_app(folder: Path, bundle_id: str, plan_dir: Path | None, file_sharing: bool = True) -> Path:
    """A stand-in .app: Info.json and a copy of the plan as its BenchPlan."""
    import shutil

    folder.mkdir(parents=True)
    (folder / "Info.json").write_text(json.dumps({"bundle_id": bundle_id, "file_sharing": file_sharing}))
    if plan_dir is not None:
        shutil.copytree(plan_dir, folder / "BenchPlan")
    return folder


def install_tools(bindir: Path, root: Path) -> None:
    """``pymobiledevice3`` and ``xcrun`` executables in ``bindir`` that act on the phone in ``root``."""
    bindir.mkdir(parents=True, exist_ok=True)
    for name in ("pymobiledevice3", "xcrun"):
        exe = bindir / name
        exe.write_text(f"#!{sys.executable} -S\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
                       f"from tests.fakes.ios import {name.replace('3', '')}_main as main\n"
                       f"sys.exit(main(sys.argv[1:], {str(root)!r}))\n")
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def _log(root: Path, argv: list[str]) -> None:
    with open(Path(root) / "log", "a") as fh:
        fh.write(json.dumps(argv) + "\n")


def _opt(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def pymobiledevice_main(argv: list[str], root: str) -> int:
    """``pymobiledevice3 apps install [--udid U] APP`` and ``developer dvt launch [--udid U] "BUNDLE ARGS"``."""
    _log(Path(root), argv)
    phone = IPhone(Path(root))
    udid = _opt(argv, "--udid")
    if udid is not None and udid != phone.state["udid"]:
        sys.stderr.write(f"Device is not connected: {udid}\n")
        return 1
    args = [a for i, a in enumerate(argv) if a != "--udid" and (i == 0 or argv[i - 1] != "--udid")]
    try:
        if args[:2] == ["apps", "install"]:
            phone.install(Path(args[2]))
        elif args[:3] == ["developer", "dvt", "launch"]:
            words = shlex.split(args[3])
            phone.launch(words[0], words[1:])
        else:
            sys.stderr.write(f"Error: No such command {' '.join(args[:2])!r}.\n")
            return 2
    except PyMobileDevice3Exception as e:
        sys.stderr.write(f"{type(e).__name__}: {e}\n")
        return 1
    phone.save()
    return 0


def xcrun_main(argv: list[str], root: str) -> int:
    """``xcrun devicectl ...``: list devices, device copy from/to, install app, process launch."""
    _log(Path(root), argv)
    phone = IPhone(Path(root))
    if argv[:1] != ["devicectl"]:
        sys.stderr.write(f"xcrun: error: unable to find utility \"{argv[0]}\"\n")
        return 72
    a = argv[1:]
    if a[:2] == ["list", "devices"]:
        if phone.ios_major >= 17:
            dev = {"connectionProperties": {"pairingState": "paired", "transportType": "wired"},
                   "deviceProperties": {"name": "iPhone", "osVersionNumber": phone.state["ios"]},
                   "hardwareProperties": {"udid": phone.state["udid"], "platform": "iOS"},
                   "identifier": "E5E85238-76F2-4F59-A60F-0B4D08F33764"}
        else:  # CoreDevice sees the phone but cannot handle it: no UDID, no OS version
            dev = {"connectionProperties": {"pairingState": "unsupported", "tunnelState": "unavailable"},
                   "deviceProperties": {"bootState": "booted", "ddiServicesAvailable": False},
                   "hardwareProperties": {}, "identifier": "67946E7A-2A5D-5B91-9E34-ECD8AC0E4D09"}
        doc = {"info": {"arguments": ["devicectl", *a], "jsonVersion": 2, "outcome": "success"},
               "result": {"devices": [dev]}}
        Path(_opt(a, "--json-output")).write_text(json.dumps(doc))
        return 0
    if a[:1] == ["device"]:
        if _opt(a, "--device") != phone.state["udid"] or phone.ios_major < 17:
            sys.stderr.write(NOT_FOUND_1000 + "\n")
            return 1
        phone.app_step()
        phone.save()
        bundle = _opt(a, "--domain-identifier")
        if a[1:3] == ["copy", "from"]:
            failures = phone.state.get("copy_failures") or []
            if failures:
                why = failures.pop(0)
                phone.save()
                sys.stderr.write({"unplugged": NOT_FOUND_1000,
                                  "locked": "ERROR: The specified device is passcode protected. "
                                            "(com.apple.dt.CoreDeviceError error 2.)",
                                  "untrusted": "ERROR: The device is no longer paired with this Mac; pair it "
                                               "again and trust this computer. (com.apple.dt.CoreDeviceError "
                                               "error 3.)"}[why] + "\n")
                return 1
            src = phone.documents(bundle).parent / _opt(a, "--source")
            if not src.is_dir():
                sys.stderr.write("ERROR: The file couldn’t be opened because it doesn’t exist. "
                                 "(NSCocoaErrorDomain error 260.)\n")
                return 1
            dest = Path(_opt(a, "--destination"))
            for p in src.iterdir():  # symlinks are copied as links, like a file copy would
                if p.is_symlink():
                    os.symlink(os.readlink(p), dest / p.name)
                elif p.is_file():
                    (dest / p.name).write_bytes(p.read_bytes())
            return 0
        if a[1:3] == ["install", "app"]:
            phone.install(Path(a[-1]))
            phone.save()
            return 0
        if a[1:3] == ["process", "launch"]:
            rest = a[a.index("--terminate-existing") + 1:] if "--terminate-existing" in a else a[5:]
            try:
                phone.launch(rest[0], rest[1:])
            except AppNotInstalledError:
                sys.stderr.write("ERROR: The application failed to launch. (com.apple.dt.CoreDeviceError error "
                                 "10002.)\n")
                return 1
            phone.save()
            return 0
    sys.stderr.write(f"ERROR: unknown devicectl command {' '.join(a)}\n")
    return 64
