"""iOS collection and plan runs against fakes of pymobiledevice3 and devicectl (tests/fakes/ios.py)."""

from __future__ import annotations

import json
import os
import sys

import pytest
from typer.testing import CliRunner

from tests.bench._results import Polls, dumps, fixture, result
from tests.fakes import ios as fake
from toolchain.bench import ios
from toolchain.bench.apps import APP_ID
from toolchain.bench.schema import MAX_RESULT_BYTES
from toolchain.bench.store import ResultStore
from toolchain.bench.transport import RemoteFolderMissing
from toolchain.errors import CollectError

BUNDLE = APP_ID  # ios_harness PRODUCT_BUNDLE_IDENTIFIER
UDID_XR = "00008020-000E1D6A0E10002E"
UDID_X = "d6c2c9dd2da8def539603fe180c1e6c59b277f58"


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """An iPhone XR on iOS 18 with the harness installed (file sharing on), plus fake CLIs on PATH."""
    p = fake.IPhone.create(tmp_path / "phone", udid=UDID_XR, ios="18.3",
                           apps={BUNDLE: {"file_sharing": True, "bundled_plan": None}})
    fake.install_tools(tmp_path / "bin", p.root)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return p


def put(phone, name: str, data: bytes) -> None:
    d = phone.documents(BUNDLE) / "results"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def log(phone) -> list[list[str]]:
    path = phone.root / "log"
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("cls", [fake.HouseArrest, fake.AsyncHouseArrest])
def test_house_arrest_collects_validates_and_keeps_good_files(phone, tmp_path, cls):
    put(phone, "a.json", dumps(fixture("ok")))
    put(phone, "b.json", dumps(fixture("error")))
    put(phone, "c.json", b'{"run_id":')
    put(phone, "notes.txt", b"ignored")
    store = ResultStore(tmp_path / "s")
    outs = ios.collect_ios(BUNDLE, store, udid=UDID_XR, via="pymobiledevice3",
                           service_factory=fake.factory(phone.root, cls))
    assert {c.remote.name: c.outcome.status for c in outs} == {"a.json": "stored", "b.json": "stored",
                                                              "c.json": "rejected"}
    assert len(store.entries()) == 2


def test_unsafe_names_and_oversized_files_are_not_fetched(phone, tmp_path):
    put(phone, "ok.json", dumps(fixture("ok")))
    put(phone, "a b.json", b"{}")
    put(phone, "big.json", b" " * (MAX_RESULT_BYTES + 1))
    svcs = []

    def factory(b, u):
        svcs.append(fake.factory(phone.root)(b, u))
        return svcs[-1]

    outs = {c.remote.name: c.outcome for c in ios.collect_ios(BUNDLE, ResultStore(tmp_path / "s"), via="pymobiledevice3",
                                                              service_factory=factory)}
    assert outs["ok.json"].status == "stored"
    assert "unsafe file name" in outs["a b.json"].message and "larger than" in outs["big.json"].message
    assert svcs[0].asked == ["/Documents/results/ok.json"] and svcs[0].closed


def test_app_that_never_ran_not_installed_and_file_sharing_off_are_clear_errors(phone, tmp_path):
    store = ResultStore(tmp_path / "s")
    with pytest.raises(RemoteFolderMissing, match="has the app run a plan yet"):
        ios.collect_ios(BUNDLE, store, via="pymobiledevice3", service_factory=fake.factory(phone.root))
    with pytest.raises(CollectError, match="not installed"):
        ios.collect_ios("org.other", store, via="pymobiledevice3", service_factory=fake.factory(phone.root))
    phone.state["apps"][BUNDLE]["file_sharing"] = False
    phone.save()
    with pytest.raises(CollectError, match="InstallationLookupFailed.*UIFileSharingEnabled"):
        ios.collect_ios(BUNDLE, store, via="pymobiledevice3", service_factory=fake.factory(phone.root))


def test_missing_pymobiledevice3_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymobiledevice3", None)
    monkeypatch.setitem(sys.modules, "pymobiledevice3.lockdown", None)
    with pytest.raises(CollectError, match=r"pip install '\.\[ios\]'"):
        ios.collect_ios(BUNDLE, ResultStore(tmp_path), via="pymobiledevice3")


def test_unknown_transfer_lists_the_known_ones(tmp_path):
    with pytest.raises(Exception, match="devicectl, house-arrest, pymobiledevice3"):
        ios.collect_ios(BUNDLE, ResultStore(tmp_path), via="bluetooth")


def test_devicectl_copies_then_stores_only_regular_files(phone, tmp_path):
    put(phone, "r.json", dumps(fixture("ok")))
    secret = tmp_path / "secret.json"
    secret.write_bytes(dumps(result("secret-run")))
    (phone.documents(BUNDLE) / "results" / "link.json").symlink_to(secret)
    store = ResultStore(tmp_path / "s")
    outs = ios.collect_ios(BUNDLE, store, udid=UDID_XR, via="devicectl")
    assert [c.outcome.status for c in outs] == ["stored"]
    assert [e.run_id for e in store.entries()] == [fixture("ok")["run_id"]]
    copy = next(a for a in log(phone) if a[:4] == ["devicectl", "device", "copy", "from"])
    assert copy[copy.index("--domain-identifier") + 1] == BUNDLE and copy[copy.index("--source") + 1] == "Documents/results"


