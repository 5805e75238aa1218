"""`deploy demo --quick` end to end (and its rerun), and pipeline.toml validation."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolchain.pipeline.config import PipelineError, load, parse

REPO = Path(__file__).resolve().parents[2]
DEPLOY = str(Path(sys.executable).parent / "deploy")


@pytest.mark.slow
def test_quick_demo_runs_end_to_end_then_skips_everything(tmp_path):
    t0 = time.perf_counter()
    r = subprocess.run([DEPLOY, "demo", "--quick", "--work", str(tmp_path / "w")], capture_output=True, text=True,
                       timeout=900)
    first_s = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "report:" in r.stdout and "EER" in r.stdout
    (report_md,) = (tmp_path / "w" / "report").glob("*/report/report.md")
    text = report_md.read_text()
    assert "tiny_ocular" in text and "layer_magnitude_8x" in text
    assert (report_md.parent / "report.html").is_file()
    exports = list((tmp_path / "w" / "export").glob("*/*/manifest.json"))
    mans = [json.loads(p.read_text()) for p in exports]
    assert {m["format"] for m in mans} == {"coreml", "tflite", "onnx"}
    assert all(m["parity"]["status"] == "passed" for m in mans)
    assert any(m.get("spec_version") == 3 for m in mans)  # the iPhone 6 model
    plans = list((tmp_path / "w" / "plan").glob("*/*/plan.json"))
    assert {p.parent.name for p in plans} == {"iphone6", "iphonexr", "android"}
    # Rerun: every stage is cached.
    t0 = time.perf_counter()
    r2 = subprocess.run([DEPLOY, "demo", "--quick", "--work", str(tmp_path / "w")], capture_output=True, text=True,
                        timeout=300)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert " ran " not in r2.stdout and "cached" in r2.stdout
    assert time.perf_counter() - t0 < first_s


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(PipelineError, match="unknown sections"):
        parse({"pipline": {}})
    with pytest.raises(PipelineError, match=r"\[teacher\] has unknown keys \['epoch'\]"):
        parse({"data": {"synth": {}}, "teacher": {"epoch": 3}})
    with pytest.raises(PipelineError, match="not both"):
        parse({"data": {"synth": {}, "path": "x"}})
    with pytest.raises(PipelineError, match="training and compression need data"):
        parse({})
    with pytest.raises(PipelineError, match="not an earlier recipe"):
        parse({"data": {"synth": {}}, "compress": [{"name": "a", "from": "b", "distill": {}}]})
    with pytest.raises(PipelineError, match="needs prune, structured and/or distill"):
        parse({"data": {"synth": {}}, "compress": [{"name": "a"}]})
    with pytest.raises(PipelineError, match="does not exist"):
        load(tmp_path / "nope.toml")


def test_example_pipeline_parses_and_dry_runs(tmp_path):
    cfg = parse(__import__("tomllib").loads((REPO / "examples/pipeline.toml").read_text()), base=REPO / "examples")
    names = [r["name"] for r in cfg["compress"]]
    assert {"global-magnitude-8x", "layer-magnitude-8x", "global-gradient-8x", "layer-gradient-8x", "random-8x"} <= set(names)
    assert any("distill" in r for r in cfg["compress"])
