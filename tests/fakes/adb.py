"""A fake ``adb`` that behaves like the real one, with a fake phone and a fake harness app behind it.

Installed on PATH as an executable (``install(bindir, root)``); the phone's state lives in ``root``:
``state.json`` (serials, API level, installed packages) and ``fs/`` (the device's file system).
Each behaviour below is the real tool's, with where it comes from:

- ``adb exec-out CMD ARGS``: the client sends ``exec:`` + CMD + the other arguments escaped
  (AOSP ``adb/client/commandline.cpp``, the ``exec-in``/``exec-out`` branch of ``adb_commandline``),
  copies the stream to stdout and **returns 0** whatever the command did; only a failed connection
  exits non-zero, after ``error: <why>`` on stderr (``return -1``: exit status 255).
- The device runs it as ``/system/bin/sh -c`` with **stderr merged into stdout**: the exec service
  has no shell protocol, so ``Subprocess::ForkAndExec`` (``adb/daemon/shell_service.cpp``) dups the
  stdout socket onto stderr.
- ``adb shell``: with the shell protocol (Android 7 / API 24+) the remote exit status comes back and
  stderr stays separate; without it the client returns 0 (``RemoteShell``, same commandline.cpp).
- ``run-as PKG CMD``: refused unless the package is debuggable — ``run-as: package not debuggable:
  PKG`` — and ``run-as: unknown package: PKG`` when not installed, both exit 1 (AOSP
  ``run-as/run-as.cpp``, ``main``, via bionic ``error()``: "progname: message"); otherwise CMD runs in
  the app's data directory.
- ``ls``/``cat`` failures: ``ls: PATH: No such file or directory``, exit 1 (toybox ``lib/lib.c``,
  ``verror_msg``: "name: path: strerror").
- Storage paths: ``/sdcard`` and ``/storage/self/primary`` are the shell's names for
  ``/storage/emulated/0``; the app's external files folder is ``/storage/emulated/0/Android/data/PKG/files``
  (``Context.getExternalFilesDir``), readable and writable by adb's shell user on Android 10 and 11+
  alike, while other apps cannot read it on Android 11+ (Android 11 storage changes). The private
  ``/data/user/0/PKG`` is reachable only through run-as.
- ``adb push`` into an app-specific folder: adbd ``chown``s every file it creates (``handle_send_file`` in
  ``adb/daemon/file_sync_service.cpp``: ``fchown`` to the uid/gid it computed for the path), which the
  FUSE/sdcardfs layer refuses on some Android 11+ builds: ``adb: error: failed to copy 'X' to 'Y': remote
  fchown failed: Operation not permitted`` (AOSP issue tracker 160258766 and many user reports); exit 1.
  The fake fails so from API 30 on (``push_chown_fails``, default True), the builds the collector must survive.
  ``/data/local/tmp`` is adb's own folder (owner shell) and always takes a push.
- A lost connection (``device_drops``): the next commands fail with ``error: device offline`` (exit 1,
  exec-out 255), ``adb devices`` lists the serial as ``offline`` (``adb/transport.cpp``
  ``connection_state_name``); a stream cut mid-transfer (``cut_streams``) delivers part of the output and
  exits 255 (the client's ``read_and_dump`` ends, ``adb_commandline`` returns -1); a stall
  (``stall_s``) delivers part of the output and then nothing for that long.
- Android 5.x (API 21-22) runs toolbox's ``ls`` (toybox's came in Android 6): it knows ``-l -n -s -R -d -Z
  -a -F -i`` only and refuses any other flag with ``ls: Unknown option '-1'. Aborting.``, exit 1 (AOSP
  ``system/core/toolbox/ls.c``, lollipop-release, the option loop of ``ls_main``); it prints one name per
  line whatever the output. Toybox ``ls`` prints one per line when stdout is not a tty (``ls.c``: implied
  ``-1``), as through exec-out.
- Screen state: ``input keyevent KEYCODE_WAKEUP`` wakes the phone (KeyEvent.KEYCODE_WAKEUP, API 20);
  ``dumpsys power`` prints ``mWakefulness=Awake|Asleep|Dozing|Dreaming`` (PowerManagerService
  ``dumpInternal``); ``dumpsys window`` prints ``mDreamingLockscreen=`` (PhoneWindowManager ``dump``)
  and the KeyguardServiceDelegate's ``showing=``; ``wm dismiss-keyguard`` (API 26+) or ``input keyevent 82``
  (the menu key, older) dismisses a swipe keyguard but never a PIN/pattern/password one (``secure_lock``).
- ``adb install``: ``Performing Streamed Install`` then ``Success``; a failure prints
  ``adb: failed to install APK: Failure [...]`` and exits 1.
- ``am start -W -n PKG/ACT``: ``Error: Activity class {PKG/PKG.ACT} does not exist.`` when the app is
  not installed; otherwise ``Status: ok``.

The fake harness app (what ``android_harness/app`` does, ``HarnessSession.kt``): started by ``am start``
with ``--es plan PATH --es launch_id ID``, it reads the plan and writes one result per run into
``getExternalFilesDir("results")`` (its private ``files/results`` only when ``external_storage`` is
false), one file per later adb command, so a collector sees the results arrive over several polls.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ALIASES = ("/sdcard", "/storage/self/primary", "/mnt/sdcard")
EXTERNAL = "/storage/emulated/0"


def install(bindir: Path, root: Path, state: dict | None = None) -> Path:
    """Put an ``adb`` executable in ``bindir`` backed by the phone in ``root``; returns the executable."""
    bindir.mkdir(parents=True, exist_ok=True)
    (root / "fs").mkdir(parents=True, exist_ok=True)
    write_state(root, {"serials": ["SER123"], "sdk": 33, "external_storage": True, "writes_per_command": 1,
                       "packages": {}, "queue": [], "skip_keys": [], "push_chown_fails": True,
                       "device_drops": 0, "cut_streams": 0, "stall_s": 0, "awake": True, "locked": False,
                       "secure_lock": False, "wont_wake": False, "screen_log": [], **(state or {})})
    exe = bindir / "adb"
    # -S and a lazy shutil: the fake runs once per adb call, so its start-up time is the tests' time.
    exe.write_text(f"#!{sys.executable} -S\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
                   f"from tests.fakes.adb import main\nsys.exit(main(sys.argv[1:], {str(root)!r}))\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def read_state(root: Path) -> dict:
    return json.loads((Path(root) / "state.json").read_text())


def write_state(root: Path, state: dict) -> None:
    (Path(root) / "state.json").write_text(json.dumps(state, indent=1))


def apk(path: Path, package: str, debuggable: bool) -> Path:
    """A stand-in APK the fake installs: JSON naming its package and whether it is debuggable."""
    path.write_text(json.dumps({"package": package, "debuggable": debuggable}))
    return path


class Phone:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.state = read_state(self.root)

    def save(self) -> None:
        write_state(self.root, self.state)

    # -- the file system, with the shell's aliases for shared storage
    def host(self, device_path: str) -> Path:
        for alias in ALIASES:
            if device_path == alias or device_path.startswith(alias + "/"):
                device_path = EXTERNAL + device_path[len(alias):]
        return self.root / "fs" / device_path.lstrip("/")

    def data_dir(self, pkg: str) -> str:
        return f"/data/user/0/{pkg}"

    def shell_may_write(self, device_path: str) -> bool:
        p = str(self.host(device_path).relative_to(self.root / "fs"))
        return p.startswith(EXTERNAL.lstrip("/")) or p.startswith("data/local/tmp")

    def push_refused(self, device_path: str) -> bool:
        """adbd's fchown into an app-specific folder fails on some Android 11+ builds."""
        p = str(self.host(device_path).relative_to(self.root / "fs"))
        return (self.state["push_chown_fails"] and self.state["sdk"] >= 30
                and p.startswith(f"{EXTERNAL.lstrip('/')}/Android/"))

    # -- the fake harness app: one queued result written per adb command
    def app_step(self) -> None:
        for _ in range(self.state["writes_per_command"]):
            if not self.state["queue"]:
                return
            item = self.state["queue"].pop(0)
            pkg = item["package"]
            folder = (f"{EXTERNAL}/Android/data/{pkg}/files/results" if self.state["external_storage"]
                      else f"{self.data_dir(pkg)}/files/results")
            dest = self.host(folder)
            dest.mkdir(parents=True, exist_ok=True)
            tmp = dest / f".{item['name']}.tmp"  # written then renamed, like ResultWriter.kt
            tmp.write_bytes(item["data"].encode())
            tmp.rename(dest / item["name"])

    def start_app(self, pkg: str, extras: dict[str, str]) -> None:
        from tests.fakes.harness_app import results_for

        plan_path = extras.get("plan")
        if plan_path is None:
            return  # the app shows its screen and waits for a tap
        plan = json.loads(self.host(plan_path).read_text())
        for name, data in results_for(plan, extras.get("launch_id"), "android", set(self.state["skip_keys"])):
            self.state["queue"].append({"package": pkg, "name": name, "data": data.decode()})

    # -- a tiny sh -c: `a && b`, `a; b`, and the commands the collector uses
    def sh(self, line: str, cwd: str = "/") -> tuple[int, list[tuple[int, bytes]]]:
        """(exit status, the output as (fd, bytes) chunks in the order the commands wrote them)."""
        chunks: list[tuple[int, bytes]] = []
        rc = 0
        for seq in line.split(";"):
            if not seq.strip():
                continue
            for part in seq.split("&&"):
                rc, o, e = self.simple(shlex.split(part), cwd, rc)
                chunks += [(2, e), (1, o)] if e else [(1, o)]  # a failing command writes its error, then exits
                if rc != 0:
                    break
        return rc, chunks

    def simple(self, argv: list[str], cwd: str, last_rc: int) -> tuple[int, bytes, bytes]:
        def path(p: str) -> str:
            return p if p.startswith("/") else f"{cwd.rstrip('/')}/{p}"

        cmd, args = argv[0], argv[1:]
        if cmd == "printf":  # printf FORMAT $?  (the collector's exit-status trailer)
            fmt = args[0].encode().decode("unicode_escape")
            return 0, (fmt % tuple(str(last_rc) if a == "$?" else a for a in args[1:])).encode(), b""
        if cmd == "ls":
            flags = "".join(a[1:] for a in args if a.startswith("-"))
            toolbox = self.state["sdk"] < 23
            bad = [f for f in flags if f not in "lnsRdZaFi"] if toolbox else []
            if bad:
                return 1, b"", f"ls: Unknown option '-{bad[0]}'. Aborting.\n".encode()
            target = path(args[-1])
            p = self.host(target)
            if not p.is_dir():
                return 1, b"", f"ls: {target}: No such file or directory\n".encode()
            return 0, "".join(f"{n}\n" for n in sorted(os.listdir(p))).encode(), b""
        if cmd == "cat":
            target = path(args[-1])
            try:
                return 0, self.host(target).read_bytes(), b""
            except OSError:
                return 1, b"", f"cat: {target}: No such file or directory\n".encode()
        if cmd == "rm":
            import shutil

            shutil.rmtree(self.host(path(args[-1])), ignore_errors=True)
            return 0, b"", b""
        if cmd == "mkdir":
            self.host(path(args[-1])).mkdir(parents=True, exist_ok=True)
            return 0, b"", b""
        if cmd == "chmod":
            return 0, b"", b""
        if cmd == "getprop" and args == ["ro.build.version.sdk"]:
            return 0, f"{self.state['sdk']}\n".encode(), b""
        if cmd == "input" and args[:1] == ["keyevent"]:
            self.state["screen_log"].append(args[1])
            if args[1] == "KEYCODE_WAKEUP" and not self.state["wont_wake"]:
                self.state["awake"] = True
            if args[1] == "82" and self.state["awake"] and not self.state["secure_lock"]:
                self.state["locked"] = False
            return 0, b"", b""
        if cmd == "wm" and args == ["dismiss-keyguard"]:
            self.state["screen_log"].append("dismiss-keyguard")
            if self.state["sdk"] < 26:
                return 1, b"", b"Error: unknown command 'dismiss-keyguard'\n"
            if self.state["awake"] and not self.state["secure_lock"]:
                self.state["locked"] = False
            return 0, b"", b""
        if cmd == "dumpsys" and args == ["power"]:
            wake = "Awake" if self.state["awake"] else "Asleep"
            return 0, (f"POWER MANAGER (dumpsys power)\n\nPower Manager State:\n  mDirty=0x0\n"
                       f"  mWakefulness={wake}\n  mWakefulnessChanging=false\n  mIsPowered=true\n").encode(), b""
        if cmd == "dumpsys" and args == ["window"]:
            locked = "true" if self.state["locked"] else "false"
            return 0, (f"WINDOW MANAGER POLICY STATE (dumpsys window policy)\n    mShowingDream=false "
                       f"mDreamingLockscreen={locked} mDreamingSleepToken=null\n    KeyguardServiceDelegate\n"
                       f"      showing={locked}\n      inputRestricted={locked}\n").encode(), b""
        if cmd == "run-as":
            pkg, rest = args[0], args[1:]
            info = self.state["packages"].get(pkg)
            if info is None:
                return 1, b"", f"run-as: unknown package: {pkg}\n".encode()
            if not info["debuggable"]:
                return 1, b"", f"run-as: package not debuggable: {pkg}\n".encode()
            return self.simple(rest, self.data_dir(pkg), last_rc)
        if cmd == "am" and args[:1] == ["start"]:
            comp = args[args.index("-n") + 1]
            pkg, act = comp.split("/")
            if pkg not in self.state["packages"]:
                return 1, f"Error: Activity class {{{pkg}/{pkg}{act}}} does not exist.\n".encode(), b""
            extras = {args[i + 1]: args[i + 2] for i, a in enumerate(args) if a == "--es"}
            self.start_app(pkg, extras)
            return 0, (f"Starting: Intent {{ cmp={comp} (has extras) }}\nStatus: ok\nLaunchState: COLD\n"
                       f"Activity: {comp}\nTotalTime: 412\nWaitTime: 415\nComplete\n").encode(), b""
        return 127, b"", f"/system/bin/sh: {cmd}: inaccessible or not found\n".encode()


