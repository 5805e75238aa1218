"""Android collector and plan runner against a fake `adb` on PATH (a script backed by a folder)."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap

import pytest

from tests.bench._results import dumps, fixture, result
from toolchain.bench.android import Adb, bench_android, collect_android
from toolchain.bench.schema import MAX_RESULT_BYTES
from toolchain.bench.store import ResultStore
from toolchain.errors import CollectError

PKG = "org.oculardeploy.bench"

FAKE_ADB = textwrap.dedent('''\
    #!PYTHON
    """Fake adb: devices, exec-out run-as PKG ls/cat, exec-out ls/cat, push, shell am start/rm/mkdir."""
    import os, shutil, sys
    root = os.environ["FAKE_ADB_ROOT"]
    args = sys.argv[1:]
    with open(os.path.join(root, "log"), "a") as log:
        log.write(" ".join(args) + "\\n")
    if args[:1] == ["-s"]:
        args = args[2:]
    devices = open(os.path.join(root, "devices")).read().split()
    if args == ["devices"]:
        print("List of devices attached")
        for d in devices:
            print(d + "\\tdevice")
        sys.exit(0)
    if not devices:
        sys.stderr.write("adb: no devices/emulators found\\n"); sys.exit(1)
    def files(pkg):
        return os.path.join(root, "data", pkg)
    if args[:2] == ["exec-out", "run-as"]:
        pkg, cmd, path = args[2], args[3], args[-1]
        if not os.path.isdir(files(pkg)):
            sys.stderr.write("run-as: package not debuggable: " + pkg + "\\n"); sys.exit(1)
        full = os.path.join(files(pkg), path)
    elif args[:1] == ["exec-out"]:
        cmd, path = args[1], args[-1]
        full = os.path.join(root, "sdcard", path.lstrip("/"))
    elif args[:1] == ["push"]:
        shutil.copytree(args[1], os.path.join(root, "pushed", os.path.basename(args[2])), dirs_exist_ok=True)
        sys.exit(0)
    elif args[:3] == ["shell", "am", "start"]:
        pending = os.path.join(root, "pending")
        dest = os.path.join(files(args[args.index("-n") + 1].split("/")[0]), "files", "results")
        os.makedirs(dest, exist_ok=True)
        for n in sorted(os.listdir(pending)) if os.path.isdir(pending) else []:
            shutil.move(os.path.join(pending, n), os.path.join(dest, n))
        print("Status: ok"); sys.exit(0)
    elif args[:1] == ["shell"]:
        sys.exit(0)
    else:
        sys.stderr.write("fake adb: unsupported " + " ".join(args) + "\\n"); sys.exit(2)
    if cmd == "ls":
        if not os.path.isdir(full):
            sys.stderr.write("ls: " + path + ": No such file or directory\\n"); sys.exit(1)
        names = os.environ.get("FAKE_ADB_LS")
        print("\\n".join(names.split("|") if names else sorted(os.listdir(full))))
    elif cmd == "cat":
        try:
            with open(full, "rb") as fh:
                shutil.copyfileobj(fh, sys.stdout.buffer)
        except OSError as e:
            sys.stderr.write("cat: " + path + ": " + e.strerror + "\\n"); sys.exit(1)
''').replace("PYTHON", sys.executable)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    root = tmp_path / "fake"
    (root / "data" / PKG / "files" / "results").mkdir(parents=True)
    (root / "devices").write_text("SER123\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "adb"
    exe.write_text(FAKE_ADB)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("FAKE_ADB_ROOT", str(root))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("ADB", raising=False)
    return root


def _results_dir(root):
    return root / "data" / PKG / "files" / "results"


def test_collects_every_file_and_rejects_the_bad_one(fake, tmp_path):
    d = _results_dir(fake)
    (d / "a.json").write_bytes(dumps(fixture("ok")))
    (d / "b.json").write_bytes(dumps(fixture("partial")))
    (d / "c.json").write_bytes(b"{truncated")
    (d / "d.json.tmp").write_bytes(b"half-written")
    store = ResultStore(tmp_path / "store")
    outs = collect_android(PKG, store, Adb())
    by = {o.source.rsplit("/", 1)[-1]: o.status for o in outs}
    assert by == {"a.json": "stored", "b.json": "stored", "c.json": "rejected"}
    assert sorted(e.run_id for e in store.entries()) == sorted([fixture("ok")["run_id"], fixture("partial")["run_id"]])
    # a second collection finds the same files: duplicates, nothing rewritten
    assert [o.status for o in collect_android(PKG, store, Adb()) if o.ok] == ["duplicate", "duplicate"]


def test_hostile_names_from_the_device_are_not_fetched(fake, tmp_path, monkeypatch):
    (_results_dir(fake) / "ok.json").write_bytes(dumps(fixture("ok")))
    monkeypatch.setenv("FAKE_ADB_LS", "ok.json|../../../../etc/x.json|a b.json")
    outs = collect_android(PKG, ResultStore(tmp_path / "s"), Adb())
    assert [o.status for o in outs] == ["stored", "rejected", "rejected"]
    assert "unsafe file name" in outs[1].message
    log = (fake / "log").read_text()
    assert "etc/x.json" not in log.split("ls -1")[-1]  # never asked the device for it


def test_oversized_file_is_left_on_the_device(fake, tmp_path):
    (_results_dir(fake) / "huge.json").write_bytes(b"{" + b" " * (MAX_RESULT_BYTES + 5) + b"}")
    outs = collect_android(PKG, ResultStore(tmp_path / "s"), Adb())
    assert outs[0].status == "rejected" and "larger than" in outs[0].message


def test_release_build_falls_back_to_external_files(fake, tmp_path):
    import shutil

    shutil.rmtree(fake / "data" / PKG)
    ext = fake / "sdcard" / "sdcard" / "Android" / "data" / PKG / "files" / "results"
    ext.mkdir(parents=True)
    (ext / "r.json").write_bytes(dumps(fixture("ok")))
    outs = collect_android(PKG, ResultStore(tmp_path / "s"), Adb())
    assert [o.status for o in outs] == ["stored"]


def test_no_device_and_no_adb_are_clear_errors(fake, tmp_path, monkeypatch):
    (fake / "devices").write_text("")
    with pytest.raises(CollectError, match="no Android device"):
        collect_android(PKG, ResultStore(tmp_path / "s"), Adb())
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(CollectError, match="adb not found"):
        Adb()


def write_plan(tmp_path, keys=("r1", "r2"), plan_id="p1"):
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    plan = {"plan_version": 1, "plan_id": plan_id, "created_at": "2025-03-02T09:15:00Z", "device": "android",
            "platform": "android", "protocol": fixture("ok")["protocol"], "inputs": [],
            "runs": [{"key": k, "artifact": {"name": "m", "format": "tflite", "path": "artifacts/m/m.tflite",
                                             "sha256": "a" * 64, "precision": "fp32", "size_bytes": 1},
                      "compute_units": "cpu", "delegate": "xnnpack", "threads": 4,
                      "input": {"name": "x", "shape": [1, 64, 64, 3], "layout": "nhwc", "dtype": "float32"},
                      "output": {"name": "features", "dim": 64}, "fixed_input": None, "reference_sample": None}
                     for k in keys]}
    (plan_dir / "plan.json").write_text(json.dumps(plan))
    return plan_dir


def test_bench_android_pushes_starts_and_waits_for_every_run(fake, tmp_path):
    plan_dir = write_plan(tmp_path)
    (fake / "pending").mkdir()
    for k in ("r1", "r2"):
        (fake / "pending" / f"{k}.json").write_bytes(dumps(result(f"p1.{k}", plan_id="p1")))
    store = ResultStore(tmp_path / "s")
    seen = []
    outs = bench_android(plan_dir, store, adb=Adb(), poll_s=0.01, timeout_s=10, progress=lambda g, w: seen.append((g, w)))
    assert sorted(o.run_id for o in outs) == ["p1.r1", "p1.r2"]
    assert seen[-1] == (2, 2)
    log = (fake / "log").read_text()
    assert f"am start -W -S -n {PKG}/.MainActivity --es plan /sdcard/Android/data/{PKG}/files/plans/p1/plan.json" in log
    assert (fake / "pushed" / "p1" / "plan.json").exists()


def test_bench_android_times_out_keeping_what_arrived(fake, tmp_path):
    plan_dir = write_plan(tmp_path)
    (fake / "pending").mkdir()
    (fake / "pending" / "r1.json").write_bytes(dumps(result("p1.r1", plan_id="p1")))
    store = ResultStore(tmp_path / "s")
    with pytest.raises(CollectError, match="1 of 2 results"):
        bench_android(plan_dir, store, adb=Adb(), poll_s=0.01, timeout_s=0.05)
    assert [e.run_id for e in store.entries()] == ["p1.r1"]


def test_bench_android_refuses_an_invalid_plan_before_touching_the_device(fake, tmp_path):
    from toolchain.errors import SchemaError

    plan_dir = tmp_path / "bad"
    plan_dir.mkdir()
    (plan_dir / "plan.json").write_text("{}")
    with pytest.raises(SchemaError):
        bench_android(plan_dir, ResultStore(tmp_path / "s"), adb=Adb())
    assert not (fake / "log").exists()
