"""examples/ci/export_artifacts.sh on a tiny checkpoint: every target, parity enforced, summary JSON."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ci_export_script_on_a_tiny_checkpoint(tiny_bundle, tmp_path):
    env = {**os.environ, "DEPLOY": str(Path(sys.executable).parent / "deploy")}
    r = subprocess.run(["bash", str(REPO / "examples/ci/export_artifacts.sh"), str(tiny_bundle), str(tmp_path / "o")],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["ok"] and not summary["parity_failed"]
    formats = {a["format"] for a in summary["artifacts"]}
    assert formats == {"coreml", "tflite", "onnx"}
    # iPhone 6 got its spec-3 model; every artifact folder was collected with its manifest.
    names = {p.name for p in (tmp_path / "o" / "artifacts").iterdir()}
    assert any(n.endswith("ios12") for n in names)
    assert all((tmp_path / "o" / "artifacts" / n / "manifest.json").is_file() for n in names)
    assert all(a["parity"] == "passed" for a in summary["artifacts"])


def test_ci_script_fails_on_a_bad_checkpoint(tiny_bundle, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    w = bad / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    env = {**os.environ, "DEPLOY": str(Path(sys.executable).parent / "deploy")}
    r = subprocess.run(["bash", str(REPO / "examples/ci/export_artifacts.sh"), str(bad), str(tmp_path / "o")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0 and "truncated" in (r.stdout + r.stderr)