def main(argv: list[str], root: str) -> int:
    phone = Phone(Path(root))
    with open(Path(root) / "log", "a") as log:
        log.write(json.dumps(argv) + "\n")
    serials = phone.state["serials"]
    chosen = argv[:1] == ["-s"]
    if chosen:
        serial, argv = argv[1], argv[2:]
        if serial not in serials:
            sys.stderr.write(f"error: device '{serial}' not found\n")
            return 1
    if phone.state.get("unauthorized"):  # the RSA key was revoked: adb/client/adb_client.cpp wording
        sys.stderr.write("error: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
                         "Try 'adb kill-server' if that seems wrong.\n"
                         "Otherwise check for a confirmation dialog on your device.\n")
        return 255 if argv[:1] == ["exec-out"] else 1
    offline = phone.state["device_drops"] > 0
    if argv == ["devices"]:
        print("List of devices attached")
        for s in serials:
            print(f"{s}\t{'offline' if offline else 'device'}")
        return 0
    if offline:
        phone.state["device_drops"] -= 1
        phone.save()
        sys.stderr.write("error: device offline\n")
        return 255 if argv[:1] == ["exec-out"] else 1
    if not serials:
        sys.stderr.write("error: no devices/emulators found\n")
        return 255 if argv[:1] == ["exec-out"] else 1
    if len(serials) > 1 and not chosen:
        sys.stderr.write("error: more than one device/emulator\n")
        return 255 if argv[:1] == ["exec-out"] else 1
    try:
        return run(phone, argv)
    finally:
        phone.app_step()  # the app keeps working between the collector's commands
        phone.save()


