"""The app builds `make test` runs before pytest: the Swift core with XCTest, the Android APK.

ios_harness/run-tests.sh and android_harness/build-apk.sh each leave a status file (.tools/status, see
scripts/harness_status.py). Here each becomes a pass, a failure or a skip with the script's reason, so
a step that could not be set up shows as skipped in pytest's summary, never as passed. A status whose
input hash no longer matches the sources (files edited since) is not trusted: skipped as stale.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = {"swift-core": REPO / "ios_harness" / "run-tests.sh", "android-apk": REPO / "android_harness" / "build-apk.sh"}

_spec = importlib.util.spec_from_file_location("harness_status", REPO / "scripts" / "harness_status.py")
status = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(status)


def outcome(step: str, repo: Path = REPO) -> tuple[str, str]:
    """("passed" | "failed" | "skipped", why) for a step's status file."""
    script = SCRIPTS[step].relative_to(REPO)
    rec = status.read(step, repo)
    if rec is None:
        return "skipped", f"{step} was not run here: `make test` runs `bash {script}` first"
    if rec["inputs_sha256"] != status.inputs_sha256(step, repo):
        return "skipped", f"{step}: sources changed since its last run (stale status): rerun `bash {script}`"
    if rec["status"] == "skipped":
        return "skipped", f"{step} could not be set up here: {rec['reason']}"
    if rec["status"] == "passed" and rec["passed"] > 0 and rec["failed"] == 0:
        return "passed", f"{rec['passed']} passed in {rec['seconds']} s"
    return "failed", f"{step}: {rec['status']}, {rec['passed']} passed, {rec['failed']} failed: {rec['reason']}"


@pytest.mark.parametrize("step", sorted(SCRIPTS))
def test_app_build_step(step):
    result, why = outcome(step)
    if result == "skipped":
        pytest.skip(why)
    assert result == "passed", why


# ------------------------------------------------------------------ the reporting itself

@pytest.fixture
def fake_repo(tmp_path, monkeypatch) -> Path:
    """A repository with one Swift file and the fixtures, and its own status folder."""
    (tmp_path / "ios_harness").mkdir()
    (tmp_path / "ios_harness" / "A.swift").write_text("struct A {}\n")
    shutil.copytree(REPO / "tests" / "fixtures" / "results", tmp_path / "tests" / "fixtures" / "results")
    monkeypatch.setenv("TOOLS", str(tmp_path / ".tools"))
    return tmp_path


def test_a_passed_status_passes_until_a_source_changes(fake_repo):
    assert outcome("swift-core", fake_repo)[0] == "skipped"  # never run
    status.write("swift-core", "passed", passed=6, seconds=9.5, repo=fake_repo)
    assert outcome("swift-core", fake_repo) == ("passed", "6 passed in 9.5 s")
    (fake_repo / "ios_harness" / "A.swift").write_text("struct A { var x: Int }\n")
    result, why = outcome("swift-core", fake_repo)
    assert result == "skipped" and "stale" in why
    (fake_repo / "ios_harness" / "B.swift").write_text("struct B {}\n")  # a new file changes the hash too
    assert status.inputs_sha256("swift-core", fake_repo) != json.loads(
        (fake_repo / ".tools" / "status" / "swift-core.json").read_text())["inputs_sha256"]


def test_skipped_and_failed_statuses_are_never_passes(fake_repo):
    status.write("swift-core", "skipped", reason="no root", repo=fake_repo)
    assert outcome("swift-core", fake_repo) == ("skipped", "swift-core could not be set up here: no root")
    status.write("swift-core", "failed", reason="compile errors above", repo=fake_repo)
    assert outcome("swift-core", fake_repo)[0] == "failed"
    status.write("swift-core", "passed", passed=0, repo=fake_repo)  # a pass that ran nothing
    assert outcome("swift-core", fake_repo)[0] == "failed"
    with pytest.raises(ValueError):
        status.write("swift-core", "ok", repo=fake_repo)


@pytest.mark.skipif(platform.system() != "Linux", reason="the set-up paths tried here are Linux's")
@pytest.mark.parametrize("step", sorted(SCRIPTS))
def test_a_step_without_a_debian_mirror_is_skipped_not_passed(step, tmp_path):
    """Cold tools and an unreachable mirror (a closed port on this machine): the script says SKIPPED, exits 0."""
    env = {**os.environ, "TOOLS": str(tmp_path / ".tools"), "DEBIAN_MIRROR": "http://127.0.0.1:9/debian"}
    proc = subprocess.run(["bash", str(SCRIPTS[step])], env=env, capture_output=True, text=True, timeout=300)
    label = {"swift-core": "Swift core", "android-apk": "Android APK"}[step]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"{label}: SKIPPED (" in proc.stdout, proc.stdout[-2000:]
    rec = json.loads((tmp_path / ".tools" / "status" / f"{step}.json").read_text())
    assert rec["status"] == "skipped" and rec["reason"]
