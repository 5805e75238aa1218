"""A results file the report cannot use is named with its whole reason, in the CLI and in report.md/html (issue 16:
only the first line, "... is not a valid result (schema v1) (2 problems):", was shown, and then nothing)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from toolchain.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "results"


def test_every_problem_of_a_rejected_file_is_shown(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    shutil.copy(FIXTURES / "ok.json", res / "ok.json")
    bad = json.loads((FIXTURES / "ok.json").read_text())
    bad["status"] = "finished"  # not one of ok/error/partial
    bad["latency_ns"][2] = -5  # a negative time
    (res / "bad.json").write_text(json.dumps(bad))
    out = tmp_path / "rep"
    r = CliRunner().invoke(app, ["report", "--results", str(res), "--out", str(out), "--no-plots"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())  # soft-wrapped console lines
    assert "bad.json" in text and "2 problems" in text
    assert "latency_ns/2" in text and "'finished'" in text
    md = (out / "report.md").read_text()
    section = md.split("## Files not used", 1)[1]
    assert "bad.json" in section and "2 problems" in section
    assert "  - latency_ns/2" in section and "'finished'" in section
    page = (out / "report.html").read_text()
    assert "latency_ns/2" in page and "&#x27;finished&#x27;" in page