def test_devicectl_cannot_reach_a_device_below_ios_17_and_says_why(phone, tmp_path):
    phone.state.update(udid=UDID_X, ios="16.7.10")
    phone.save()
    with pytest.raises(CollectError, match="pairingState unsupported.*iOS 17\\+ only.*--via pymobiledevice3"):
        ios.collect_ios(BUNDLE, ResultStore(tmp_path / "s"), udid=UDID_X, via="devicectl")


def test_via_picks_pymobiledevice3_below_ios_17_and_says_why(phone, monkeypatch):
    """The defect: on a Mac the default was devicectl, which cannot see the iPhone 6, iPhone X or iPad Air 2."""
    for key, last in (("iphone6", "12.5.7"), ("iphonex", "16.7"), ("ipadair2", "15.8")):
        name, why = ios.choose_via(UDID_X, key, platform="darwin")
        assert name == "pymobiledevice3" and last in why and "17+" in why
        with pytest.raises(CollectError, match="--via devicectl cannot reach"):
            ios.choose_via(UDID_X, key, via="devicectl", platform="darwin")
    # a catalog device that can run iOS 17+: ask devicectl what the phone runs
    assert ios.choose_via(UDID_XR, "iphonexr", platform="darwin")[0] == "devicectl"
    phone.state["ios"] = "16.1"  # an iPhone XR never updated past 16
    phone.save()
    name, why = ios.choose_via(UDID_XR, "iphonexr", platform="darwin")
    assert name == "pymobiledevice3" and "does not list it" in why
    assert ios.choose_via(UDID_XR, "iphonexr", platform="linux") == ("pymobiledevice3",
                                                                     "no xcrun here (devicectl needs macOS with Xcode 15+)")


def write_ios_plan(tmp_path, keys=("r1", "r2"), plan_id="p1", device="iphonexr", created_at="2025-03-02T09:15:00Z"):
    from tests.bench.test_collect_android import write_plan

    folder = tmp_path / f"in-{plan_id}-{created_at[:10]}"
    folder.mkdir()
    plan_dir = write_plan(folder, keys=keys, plan_id=plan_id, platform="ios")
    plan = json.loads((plan_dir / "plan.json").read_text())
    plan.update(device=device, created_at=created_at)
    for r in plan["runs"]:
        r["artifact"]["format"], r["compute_units"], r["delegate"], r["threads"] = "coreml", "all", None, None
    (plan_dir / "plan.json").write_text(json.dumps(plan))
    return plan_dir


def _bench(phone, plan_dir, app, store, via, udid, **kw):
    return ios.bench_ios(plan_dir, app, store, udid=udid, via=via, poll_s=0, timeout_s=kw.pop("timeout_s", 50),
                         sleep=lambda s: None, clock=Polls(), service_factory=fake.factory(phone.root), **kw)


@pytest.mark.parametrize("via", ["pymobiledevice3", "devicectl"])
def test_bench_ios_installs_launches_with_a_launch_id_and_waits_for_this_launch(phone, tmp_path, via):
    plan_dir = write_ios_plan(tmp_path)
    app = fake.fake_app(tmp_path / "OcularBench.app", BUNDLE, plan_dir)
    store = ResultStore(tmp_path / "s")
    report = _bench(phone, plan_dir, app, store, via, UDID_XR, launch_id="L1")
    assert report.complete and sorted(k for _, k in report.found) == ["r1", "r2"]
    assert {store.get(rid)["launch_id"] for rid in report.found.values()} == {"L1"}
    calls = [" ".join(a) for a in log(phone)]
    if via == "pymobiledevice3":
        assert f"apps install --udid {UDID_XR} {app}" in calls
        assert f"developer dvt launch --udid {UDID_XR} {BUNDLE} -autorun YES -launch_id L1" in calls
    else:
        assert any(c.startswith("devicectl device process launch") and c.endswith(f"{BUNDLE} -autorun YES -launch_id L1")
                   for c in calls)
    # rerun: the first launch's files are still in Documents/results; they must not end the wait
    again = _bench(phone, plan_dir, app, store, via, UDID_XR, launch_id="L2")
    assert again.complete and {store.get(rid)["launch_id"] for rid in again.found.values()} == {"L2"}
    assert sorted(again.stale) == sorted(report.found.values())


