"""Android collection and plan runs against a fake adb that behaves like AOSP's (tests/fakes/adb.py)."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from tests.bench._results import Polls, dumps, fixture, result
from tests.fakes import adb as fake_adb
from toolchain.bench.android import Adb, AdbTransport, bench_android, collect_android
from toolchain.bench.apps import APP_ID
from toolchain.bench.schema import MAX_RESULT_BYTES
from toolchain.bench.store import ResultStore
from toolchain.bench.transport import RemoteFolderMissing
from toolchain.errors import CollectError

PKG = APP_ID
EXTERNAL = f"/storage/emulated/0/Android/data/{PKG}/files/results"  # getExternalFilesDir("results")
PRIVATE = f"/data/user/0/{PKG}/files/results"


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """A phone with the release (non-debuggable) harness installed, the build `deploy bench` times."""
    root = tmp_path / "phone"
    fake_adb.install(tmp_path / "bin", root, {"packages": {PKG: {"debuggable": False}}})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("ADB", raising=False)
    return fake_adb.Phone(root)


def put(phone, folder: str, name: str, data: bytes) -> None:
    p = phone.host(folder) / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def log(phone) -> list[list[str]]:
    return [json.loads(ln) for ln in (phone.root / "log").read_text().splitlines()]


def test_exec_out_exits_0_with_the_error_on_stdout_and_exec_reads_the_real_status(phone):
    raw = Adb().run(["exec-out", "cat", "/nope"], check=False)
    assert raw.returncode == 0 and raw.stdout == b"cat: /nope: No such file or directory\n" and raw.stderr == b""
    assert Adb().exec("cat /nope") == (1, b"cat: /nope: No such file or directory\n")
    rc, out = Adb().exec(f"run-as {PKG} ls -1 files/results")
    assert (rc, out) == (1, f"run-as: package not debuggable: {PKG}\n".encode())


@pytest.mark.parametrize("sdk", [29, 34])  # Android 10 (scoped storage) and 14: adb's shell reads the same path
def test_release_build_results_are_read_from_the_external_files_folder(phone, tmp_path, sdk):
    """The defect: run-as's refusal came back with exit 0 and was taken for an empty private folder."""
    phone.state["sdk"] = sdk
    phone.save()
    put(phone, "/sdcard/Android/data/" + PKG + "/files/results", "a.json", dumps(fixture("ok")))
    put(phone, EXTERNAL, "b.json", dumps(fixture("partial")))
    put(phone, EXTERNAL, "c.json", b"{truncated")
    put(phone, EXTERNAL, ".d.json.tmp", b"half-written")
    store = ResultStore(tmp_path / "store")
    by = {c.remote.name: c.outcome.status for c in collect_android(PKG, store, Adb())}
    assert by == {"a.json": "stored", "b.json": "stored", "c.json": "rejected"}
    assert sorted(e.run_id for e in store.entries()) == sorted([fixture("ok")["run_id"], fixture("partial")["run_id"]])
    # a second collection finds the same files: duplicates, nothing rewritten
    assert [c.outcome.status for c in collect_android(PKG, store, Adb()) if c.outcome.ok] == ["duplicate"] * 2


def test_debug_build_that_fell_back_to_private_storage_is_read_through_run_as(phone, tmp_path):
    phone.state["packages"][PKG]["debuggable"] = True
    phone.save()
    put(phone, PRIVATE, "r.json", dumps(fixture("ok")))
    outs = collect_android(PKG, ResultStore(tmp_path / "s"), Adb())
    assert [(c.remote.source, c.outcome.status) for c in outs] == [(f"adb:{PKG}:files/results/r.json", "stored")]


def test_an_app_that_never_ran_and_a_missing_app_are_told_apart(phone, tmp_path):
    with pytest.raises(RemoteFolderMissing, match="has the app run a plan"):
        collect_android(PKG, ResultStore(tmp_path / "s"), Adb())
    with pytest.raises(CollectError, match="unknown package: org.other.app") as e:
        collect_android("org.other.app", ResultStore(tmp_path / "s"), Adb())
    assert not isinstance(e.value, RemoteFolderMissing)


