"""iOS collector against a fake house-arrest service (sync and async APIs) and a fake `xcrun devicectl`."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap

import pytest

from tests.bench._results import dumps, fixture, result
from toolchain.bench import ios
from toolchain.bench.schema import MAX_RESULT_BYTES
from toolchain.bench.store import ResultStore
from toolchain.errors import CollectError

BUNDLE = "org.oculardeploy.bench"  # ios_harness PRODUCT_BUNDLE_IDENTIFIER


class FakeHouseArrest:
    """The slice of pymobiledevice3's HouseArrestService the collector uses (sync flavour)."""

    def __init__(self, files: dict[str, bytes], sizes: dict[str, int] | None = None) -> None:
        self.files, self.sizes, self.asked, self.closed = files, sizes or {}, [], False

    def listdir(self, path):
        if path != "/Documents/results":
            raise FileNotFoundError(path)
        return [".", "..", *self.files]

    def stat(self, path):
        name = path.rsplit("/", 1)[-1]
        return {"st_size": self.sizes.get(name, len(self.files[name]))}

    def get_file_contents(self, path):
        self.asked.append(path)
        return self.files[path.rsplit("/", 1)[-1]]

    def close(self):
        self.closed = True


class AsyncFakeHouseArrest(FakeHouseArrest):
    """pymobiledevice3 >= 5: every call is a coroutine."""

    async def listdir(self, path):
        return FakeHouseArrest.listdir(self, path)

    async def stat(self, path):
        return FakeHouseArrest.stat(self, path)

    async def get_file_contents(self, path):
        return FakeHouseArrest.get_file_contents(self, path)

    async def close(self):
        self.closed = True


@pytest.mark.parametrize("cls", [FakeHouseArrest, AsyncFakeHouseArrest])
def test_house_arrest_collects_validates_and_keeps_good_files(tmp_path, cls):
    svc = cls({"a.json": dumps(fixture("ok")), "b.json": dumps(fixture("error")), "c.json": b"{\"run_id\":",
               "notes.txt": b"ignored"})
    store = ResultStore(tmp_path)
    asked = []

    async def factory(bundle_id, udid):  # also exercises an async factory
        asked.append((bundle_id, udid))
        return svc

    outs = ios.collect_ios(BUNDLE, store, udid="UDID1", via="house-arrest", service_factory=factory)
    assert asked == [(BUNDLE, "UDID1")]
    assert {o.source.rsplit("/", 1)[-1]: o.status for o in outs} == {"a.json": "stored", "b.json": "stored",
                                                                      "c.json": "rejected"}
    assert "c.json" in outs[2].message
    assert len(store.entries()) == 2 and svc.closed
    assert "/Documents/results/notes.txt" not in svc.asked


def test_unsafe_names_and_oversized_files_are_not_fetched(tmp_path):
    svc = FakeHouseArrest({"../../x.json": b"{}", "big.json": b"{}", "ok.json": dumps(fixture("ok"))},
                          sizes={"big.json": MAX_RESULT_BYTES + 1})
    outs = ios.collect_ios(BUNDLE, ResultStore(tmp_path), via="house-arrest", service_factory=lambda b, u: svc)
    assert [o.status for o in outs] == ["rejected", "rejected", "stored"]
    assert "unsafe file name" in outs[0].message and "larger than" in outs[1].message
    assert svc.asked == ["/Documents/results/ok.json"]


def test_app_that_never_ran_is_a_clear_error(tmp_path):
    class Empty(FakeHouseArrest):
        def listdir(self, path):
            raise RuntimeError("AFC_E_OBJECT_NOT_FOUND")

    with pytest.raises(CollectError, match="has the app run a plan yet"):
        ios.collect_ios(BUNDLE, ResultStore(tmp_path), via="house-arrest", service_factory=lambda b, u: Empty({}))


def test_missing_pymobiledevice3_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymobiledevice3", None)
    monkeypatch.setitem(sys.modules, "pymobiledevice3.lockdown", None)
    with pytest.raises(CollectError, match=r"pip install '\.\[ios\]'"):
        ios.collect_ios(BUNDLE, ResultStore(tmp_path), via="house-arrest")