def test_bench_ios_on_an_iphone_x_uses_pymobiledevice3_on_a_mac_too(phone, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    phone.state.update(udid=UDID_X, ios="16.7.10")
    phone.save()
    plan_dir = write_ios_plan(tmp_path, device="iphonex")
    app = fake.fake_app(tmp_path / "OcularBench.app", BUNDLE, plan_dir)
    chosen = []
    report = _bench(phone, plan_dir, app, ResultStore(tmp_path / "s"), None, UDID_X,
                    on_via=lambda n, w: chosen.append((n, w)))
    assert report.complete and chosen[0][0] == "pymobiledevice3" and "16.7" in chosen[0][1]
    assert not any(a[:2] == ["devicectl", "device"] for a in log(phone))


def test_a_newer_documents_plan_is_run_and_reported_as_another_plan(phone, tmp_path):
    """The app runs the newest plan it has; the report says the launch wrote another plan's results."""
    bundled = write_ios_plan(tmp_path, plan_id="p1", created_at="2025-03-02T09:15:00Z")
    newer = write_ios_plan(tmp_path, plan_id="p2", created_at="2025-04-01T10:00:00Z")
    app = fake.fake_app(tmp_path / "OcularBench.app", BUNDLE, bundled)
    import shutil

    shutil.copytree(newer, phone.documents(BUNDLE) / "BenchPlan")
    report = _bench(phone, bundled, app, ResultStore(tmp_path / "s"), "pymobiledevice3", UDID_XR, timeout_s=8,
                    launch_id="L1")
    assert report.timed_out and report.missing == ["r1", "r2"] and len(report.foreign) == 2
    # an *older* plan left in Documents no longer shadows the one built into the app
    shutil.rmtree(phone.documents(BUNDLE))
    shutil.copytree(write_ios_plan(tmp_path, plan_id="p0", created_at="2024-01-01T00:00:00Z"),
                    phone.documents(BUNDLE) / "BenchPlan")
    assert _bench(phone, bundled, app, ResultStore(tmp_path / "s2"), "pymobiledevice3", UDID_XR, launch_id="L2").complete


def test_cli_bench_ios_exits_1_naming_the_missing_runs_and_says_which_transport(phone, tmp_path, monkeypatch):
    phone.state["skip_keys"] = ["r2"]
    phone.save()
    plan_dir = write_ios_plan(tmp_path)
    app = fake.fake_app(tmp_path / "OcularBench.app", BUNDLE, plan_dir)
    monkeypatch.setattr(ios, "HouseArrestTransport",
                        lambda b, u, f=None, _real=ios.HouseArrestTransport: _real(b, u, fake.factory(phone.root)))
    from toolchain.cli import app as cli

    res = CliRunner().invoke(cli, ["bench", "ios", "--plan", str(plan_dir), "--app", str(app), "--udid", UDID_XR,
                                   "--via", "pymobiledevice3", "--out", str(tmp_path / "s"), "--timeout", "0.2"])
    assert res.exit_code == 1, res.output
    assert "via pymobiledevice3: asked for with --via" in res.output
    assert "no results file for 1 run(s): r2" in res.output


def _set(phone, **kw):
    p = fake.IPhone(phone.root)
    p.state.update(kw)
    p.save()


def test_devicectl_unplugged_or_locked_is_retried_and_lost_trust_is_not_a_missing_folder(phone, tmp_path):
    """The defect: every failed `devicectl device copy from` read as "folder missing": a wait of 1800 s."""
    plan_dir = write_ios_plan(tmp_path)
    app = fake.fake_app(tmp_path / "OcularBench.app", BUNDLE, plan_dir)

    def trouble(report):
        if not getattr(trouble, "done", False):
            _set(phone, copy_failures=["unplugged", "locked"])
            trouble.done = True

    report = _bench(phone, plan_dir, app, ResultStore(tmp_path / "s"), "devicectl", UDID_XR, launch_id="L1",
                    progress=trouble)
    assert report.complete and report.retries == 2
    _set(phone, copy_failures=["untrusted"])
    t = ios.DevicectlTransport(BUNDLE, UDID_XR)
    with pytest.raises(CollectError, match="no longer paired") as e:
        t.list()
    assert not isinstance(e.value, RemoteFolderMissing)
    polls = []
    with pytest.raises(CollectError, match="no longer paired"):
        _set(phone, copy_failures=["untrusted"])
        from toolchain.bench.wait import wait_for_plan

        wait_for_plan(t, None, ResultStore(tmp_path / "s2"), timeout_s=1800, poll_s=5, sleep=polls.append,
                      clock=Polls())
    assert polls == []  # ended at once, no waiting
    shutil_rm = phone.documents(BUNDLE) / "results"
    import shutil

    shutil.rmtree(shutil_rm)
    with pytest.raises(RemoteFolderMissing, match="doesn’t exist"):
        t.list()


def test_house_arrest_is_opened_again_after_a_usb_drop(phone, tmp_path):
    """The defect: a USB drop killed the house-arrest connection and the wait ended on the first error."""
    plan_dir = write_ios_plan(tmp_path)
    app = fake.fake_app(tmp_path / "OcularBench.app", BUNDLE, plan_dir)

    def drop(report):
        if not getattr(drop, "done", False):
            _set(phone, usb_drops=1, absent_for=2)
            drop.done = True

    report = _bench(phone, plan_dir, app, ResultStore(tmp_path / "s"), "pymobiledevice3", UDID_XR, launch_id="L1",
                    progress=drop)
    assert report.complete and report.retries == 3  # the dead connection, then two tries with no device
