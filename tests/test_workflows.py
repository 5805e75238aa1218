"""The GitHub workflows validate against GitHub's workflow JSON Schema, offline (check-jsonschema ships it).

They cannot run here: .github/workflows/linux.yml does what .ci/run does, macos.yml runs `make test` on a Mac
(written, not run), and examples/ci/export-artifacts.yml is for a user's own model repository.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml")) + sorted((REPO / "examples" / "ci").glob("*.yml"))


def validate(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *map(str, files)], capture_output=True, text=True)


def test_every_workflow_file_validates_offline():
    assert {p.name for p in WORKFLOWS} >= {"linux.yml", "macos.yml", "export-artifacts.yml"}
    r = validate(*WORKFLOWS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_schema_check_can_fail(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    step: []\n")  # `steps` misspelt
    assert validate(bad).returncode != 0


def test_what_each_workflow_does():
    linux = (REPO / ".github/workflows/linux.yml").read_text()
    assert ".ci/run" in linux
    mac = (REPO / ".github/workflows/macos.yml").read_text()
    runner = mac.split("runs-on:")[1].split()[0]
    assert runner.startswith("macos-") and int(runner.split("-")[1]) >= 14 and "make test" in mac
    user = (REPO / "examples/ci/export-artifacts.yml").read_text()
    for needed in ("pip install \"ocular-deploy", "lfs: true", "cache: pip", "actions/upload-artifact", "deploy export"):
        assert needed in user, needed
    assert "pip install ." not in user and "examples/ci/" not in user.split("jobs:")[1]  # nothing of this repository
