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
    assert any((m.get("coreml") or {}).get("spec_version") == 3 for m in mans)  # the iPhone 6 model (manifest v2 block)
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
    names = [r.name for r in cfg.compress]  # a typed PipelineConfig (was a dict)
    assert {"global-magnitude-8x", "layer-magnitude-8x", "global-gradient-8x", "layer-gradient-8x", "random-8x"} <= set(names)
    assert any(r.distill is not None for r in cfg.compress)


BAD = """
[pipeline]
work_dir = "w"
[data]
synth = { subjects = 10 }
fractions = [0.5, 0.5]
[teacher]
epochs = "forty"
lr = -1.0
optimiser = "sgd"
[[compress]]
name = "p"
prune = { method = "magnitude-ish", ratio = -8 }
[[compress]]
name = "g"
prune = { method = "global-gradient", ratio = 4, gradient_mode = "train", ratio_of = "whole" }
[[compress]]
name = "k"
distill = { student = "tiny_ocular", losses = ["hinton", "kl"], epochs = 0 }
[export]
targets = ["coreml", "caffe"]
devices = ["iphone6", "nokia3310"]
[plan]
devices = ["all"]
[bench]
iterations = 0
"""

PROBLEMS = ["[teacher] epochs: expected an integer, got a string ('forty')",
            "[teacher] lr: -1.0 must be greater than 0",
            "[teacher] has unknown keys ['optimiser']",
            "unknown method 'magnitude-ish'",
            "ratio -8 must be at least 1.0",
            "prune: gradient_mode must be one of shrinkbench, eval, got 'train'",
            "prune: ratio_of must be one of deployed, shrinkbench, got 'whole'",
            "unknown loss 'kl'",
            "distill: epochs must be an integer >= 1, got 0",
            "unknown export target 'caffe'",
            "[export] devices: unknown device 'nokia3310'",
            "[plan] devices: unknown device 'all'",
            "[bench] iterations: 0 is below the minimum 1",
            "[data] fractions [0.5, 0.5] must be three shares"]


def test_a_bad_config_is_refused_whole_naming_every_problem(tmp_path):
    """Before: `epochs = "forty"`, unknown methods/devices and negative ratios passed --dry-run."""
    f = tmp_path / "bad.toml"
    f.write_text(BAD)
    with pytest.raises(PipelineError) as e:
        load(f)
    text = str(e.value)
    assert f"{len(PROBLEMS)} problems" in text, text
    for p in PROBLEMS:
        assert p in text, p


def test_dry_run_of_a_bad_config_exits_2_listing_every_problem_without_a_traceback(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(BAD)
    r = subprocess.run([DEPLOY, "pipeline", "run", str(f), "--dry-run"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    err = " ".join(r.stderr.split())  # rich wraps long lines
    for p in PROBLEMS:
        assert " ".join(p.split()) in err, (p, r.stderr[-3000:])
    assert not (tmp_path / "w").exists()  # nothing ran, nothing written


def test_defaults_have_one_home_read_by_the_cli_the_pipeline_and_the_library():
    """Before: `deploy pipeline run` wrote protocols with max_impostors 20 000, `deploy data split` 200 000."""
    import inspect

    from toolchain.bench.timing import TimingProtocol
    from toolchain.cli import bench_run, data as cli_data, train as cli_train
    from toolchain.data.config import SplitConfig
    from toolchain.data.splits import DEFAULT_MAX_IMPOSTORS, make_protocol
    from toolchain.train.config import TrainConfig

    cfg = parse({"data": {"synth": {}}})

    def cli_default(fn, name):
        return inspect.signature(fn).parameters[name].default

    assert cfg.data.max_impostors == SplitConfig.max_impostors == DEFAULT_MAX_IMPOSTORS \
        == cli_default(cli_data.split, "max_impostors") == cli_default(make_protocol, "max_impostors")
    assert cfg.data.fractions == list(SplitConfig.fractions)
    for name in ("protocol", "other_eye", "condition", "check_images"):
        assert getattr(cfg.data, name) == getattr(SplitConfig, name) == cli_default(cli_data.split, name), name
    assert cfg.data.enrol_sessions == list(SplitConfig.enrol_sessions) == []
    assert cfg.data.synth.layout == cli_default(cli_data.synth, "layout")
    for name in ("epochs", "batch_size", "lr", "optimizer", "weight_decay"):
        assert getattr(cfg.teacher, name) == getattr(TrainConfig, name) == cli_default(cli_train.train_command, name)
    for name in ("warmup", "iterations", "threads"):
        assert getattr(cfg.bench, name) == getattr(TimingProtocol, name) == cli_default(bench_run.host, name)
    assert cfg.plan.warmup == TimingProtocol.warmup and cfg.plan.iterations == TimingProtocol.iterations


def test_converter_versions_are_in_the_export_stage_key(monkeypatch):
    """Before: an upgraded converter reused exports made by the old one (stage keys held no versions)."""
    from toolchain.export.tflite import TFLiteExporter
    from toolchain.pipeline.engine import resolve
    from toolchain.pipeline.stages import build_stages

    cfg = parse({"data": {"synth": {}}})

    def keys():
        return {s.name: s.key for s in resolve(build_stages(cfg))}

    before = keys()
    monkeypatch.setattr(TFLiteExporter, "versions", lambda self: {"litert-torch": "99.0"})
    after = keys()
    assert before["export-teacher"] != after["export-teacher"]
    assert before["teacher"] == after["teacher"] and before["data"] == after["data"]


def test_protocol_settings_are_checked_with_the_rest():
    with pytest.raises(PipelineError) as e:
        parse({"data": {"synth": {}, "protocol": "cross-session", "other_eye": "maybe"}})
    msg = str(e.value)
    assert "unknown other_eye 'maybe'" in msg and "needs sessions: set synth.layout" in msg
    cfg = parse({"data": {"synth": {"layout": "visob"}, "protocol": "cross-session", "enrol_sessions": ["1"]}})
    assert cfg.data.protocol == "cross-session" and cfg.data.enrol_sessions == ["1"]


def test_data_stage_writes_the_configured_cross_session_protocol(tmp_path):
    from toolchain.data.splits import load_protocol
    from toolchain.pipeline.engine import Context
    from toolchain.pipeline.stages import build_stages

    cfg = parse({"data": {"synth": {"subjects": 10, "images_per_subject": 8, "size": 32, "layout": "visob"},
                          "protocol": "cross-session", "fractions": [0.4, 0.3, 0.3]},
                 "teacher": {"epochs": 1}})
    (stage,) = [s for s in build_stages(cfg) if s.kind == "data"]
    said = []
    summary = stage.fn(Context(tmp_path, stage.config, {}, said.append))
    assert summary["protocol"]["name"] == "cross-session" and summary["protocol"]["verify_sessions"] == ["2"]
    assert any("verification protocol: cross-session (enrol 1 -> verify 2" in m for m in said)
    p = load_protocol(tmp_path / "protocol-test.json")
    assert p.rules.name == "cross-session" and len(p.genuine)
    assert all(p.images[i]["session"] != p.images[j]["session"] for i, j in p.genuine.tolist())
