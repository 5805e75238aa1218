"""The one JUnit/xUnit counter both harness test runners call (scripts/junit_counts.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "junit_counts.py"
XML = """<testsuite><testcase classname="A" name="ok"/><testcase classname="A" name="bad"><failure/></testcase>
<testcase classname="B" name="off"><skipped/></testcase><testcase classname="B" name="ok2"/></testsuite>"""


def _run(tmp_path, *args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=tmp_path)


def test_counts_every_case_and_fails_on_a_failure(tmp_path):
    (tmp_path / "TEST-a.xml").write_text(XML)
    r = _run(tmp_path, "Kotlin core", "0", "TEST-a.xml", "--counts", "c.txt")
    assert r.returncode == 1 and r.stdout.strip() == "Kotlin core: 2 passed, 1 failed, 1 skipped"
    assert "FAILED A.bad" in r.stderr and (tmp_path / "c.txt").read_text() == "2 1\n"


def test_a_failed_runner_or_no_report_is_a_failure(tmp_path):
    (tmp_path / "ok.xml").write_text('<testsuite><testcase classname="A" name="ok"/></testsuite>')
    assert _run(tmp_path, "Swift core", "0", "ok.xml").returncode == 0
    assert _run(tmp_path, "Swift core", "2", "ok.xml").returncode == 1
    r = _run(tmp_path, "Swift core", "0", "missing.xml")
    assert r.returncode == 1 and r.stdout.strip() == "Swift core: 0 passed, 0 failed"
    for runner in ("ios_harness/run-tests.sh", "android_harness/core/run-tests.sh"):  # no copy of the counting left
        text = (SCRIPT.parents[1] / runner).read_text()
        assert "scripts/junit_counts.py" in text and "ET.parse" not in text