def test_hostile_names_and_oversized_files_are_not_fetched(phone, tmp_path):
    put(phone, EXTERNAL, "ok.json", dumps(fixture("ok")))
    put(phone, EXTERNAL, "a b.json", b"{}")
    put(phone, EXTERNAL, "huge.json", b"{" + b" " * (MAX_RESULT_BYTES + 5) + b"}")
    outs = {c.remote.name: c.outcome for c in collect_android(PKG, ResultStore(tmp_path / "s"), Adb())}
    assert outs["ok.json"].status == "stored"
    assert outs["a b.json"].status == "rejected" and "unsafe file name" in outs["a b.json"].message
    assert outs["huge.json"].status == "rejected" and "larger than" in outs["huge.json"].message
    assert not any("a b.json" in " ".join(a) for a in log(phone) if "cat" in " ".join(a))  # never asked for


def test_adb_shell_returns_the_remote_status_only_with_the_shell_protocol(phone):
    """Android 7+ (shell v2) passes the exit status through; older devices always give 0 (commandline.cpp)."""
    assert Adb().run(["shell", "ls", "/nope"], check=False).returncode == 1
    phone.state["sdk"] = 23
    phone.save()
    assert Adb().run(["shell", "ls", "/nope"], check=False).returncode == 0


def test_no_device_and_no_adb_are_clear_errors(phone, tmp_path, monkeypatch):
    phone.state["serials"] = []
    phone.save()
    with pytest.raises(CollectError, match="no Android device"):
        collect_android(PKG, ResultStore(tmp_path / "s"), Adb())
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(CollectError, match="adb not found"):
        Adb()


def write_plan(tmp_path, keys=("r1", "r2"), plan_id="p1", platform="android"):
    plan_dir = tmp_path / f"plan-{plan_id}"
    plan_dir.mkdir()
    plan = {"plan_version": 1, "plan_id": plan_id, "created_at": "2025-03-02T09:15:00Z", "device": "android",
            "platform": platform, "protocol": fixture("ok")["protocol"], "inputs": [],
            "runs": [{"key": k, "artifact": {"name": "m", "format": "tflite", "path": "artifacts/m/m.tflite",
                                             "sha256": "a" * 64, "precision": "fp32", "size_bytes": 1},
                      "compute_units": "cpu", "delegate": "xnnpack", "threads": 4,
                      "input": {"name": "x", "shape": [1, 64, 64, 3], "layout": "nhwc", "dtype": "float32"},
                      "output": {"name": "features", "dim": 64}, "fixed_input": None, "reference_sample": None}
                     for k in keys]}
    (plan_dir / "plan.json").write_text(json.dumps(plan))
    return plan_dir


def _bench(plan_dir, store, **kw):
    return bench_android(plan_dir, store, adb=Adb(), poll_s=0, sleep=lambda s: None, clock=Polls(),
                         timeout_s=kw.pop("timeout_s", 50), **kw)


def test_bench_android_pushes_starts_with_a_launch_id_and_waits_for_every_run(phone, tmp_path):
    plan_dir = write_plan(tmp_path)
    store = ResultStore(tmp_path / "s")
    seen = []
    report = _bench(plan_dir, store, progress=lambda r: seen.append(len(r.found)), launch_id="L1")
    assert report.complete and not report.timed_out and report.expected == 2
    assert sorted(k for _, k in report.found) == ["r1", "r2"]
    assert seen[0] < 2 and seen[-1] == 2  # the app wrote its results over several polls
    starts = [a for a in log(phone) if a[:1] == ["exec-out"] and "am start" in a[1]]
    assert len(starts) == 1 and "--es plan /data/local/tmp/ocularbench/plans/p1/plan.json --es launch_id L1" in starts[0][1]
    assert phone.host("/data/local/tmp/ocularbench/plans/p1/plan.json").is_file()
    for rid in report.found.values():
        assert store.get(rid)["launch_id"] == "L1"


def test_rerunning_a_plan_waits_for_the_new_launch_and_counts_the_old_results_as_stale(phone, tmp_path):
    """The defect: any stored result with the plan's id counted, so a rerun "finished" at once."""
    plan_dir = write_plan(tmp_path)
    store = ResultStore(tmp_path / "s")
    first = _bench(plan_dir, store, launch_id="L1")
    assert first.complete
    second = _bench(plan_dir, store, launch_id="L2")
    assert second.complete
    assert {store.get(rid)["launch_id"] for rid in second.found.values()} == {"L2"}
    assert sorted(second.stale) == sorted(first.found.values())
    assert len(store.entries()) == 4  # nothing lost: the old launch's files are kept too