def run(phone: Phone, argv: list[str]) -> int:
    cmd = argv[0]
    if cmd == "exec-out":
        line = " ".join([argv[1], *(shlex.quote(a) for a in argv[2:])])
        _, chunks = phone.sh(line)
        out = b"".join(data for _, data in chunks)  # one stream: stderr merged on the device
        if phone.state["cut_streams"] > 0 or phone.state["stall_s"] > 0:
            stall = phone.state["stall_s"]
            if phone.state["cut_streams"] > 0:
                phone.state["cut_streams"] -= 1
            phone.state["stall_s"] = 0
            phone.save()
            sys.stdout.buffer.write(out[:max(1, len(out) // 2)])
            sys.stdout.buffer.flush()
            if stall:
                import time

                time.sleep(stall)
            return 255
        sys.stdout.buffer.write(out)
        return 0
    if cmd == "shell":
        rc, chunks = phone.sh(" ".join([argv[1], *(shlex.quote(a) for a in argv[2:])]))
        sys.stdout.buffer.write(b"".join(d for fd, d in chunks if fd == 1))
        sys.stderr.buffer.write(b"".join(d for fd, d in chunks if fd == 2))
        return rc if phone.state["sdk"] >= 24 else 0
    if cmd == "push":
        import shutil

        src, dest = Path(argv[1]), argv[2]
        if phone.push_refused(dest):
            sys.stderr.write(f"adb: error: failed to copy '{src}' to '{dest}': remote fchown failed: "
                             "Operation not permitted\n")
            return 1
        if not phone.shell_may_write(dest):
            sys.stderr.write(f"adb: error: failed to copy '{src}' to '{dest}': remote Permission denied\n")
            return 1
        target = phone.host(dest)
        if target.is_dir():
            target = target / src.name
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)
        print(f"{src}: 1 file pushed, 0 skipped.")
        return 0
    if cmd == "install":
        path = Path(argv[-1])
        print("Performing Streamed Install")
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            sys.stderr.write("adb: failed to install APK: Failure [INSTALL_PARSE_FAILED_NOT_APK]\n")
            return 1
        phone.state["packages"][info["package"]] = {"debuggable": info["debuggable"]}
        print("Success")
        return 0
    sys.stderr.write(f"adb: unknown command {cmd}\n")
    return 1