def test_unknown_transfer_lists_the_known_ones(tmp_path):
    with pytest.raises(Exception, match="devicectl, house-arrest"):
        ios.collect_ios(BUNDLE, ResultStore(tmp_path), via="bluetooth")


FAKE_XCRUN = textwrap.dedent('''\
    #!PYTHON
    import os, shutil, sys
    root = os.environ["FAKE_IOS_ROOT"]
    with open(os.path.join(root, "log"), "a") as log:
        log.write(" ".join(sys.argv[1:]) + "\\n")
    a = sys.argv[1:]
    if a[:4] == ["devicectl", "device", "copy", "from"]:
        dest = a[a.index("--destination") + 1]
        src = os.path.join(root, "device")
        for n in os.listdir(src):
            p = os.path.join(src, n)
            if os.path.islink(p):
                os.symlink(os.readlink(p), os.path.join(dest, n))
            else:
                shutil.copy(p, os.path.join(dest, n))
    sys.exit(0)
''').replace("PYTHON", sys.executable)


def _install_fake(tmp_path, monkeypatch, name, text):
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / name
    exe.write_text(text)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")


def test_devicectl_copies_then_stores_only_regular_files(tmp_path, monkeypatch):
    root = tmp_path / "fake"
    (root / "device").mkdir(parents=True)
    (root / "device" / "r.json").write_bytes(dumps(fixture("ok")))
    secret = tmp_path / "secret.json"
    secret.write_bytes(dumps(result("secret-run")))
    (root / "device" / "link.json").symlink_to(secret)
    monkeypatch.setenv("FAKE_IOS_ROOT", str(root))
    _install_fake(tmp_path, monkeypatch, "xcrun", FAKE_XCRUN)
    store = ResultStore(tmp_path / "s")
    outs = ios.collect_ios(BUNDLE, store, udid="U1", via="devicectl")
    assert [o.status for o in outs] == ["stored"]
    assert [e.run_id for e in store.entries()] == [fixture("ok")["run_id"]]
    log = (root / "log").read_text()
    assert f"--domain-type appDataContainer --domain-identifier {BUNDLE} --source Documents/results" in log


def test_bench_ios_installs_launches_with_the_plan_and_collects(tmp_path, monkeypatch):
    root = tmp_path / "fake"
    root.mkdir()
    monkeypatch.setenv("FAKE_IOS_ROOT", str(root))
    _install_fake(tmp_path, monkeypatch, "pymobiledevice3", FAKE_XCRUN)  # logs its arguments, exits 0
    from tests.bench.test_collect_android import write_plan

    (tmp_path / "p").mkdir()
    plan_dir = write_plan(tmp_path / "p", keys=("r1",), plan_id="p1")
    plan = json.loads((plan_dir / "plan.json").read_text())
    plan.update(platform="ios", device="iphonexr")
    for r in plan["runs"]:
        r["artifact"]["format"], r["compute_units"] = "coreml", "all"
    (plan_dir / "plan.json").write_text(json.dumps(plan))
    app = tmp_path / "OcularBench.ipa"
    app.write_bytes(b"ipa")
    svc = FakeHouseArrest({})

    def factory(bundle_id, udid):
        if "launch" in (root / "log").read_text():  # results appear once the app was launched
            svc.files = {"p1.r1.json": dumps(result("p1.r1", plan_id="p1"))}
        return svc

    outs = ios.bench_ios(plan_dir, app, ResultStore(tmp_path / "s"), via="house-arrest", poll_s=0.01,
                         timeout_s=5, service_factory=factory)
    assert [o.run_id for o in outs if o.ok] == ["p1.r1"]
    log = (root / "log").read_text().splitlines()
    assert log[0] == f"apps install {app}"
    assert log[1] == f"developer dvt launch {BUNDLE} -autorun YES -plan BenchPlan/plan.json"