def test_a_run_that_never_writes_is_named_at_the_timeout_and_what_arrived_is_kept(phone, tmp_path):
    phone.state["skip_keys"] = ["r2"]
    phone.save()
    plan_dir = write_plan(tmp_path)
    store = ResultStore(tmp_path / "s")
    report = _bench(plan_dir, store, timeout_s=6)
    assert report.timed_out and report.missing == ["r2"]
    assert [e.run_id.split(".")[1] for e in store.entries()] == ["r1"]


def test_bench_android_installs_the_apk_when_given(phone, tmp_path):
    phone.state["packages"] = {}
    phone.save()
    plan_dir = write_plan(tmp_path)
    apk = fake_adb.apk(tmp_path / "app-release.apk", PKG, debuggable=False)
    assert _bench(plan_dir, ResultStore(tmp_path / "s"), apk=apk).complete
    assert ["install", "-r", str(apk)] in log(phone)


def test_starting_an_app_that_is_not_installed_is_an_error(phone, tmp_path):
    phone.state["packages"] = {}
    phone.save()
    with pytest.raises(CollectError, match="does not exist"):
        _bench(write_plan(tmp_path), ResultStore(tmp_path / "s"))


def test_bench_android_refuses_an_invalid_or_ios_plan_before_touching_the_device(phone, tmp_path):
    from toolchain.errors import SchemaError

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "plan.json").write_text("{}")
    with pytest.raises(SchemaError):
        _bench(bad, ResultStore(tmp_path / "s"))
    ios_plan = write_plan(tmp_path, platform="ios", plan_id="pi")
    plan = json.loads((ios_plan / "plan.json").read_text())
    for r in plan["runs"]:
        r["artifact"]["format"], r["compute_units"] = "coreml", "all"
    (ios_plan / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(CollectError, match="not Android"):
        _bench(ios_plan, ResultStore(tmp_path / "s"))
    assert not (phone.root / "log").exists()


def _cli(*args):
    from toolchain.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_bench_and_collect_exit_1_naming_the_missing_runs(phone, tmp_path):
    phone.state["skip_keys"] = ["r2"]
    phone.save()
    plan_dir = write_plan(tmp_path)
    res = _cli("bench", "android", "--plan", plan_dir, "--out", tmp_path / "s", "--timeout", "0.3",
               "--launch-id", "L9")
    assert res.exit_code == 1, res.output
    assert "no results file for 1 run(s): r2" in res.output and "1 of 2 expected" in res.output
    again = _cli("collect", "android", "--plan", plan_dir, "--launch-id", "L9", "--out", tmp_path / "s")
    assert again.exit_code == 1 and "r2" in again.output and "1 duplicate" in again.output
    other = _cli("collect", "android", "--plan", plan_dir, "--launch-id", "L0", "--out", tmp_path / "s")
    assert other.exit_code == 1 and "from earlier launches" in other.output and "r1, r2" in other.output
    put(phone, EXTERNAL, "r2.json", dumps(result("p1.r2.0000abcd", plan_id="p1", launch_id="L9", run_key="r2")))
    done = _cli("collect", "android", "--plan", plan_dir, "--launch-id", "L9", "--out", tmp_path / "s")
    assert done.exit_code == 0, done.output
    assert "2 of 2 expected" in done.output


def test_android_5_toolbox_ls_refuses_dash_1_and_the_results_are_still_listed(phone, tmp_path):
    """The defect: `ls -1` is "Unknown option" to Android 5.x's toolbox ls (minSdk 21 is still supported)."""
    phone.state["sdk"] = 22
    phone.save()
    assert Adb().exec("ls -1 /sdcard") == (1, b"ls: Unknown option '-1'. Aborting.\n")
    put(phone, EXTERNAL, "a.json", dumps(fixture("ok")))
    outs = collect_android(PKG, ResultStore(tmp_path / "s"), Adb())
    assert [(c.remote.name, c.outcome.status) for c in outs] == [("a.json", "stored")]


@pytest.mark.parametrize("sdk", [21, 30, 35])
def test_the_plan_is_pushed_to_data_local_tmp_never_into_the_apps_folders(phone, tmp_path, sdk):
    """The defect: `adb push` into Android/data/<pkg> fails on some Android 11+ builds (adbd's fchown)."""
    phone.state["sdk"] = sdk
    phone.save()
    plan_dir = write_plan(tmp_path)
    raw = Adb().run(["push", str(plan_dir), f"/sdcard/Android/data/{PKG}/files/plans/x"], check=False)
    assert (raw.returncode != 0) == (sdk >= 30) and (sdk < 30 or b"remote fchown failed" in raw.stderr)
    report = _bench(plan_dir, ResultStore(tmp_path / "s"), launch_id="L1")
    assert report.complete
    pushes = [a for a in log(phone) if a[:1] == ["push"]]
    assert [a[2] for a in pushes][1:] == ["/data/local/tmp/ocularbench/plans/p1"]
    assert any(a[:1] == ["exec-out"] and a[1].startswith("chmod -R 755 /data/local/tmp/ocularbench") for a in log(phone))


def test_a_phone_going_offline_and_a_cut_stream_mid_wait_are_retried_and_counted(phone, tmp_path):
    """The defect: one `error: device offline` or a truncated exec-out stream ended the whole wait."""
    dropped = []

    def drop(report):
        if not dropped:  # after the first poll: the cable is knocked, the phone re-enumerates
            state = fake_adb.read_state(phone.root)
            state.update(device_drops=2, cut_streams=1)
            fake_adb.write_state(phone.root, state)
            dropped.append(1)

    report = _bench(write_plan(tmp_path), ResultStore(tmp_path / "s"), launch_id="L1", progress=drop)
    assert report.complete and report.retries == 3


def test_a_permanent_adb_error_ends_the_wait_at_once(phone, tmp_path):
    def revoke(report):
        state = fake_adb.read_state(phone.root)
        state["unauthorized"] = True
        fake_adb.write_state(phone.root, state)

    with pytest.raises(CollectError, match="error: device unauthorized") as e:
        _bench(write_plan(tmp_path), ResultStore(tmp_path / "s"), launch_id="L1", progress=revoke)
    assert "gave up" not in str(e.value)


def test_a_stalled_exec_out_is_killed_after_the_timeout_and_retried(phone, tmp_path):
    """The defect: a stalled transfer blocked `proc.stdout.read` for ever."""
    put(phone, EXTERNAL, "a.json", dumps(fixture("ok")))
    transport = AdbTransport(PKG, Adb(timeout_s=1.0))
    files = transport.list()
    state = fake_adb.read_state(phone.root)
    state["stall_s"] = 30
    fake_adb.write_state(phone.root, state)
    import time

    t0 = time.monotonic()
    from toolchain.bench.transport import Transient

    with pytest.raises(Transient, match="stalled: no end after 1 s"):
        transport.read(files[0], MAX_RESULT_BYTES)
    assert time.monotonic() - t0 < 10
    assert json.loads(transport.read(files[0], MAX_RESULT_BYTES))["run_id"] == fixture("ok")["run_id"]


def test_a_sleeping_swipe_locked_phone_is_woken_and_a_pin_locked_one_refused_before_am_start(phone, tmp_path):
    """The defect: `am start` on a sleeping or locked phone ran the benchmark behind the keyguard, silently."""
    phone.state.update(awake=False, locked=True)
    phone.save()
    assert _bench(write_plan(tmp_path), ResultStore(tmp_path / "s"), launch_id="L1").complete
    assert fake_adb.read_state(phone.root)["screen_log"] == ["KEYCODE_WAKEUP", "dismiss-keyguard"]
    state = fake_adb.read_state(phone.root)
    state.update(awake=False, locked=True, secure_lock=True)
    fake_adb.write_state(phone.root, state)
    with pytest.raises(CollectError, match=r"the phone is locked \(keyguard showing\) after waking it"):
        _bench(write_plan(tmp_path, plan_id="p2"), ResultStore(tmp_path / "s2"), launch_id="L2")
    assert not any("am start" in a[1] and "L2" in a[1] for a in log(phone) if a[:1] == ["exec-out"])


def test_a_run_collected_over_adb_keeps_native_invoke_time_and_where_the_ops_ran(phone, tmp_path):
    """The defects (9, 10): results said `gpu` without how much of the graph ran there, and kept only Java wall time."""
    from toolchain.bench.measures import partly_delegated

    store = ResultStore(tmp_path / "s")
    report = _bench(write_plan(tmp_path), store, launch_id="L1")
    assert report.complete
    for run_id in report.found.values():
        r = store.get(run_id)
        assert r["schema_version"] == 2 and len(r["native_latency_ns"]) == len(r["latency_ns"])
        assert all(n < w for n, w in zip(r["native_latency_ns"], r["latency_ns"]))
        assert r["placement"] == {**r["placement"], "source": "litert_log", "delegated_nodes": 42, "total_nodes": 45}
        assert partly_delegated(r) is True
