"""Android: the ``adb`` transport, and running a plan on a connected phone.

Where the harness writes (``android_harness/app``, ``HarnessSession.resultsDir``): its *external*
files folder, ``getExternalFilesDir("results")`` = ``/storage/emulated/0/Android/data/<pkg>/files/results``,
which adb's shell reaches as ``/sdcard/Android/data/<pkg>/files/results`` on every Android version
the app supports — release and debug builds alike. Only when external storage is unavailable does the
app fall back to its private ``files/results``, which adb can read only through ``run-as`` and only for
a debuggable build. The transport lists both and merges them.

Two facts of the real tool shape the code (AOSP ``adb/client/commandline.cpp``):

- ``adb exec-out CMD`` exits 0 whatever ``CMD`` returned, and the device merges the command's stderr
  into its stdout (the ``exec:`` service runs without the shell protocol: ``Subprocess::ForkAndExec`` in
  ``adb/daemon/shell_service.cpp`` dups stdout onto stderr). So every device command here appends
  ``; printf '\\n__ocular_rc=%s\\n' $?`` and the exit status is read from that line, never from adb's own.
- ``run-as PKG`` on a non-debuggable build prints ``run-as: package not debuggable: PKG`` and exits 1
  (AOSP ``run-as/run-as.cpp``, ``main``); through exec-out that text arrives on stdout with exit 0.
- A connection that fails (``error: device offline``, the phone unplugged, the stream cut) makes adb
  exit non-zero without the trailer line; those are :class:`~toolchain.bench.transport.Transient`, so a
  wait retries them. A transfer that stalls is killed after ``Adb.timeout_s`` (also transient).

The plan goes to ``/data/local/tmp`` (:data:`DEVICE_PLAN_ROOT`), never into the app's own folders:
adbd ``chown``s every file it pushes (``handle_send_file``, ``adb/daemon/file_sync_service.cpp``),
which fails in ``Android/data/<pkg>`` on some Android 11+ builds ("remote fchown failed"). The app
copies the plan from there into its private files before running it (``PlanImport.kt``). That works
on Android 5 to 15: ``/data/local/tmp`` is ``drwxrwx--x shell shell`` (others may traverse it) and the
pushed files are made world-readable here; SELinux lets apps read ``shell_data_file`` —
``allow untrusted_app shell_data_file:file r_file_perms`` (and ``:dir r_dir_perms``), in
``untrusted_app.te`` since Android 5 for the package verifier and in ``untrusted_app_all.te`` since 8.0
("Used by: ... Android Studio when attaching a profiler"). TFLite's Android benchmark app reads its
models from ``/data/local/tmp`` the same way (``tensorflow/lite/tools/benchmark/android/README.md``).
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from toolchain.bench.apps import APP_ID, WAIT_TIMEOUT_S
from toolchain.bench.schema import load_plan
from toolchain.bench.store import ResultStore
from toolchain.bench.transport import (Launch, ReadFailed, RemoteFile, RemoteFolderMissing, TooLarge, Transient,
                                       Transport, check_launch_id, collect, new_launch_id)
from toolchain.bench.tool_errors import adb_error
from toolchain.bench.wait import PlanReport, wait_for_plan
from toolchain.errors import CollectError

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = APP_ID
DEFAULT_ACTIVITY = ".MainActivity"  # android_harness/app: MainActivity reads the "plan" and "launch_id" extras
PLAN_EXTRA = "plan"  # a plan.json path on the device
LAUNCH_EXTRA = "launch_id"
PRIVATE_RESULTS = "files/results"  # relative to the app's data dir (run-as starts there)
EXTERNAL_RESULTS = "/sdcard/Android/data/{package}/files/results"
#: adb's own folder: a push there is never refused, and the app may read it (see the module docstring).
DEVICE_PLAN_ROOT = "/data/local/tmp/ocularbench/plans"
RC_MARK = "__ocular_rc="
_RC_LINE = re.compile(rb"\n" + re.escape(RC_MARK.encode()) + rb"(\d+)\n$")
_PACKAGE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$")


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
        """Run adb; with ``limit_bytes`` stdout is cut there (an oversized file is not read whole).

        Never longer than ``timeout_s``: a transfer that stalls (the phone stops sending, the cable half
        out) is killed and raised as :class:`Transient`.
        """
        argv = self._argv(args)
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            raise CollectError(f"cannot run {self.exe}: {e.strerror or e}") from None
        try:
            if limit_bytes is None:
                out, err = proc.communicate(timeout=self.timeout_s)
            else:
                out = _read_at_most(proc, limit_bytes + 1, time.monotonic() + self.timeout_s)
                if len(out) > limit_bytes:
                    proc.kill()
                err = proc.communicate(timeout=self.timeout_s)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise Transient(f"`{' '.join(argv)}` stalled: no end after {self.timeout_s:.0f} s") from None
        cp = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        if check and proc.returncode != 0 and not (limit_bytes is not None and len(out) > limit_bytes):
            msg = (err or out).decode("utf-8", "replace").strip().splitlines()
            raise adb_error(f"`adb {' '.join(args)}` failed", msg[-1] if msg else f"exit {proc.returncode}")
        return cp

    def exec(self, command: str, limit_bytes: int | None = None) -> tuple[int | None, bytes]:
        """Run ``command`` with ``sh -c`` on the device; (its exit status, its output with stderr merged).

        The status comes from a trailer line the command prints itself, because ``adb exec-out`` exits 0
        whatever the command returned. None: the output was cut at ``limit_bytes`` before the trailer.
        """
        # printf's $? is expanded before printf runs: it is the command's status, and the trailer is one
        # known line after the output, so the output itself comes back byte for byte.
        cp = self.run(["exec-out", f"{command}; printf '\\n{RC_MARK}%s\\n' $?"], check=False,
                      limit_bytes=None if limit_bytes is None else limit_bytes + 64)
        out = cp.stdout
        m = _RC_LINE.search(out)
        if m is None:
            if limit_bytes is not None and len(out) > limit_bytes:
                return None, out
            what = f"adb could not run `{command}` on the device"
            err = cp.stderr.decode("utf-8", "replace").strip().splitlines()
            if err:  # adb itself failed (offline, no device, unauthorized): its error is on stderr
                raise adb_error(what, next((ln for ln in err if ln.startswith("error:")), err[-1]))
            # No trailer and no error of adb's: the stream ended early (the connection failed mid-transfer,
            # adb exits -1 = 255 after a failed read). The command may well have run: try again later.
            raise Transient(f"{what}: the stream was cut after {len(out)} bytes (adb exit {cp.returncode})")
        return int(m.group(1)), out[:m.start()]

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


def _read_at_most(proc: subprocess.Popen, n_bytes: int, deadline: float) -> bytes:
    """Up to ``n_bytes`` of ``proc``'s stdout, or TimeoutExpired when nothing ends it before ``deadline``."""
    fd = proc.stdout.fileno()
    chunks: list[bytes] = []
    got = 0
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while got < n_bytes:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise subprocess.TimeoutExpired(proc.args, left)
            chunk = os.read(fd, min(65536, n_bytes - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    return b"".join(chunks)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").strip()


class AdbTransport(Transport):
    """The harness's results over adb: the external files folder, and ``run-as`` for a debuggable build."""

    name = "adb"

    def __init__(self, package: str = DEFAULT_PACKAGE, adb: Adb | None = None,
                 activity: str = DEFAULT_ACTIVITY) -> None:
        if not _PACKAGE.match(package):
            raise CollectError(f"{package!r} is not an Android package name (e.g. {DEFAULT_PACKAGE})")
        self.package, self.activity = package, activity
        self.adb = adb or Adb()
        self.adb.require_device()
        self.external = EXTERNAL_RESULTS.format(package=package)

    def _locations(self) -> list[tuple[str, str, Callable[[str], str]]]:
        """(folder, description, how to run a command there), external first: that is where the app writes."""
        return [(self.external, self.external, lambda cmd: cmd),
                (PRIVATE_RESULTS, f"run-as {self.package} {PRIVATE_RESULTS}",
                 lambda cmd: f"run-as {self.package} {cmd}")]

    def list(self) -> list[RemoteFile]:
        files: list[RemoteFile] = []
        problems: list[str] = []
        missing_only = True
        listed = False
        for folder, where, wrap in self._locations():
            # Plain `ls`: one name per line from toybox (stdout is no tty) and from Android 5.x's toolbox,
            # which refuses `-1` ("Unknown option '-1'. Aborting.").
            rc, out = self.adb.exec(wrap(f"ls {folder}"))
            if rc != 0:
                text = _text(out) or f"exit {rc}"
                problems.append(f"{where}: {text}")
                # A release build refuses run-as: that location simply does not exist for it.
                missing_only &= "No such file or directory" in text or "package not debuggable" in text
                continue
            listed = True
            for name in _text(out).splitlines():
                name = name.strip("\r")
                if name:
                    files.append(RemoteFile(name, f"adb:{self.package}:{folder}/{name}", ref=(folder, wrap)))
        if listed:
            return files
        if missing_only:
            raise RemoteFolderMissing(f"{self.package} has no results folder yet ({'; '.join(problems)}): "
                                      "has the app run a plan?")
        raise CollectError(f"cannot list the results of {self.package}: {'; '.join(problems)} "
                           "(is the app installed? a release build writes only to the external folder)")

    def read(self, file: RemoteFile, limit_bytes: int) -> bytes:
        folder, wrap = file.ref
        rc, out = self.adb.exec(wrap(f"cat {folder}/{file.name}"), limit_bytes=limit_bytes)
        if rc is None:
            raise TooLarge(f"more than {limit_bytes} bytes")
        if rc != 0:
            raise ReadFailed(_text(out) or f"cat exited {rc}")
        return out

    def write(self, local: Path, remote: str) -> str:
        local = Path(local)
        parent = remote.rsplit("/", 1)[0]
        rc, out = self.adb.exec(f"rm -rf {remote} && mkdir -p {parent}")
        if rc != 0:
            raise CollectError(f"cannot prepare {remote} on the device: {_text(out)}")
        self.adb.run(["push", str(local), remote])  # adb push does exit non-zero on failure (do_sync_push)
        # The app (another uid) reads it: directories traversable, files readable. Octal and -R: toolbox
        # chmod (Android 5.x) knows no symbolic modes.
        rc, out = self.adb.exec(f"chmod -R 755 {DEVICE_PLAN_ROOT.rsplit('/', 1)[0]}")
        if rc != 0:
            raise CollectError(f"cannot make {remote} readable for the app: {_text(out)}")
        return remote

    def install(self, app: Path) -> None:
        app = Path(app)
        if app.suffix != ".apk" or not app.is_file():
            raise CollectError(f"{app} is not an .apk file")
        cp = self.adb.run(["install", "-r", str(app)], check=False)
        text = _text(cp.stdout + cp.stderr)
        # Old adb versions print "Failure [...]" and still exit 0; newer ones exit 1. Trust the words.
        if "Success" not in text:
            raise CollectError(f"adb install {app.name} failed: {text.splitlines()[-1] if text else cp.returncode}")

    def ensure_interactive(self) -> None:
        """Wake the phone, dismiss a swipe keyguard, and refuse unless it is awake and unlocked.

        An activity started on a sleeping or locked phone runs behind the keyguard, not as the top app
        (little cores, low priority): the numbers would be wrong without any error.
        """
        self.adb.exec("input keyevent KEYCODE_WAKEUP")  # KEYCODE_WAKEUP (API 20+): no-op when already awake
        rc, sdk = self.adb.exec("getprop ro.build.version.sdk")
        dismiss = "wm dismiss-keyguard" if rc == 0 and _text(sdk).isdigit() and int(_text(sdk)) >= 26 \
            else "input keyevent 82"  # the menu key dismisses a swipe keyguard before Android 8
        self.adb.exec(dismiss)
        problems = screen_problems(_text(self.adb.exec("dumpsys power")[1]), _text(self.adb.exec("dumpsys window")[1]))
        if problems:
            raise CollectError(f"not starting the benchmark: the phone is {' and '.join(problems)} after waking it "
                               "(an app behind the keyguard runs on little cores at low priority); unlock it, "
                               "keep the screen on (Settings > Developer options > Stay awake) and run again")

    def launch(self, launch: Launch) -> None:
        self.ensure_interactive()
        extras = [f"--es {LAUNCH_EXTRA} {check_launch_id(launch.launch_id)}"]
        if launch.plan_ref:
            extras.insert(0, f"--es {PLAN_EXTRA} {launch.plan_ref}")
        cmd = f"am start -W -S -n {self.package}/{self.activity} {' '.join(extras)}"
        rc, out = self.adb.exec(cmd)
        text = _text(out)
        # `am start` reports a missing activity as "Error: Activity class {...} does not exist." on its output.
        if rc != 0 or any(ln.startswith("Error") for ln in text.splitlines()):
            raise CollectError(f"cannot start {self.package}/{self.activity}: {text or f'exit {rc}'} "
                               "(is the harness installed? `deploy bench android --apk ...` installs it)")


def screen_problems(power: str, window: str) -> list[str]:
    """What keeps an activity from being the interactive top app, from ``dumpsys power`` and ``dumpsys window``.

    >>> screen_problems("  mWakefulness=Asleep", "    mShowingDream=false mDreamingLockscreen=true")
    ['not awake (mWakefulness=Asleep)', 'locked (keyguard showing)']
    >>> screen_problems("  mWakefulness=Awake", "    KeyguardServiceDelegate\\n      showing=false")
    []
    """
    out = []
    m = re.search(r"mWakefulness=(\w+)", power)
    if m is None or m.group(1) != "Awake":
        out.append(f"not awake (mWakefulness={m.group(1) if m else 'not reported'})")
    locked = re.search(r"(mDreamingLockscreen|mShowingLockscreen|isStatusBarKeyguard)=true|^\s*showing=true\s*$",
                       window, re.M)
    if locked:
        out.append("locked (keyguard showing)")
    return out


def collect_android(package: str, store: ResultStore, adb: Adb | None = None):
    """Copy every results file of ``package`` from the device into ``store`` (list of Collected)."""
    return collect(AdbTransport(package, adb), store)


def bench_android(plan_dir: str | Path, store: ResultStore, package: str = DEFAULT_PACKAGE,
                  activity: str = DEFAULT_ACTIVITY, adb: Adb | None = None, apk: str | Path | None = None,
                  launch_id: str | None = None, timeout_s: float = WAIT_TIMEOUT_S, poll_s: float = 5.0,
                  progress: Callable[[PlanReport], None] | None = None,
                  sleep: Callable[[float], None] | None = None,
                  clock: Callable[[], float] | None = None) -> PlanReport:
    """Push a plan, start the harness on it with a fresh launch id, and wait for exactly that launch's runs.

    Results already on the device are collected first (so nothing is lost) and count as stale.
    Returns the report; ``report.missing`` names the runs that produced no results file in time.
    """
    import time

    plan_dir = Path(plan_dir)
    plan = load_plan(plan_dir / "plan.json")
    if plan["platform"] != "android":
        raise CollectError(f"{plan_dir} is a plan for {plan['device']} ({plan['platform']}), not Android")
    transport = AdbTransport(package, adb, activity)
    if apk is not None:
        transport.install(Path(apk))
    try:
        collect(transport, store)  # what earlier launches left: stored, and later counted as stale
    except CollectError as e:
        log.info("nothing collected before launching: %s", e)  # no results folder yet, or not installed
    remote = transport.write(plan_dir, f"{DEVICE_PLAN_ROOT.format(package=package)}/{plan['plan_id']}")
    launch = Launch(plan["plan_id"], check_launch_id(launch_id) if launch_id else new_launch_id(),
                    f"{remote}/plan.json")
    transport.launch(launch)
    return wait_for_plan(transport, plan, store, launch.launch_id, timeout_s=timeout_s, poll_s=poll_s,
                         progress=progress, sleep=sleep or time.sleep,
                         clock=clock or time.monotonic)
