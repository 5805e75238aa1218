"""Reports: the paper table, joins, checks, files and the HTML page rendered by headless Chromium."""

from __future__ import annotations

import copy
import csv
import json
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest

from toolchain.errors import ToolchainError
from toolchain.report.build import build_report, write_report
from toolchain.report.checks import CHECKS
from toolchain.report.render import paper_table

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "results"
TEACHER, STUDENT = "1" * 64, "2" * 64
ONNX_T, ONNX_S = "b" * 64, "c" * 64
REF = [0.5, -1.0, 2.0, 0.25]
LAT_T = [4_000_000, 5_000_000, 6_000_000, 5_500_000, 4_500_000]
LAT_S = [1_000_000, 1_200_000, 1_100_000, 900_000, 1_000_000]


def _fixture(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _host_run(run_id, sha, lat, sample):
    r = copy.deepcopy(_fixture("ok"))
    r.update(run_id=run_id, latency_ns=lat, feature_sample=sample, feature_dim=len(REF))
    r["protocol"].update(iterations=len(lat), input_source="image")
    r["artifact"].update(name=run_id, format="onnx", sha256=sha, precision="fp32")
    r["device"].update(platform="linux", identifier="linux-x86_64", marketing_name="Host CPU", os_version="Linux 6",
                       thermal_state_start="unknown", thermal_state_end="unknown", battery_state=None)
    r["runtime"] = {"name": "onnxruntime", "version": "1.20", "compute_units": "cpu", "delegate": None, "threads": 2}
    return r


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


PASSED = {"status": "passed", "reference": "onnxruntime", "cosine_min": 0.99999, "min_cosine_required": 0.9999}


def _manifest(name, sha, bundle_sha, bundle_name, fmt="onnx", precision="fp32", size=1000, parity=PASSED):
    # input/output: every manifest has them; the report reads manifests through toolchain.artifact.manifest.read
    return {"parity": parity, "name": name, "format": fmt, "precision": precision, "file": f"{name}.bin", "sha256": sha,
            "input": {"name": "pixels", "shape": [1, 3, 4, 4]}, "output": {"name": "features", "dim": len(REF)},
            "size_bytes": size, "source_bundle_sha256": bundle_sha,
            "source_bundle": {"name": bundle_name, "sha256": bundle_sha},
            "reference_features": {"input": "fixed_input.png", "sample": REF}}


@pytest.fixture
def scene(tmp_path):
    res = tmp_path / "results"
    for name in ("ok", "partial", "error"):
        res.mkdir(exist_ok=True)
        shutil.copy(FIXTURES / f"{name}.json", res / f"{name}.json")
    _write(res / "t.json", _host_run("host-teacher", ONNX_T, LAT_T, REF))
    _write(res / "s.json", _host_run("host-student", ONNX_S, LAT_S, [0.5, 1.0, 2.0, 0.25]))  # sign flipped: wrong
    art = tmp_path / "artifacts"
    _write(art / "t" / "manifest.json", _manifest("teacher_onnx", ONNX_T, TEACHER, "teacher"))
    _write(art / "s" / "manifest.json", _manifest("student_onnx", ONNX_S, STUDENT, "student", size=300))
    xr_sha = _fixture("ok")["artifact"]["sha256"]
    _write(art / "xr" / "manifest.json", _manifest("teacher_coreml", xr_sha, TEACHER, "teacher", "coreml", "fp16", 500))
    bundles = tmp_path / "bundles"
    _write(bundles / "teacher" / "model.json", {"name": "teacher", "weights": {"sha256": TEACHER,
                                                "num_parameters": 1000, "size_bytes": 4000}})
    _write(bundles / "student" / "model.json", {"name": "student", "weights": {"sha256": STUDENT,
                                                "num_parameters": 260, "deployed_parameters": 250,
                                                "deployed_nonzero": 125,
                                                "size_bytes": 1000}})  # half its weights pruned to zero
    met = tmp_path / "metrics"
    _write(met / "teacher" / "metrics.json", {"bundle_sha256": TEACHER, "eer": 0.05, "tar_at_far": {"1e-3": 0.9}})
    # the layout `deploy evaluate` writes: model {kind, sha256, ...}, metrics {...}
    _write(met / "student" / "metrics.json", {"model": {"kind": "bundle", "name": "student", "sha256": STUDENT},
                                              "metrics": {"eer": 0.08, "tar_at_far": {"1e-3": 0.8}}})
    _write(met / "student_onnx" / "metrics.json", {"model": {"kind": "artifact", "name": "student_onnx",
                                                             "sha256": ONNX_S, "source_bundle_sha256": STUDENT},
                                                   "metrics": {"eer": 0.09, "tar_at_far": {"1e-3": 0.7}}})
    _write(met / "junk" / "metrics.json", {"eer": 0.5})  # names no model: reported, not joined
    return {"results": [res], "artifacts": [art], "bundles": [bundles], "metrics": [met], "tmp": tmp_path}


def _report(scene):
    return build_report(scene["results"], scene["artifacts"], scene["bundles"], scene["metrics"])


def _ms(ns):
    return f"{ns / 1e6:.2f}" if ns >= 1e6 else f"{ns / 1e6:.3g}"


def test_paper_table_rows_columns_cells_and_joins(scene):
    rep = _report(scene)
    head, rows = paper_table(rep)
    assert head[1:4] == ["teacher", "teacher fp16", "student"]
    by = {r[0]: dict(zip(head, r)) for r in rows}
    host = by["Host CPU · onnxruntime cpu x2"]
    med_t, med_s = statistics.median(LAT_T), statistics.median(LAT_S)
    assert host["teacher"].startswith(f"{_ms(med_t)} [") and host["student"].startswith(f"{_ms(med_s)} [")
    xr = by["iPhone XR · coreml all"]
    assert xr["teacher fp16"].startswith(_ms(statistics.median(_fixture("ok")["latency_ns"])))
    assert xr["teacher"] == "–"
    assert by["parameters"]["teacher"] == "1,000" and by["compression ×"]["student"] == "8.00"
    # ShrinkBench's count: whole model, the student's 10 head parameters counted non-zero: 1000 / (125 + 10)
    assert by["compression × ShrinkBench"]["student"] == f"{1000 / 135:.2f}"
    assert by["compression × ShrinkBench"]["teacher"] == "1.00"
    # unstructured pruning: the ratio counts non-zeros; a bundle without the count is taken as dense
    assert by["non-zero parameters"]["student"] == "125" and by["non-zero parameters"]["teacher"] == "1,000"
    assert by["EER (%)"]["teacher"] == "5.00" and by["EER (%)"]["student"] == "8.00"
    assert by["TAR @ FAR=1e-3 (%)"]["student"] == "80.00"
    assert any("says nothing" in p for p in rep.problems)
    # an artifact's own evaluation wins over its bundle's for that artifact's join
    m = rep.catalog.metrics_for(ONNX_S, STUDENT, "student")
    assert m.eer == 0.09 and rep.catalog.metrics_for(None, STUDENT, None).eer == 0.08


def test_csv_numbers_equal_hand_computed_statistics(scene):
    out = scene["tmp"] / "report"
    write_report(_report(scene), out, plots=False)
    rows = {(r["device_runtime"], r["variant"]): r for r in csv.DictReader(open(out / "table.csv"))}
    r = rows[("Host CPU · onnxruntime cpu x2", "teacher")]
    assert float(r["median_ms"]) == pytest.approx(statistics.median(LAT_T) / 1e6)
    assert float(r["mean_ms"]) == pytest.approx(statistics.fmean(LAT_T) / 1e6)
    assert float(r["sd_ms"]) == pytest.approx(statistics.stdev(LAT_T) / 1e6, rel=1e-5)
    assert float(r["min_ms"]) == min(LAT_T) / 1e6 and int(r["n"]) == len(LAT_T)
    assert float(r["ci_low_ms"]) <= float(r["median_ms"]) <= float(r["ci_high_ms"])
    runs = {r["run_id"]: r for r in csv.DictReader(open(out / "runs.csv"))}
    err = runs[_fixture("error")["run_id"]]
    assert err["status"] == "error" and err["median_ms"] == "" and err["n"] == "0"
    ok = runs[_fixture("ok")["run_id"]]
    assert float(ok["first_inference_ms"]) == _fixture("ok")["first_inference_ns"] / 1e6
    assert float(ok["load_ms"]) == _fixture("ok")["load_ns"] / 1e6


def test_checks_flag_numerics_thermal_iterations_unknown_artifact_and_status(scene):
    rep = _report(scene)
    flags = {vw.run_id: {f.check: f.level for f in vw.flags} for vw in rep.runs}
    assert flags["host-teacher"]["numerics"] == "ok"
    assert flags["host-student"]["numerics"] == "fail"
    assert flags["host-teacher"]["iterations"] == "warn"  # 5 < 30
    assert flags["host-teacher"]["thermal"] == "skipped"
    ok, partial, error = (_fixture(n)["run_id"] for n in ("ok", "partial", "error"))
    assert flags[ok]["thermal"] == "warn" and flags[ok]["artifact"] == "ok" and flags[ok]["iterations"] == "ok"
    assert flags[partial]["artifact"] == "warn" and flags[partial]["status"] == "warn"
    assert flags[partial]["numerics"] == "skipped"  # random input, not the fixed image
    assert flags[error]["status"] == "fail"
    assert sorted(CHECKS.names()) == sorted(flags["host-teacher"])  # every registered check ran


@pytest.mark.parametrize("compress,cos_target,level", [("palettize6", 0.995, "ok"), (None, 0.995, "fail"),
                                                      ("sparse", 0.995, "fail")])
def test_numerics_floor_is_the_export_parity_rule(tmp_path, compress, cos_target, level):
    """A palettized fp16 artifact passed export at 0.99: the device check judges it at 0.99 too, not at fp16's
    0.999 (before: every fp16 artifact was judged at 0.999). Sparse storage is lossless: fp16's floor stays."""
    rng = np.random.default_rng(0)
    ref = rng.normal(size=16)
    noise = rng.normal(size=16)
    noise -= noise @ ref / (ref @ ref) * ref  # orthogonal to ref: cosine = 1 / sqrt(1 + t^2 |n|^2 / |r|^2)
    t = np.sqrt(1 / cos_target ** 2 - 1) * np.linalg.norm(ref) / np.linalg.norm(noise)
    sample = ref + t * noise
    run = copy.deepcopy(_fixture("ok"))  # an iPhone XR Core ML run of the palettized artifact
    run.update(run_id="xr-palette", feature_sample=[float(v) for v in sample], feature_dim=16)
    run["protocol"]["input_source"] = "image"
    run["artifact"].update(sha256=ONNX_T, precision="fp16")
    _write(tmp_path / "res" / "r.json", run)
    man = _manifest("teacher_coreml_palette", ONNX_T, TEACHER, "teacher", "coreml", "fp16")
    man["reference_features"]["sample"] = [float(v) for v in ref]
    man["compress"] = compress
    _write(tmp_path / "art" / "p" / "manifest.json", man)
    rep = build_report([tmp_path / "res"], [tmp_path / "art"])
    (flag,) = [f for f in rep.runs[0].flags if f.check == "numerics"]
    assert flag.level == level, flag.message
    assert f"cosine {cos_target:.6f}" in flag.message


def test_write_report_outputs_and_self_contained_html(scene):
    out = scene["tmp"] / "report"
    files = {p.relative_to(out).as_posix() for p in write_report(_report(scene), out)}
    for f in ("report.md", "report.html", "runs.csv", "table.csv", "models.csv", "checks.csv", "report.json",
              "paper.csv", "paper.tex"):
        assert f in files
    for fig in ("latency_per_device", "eer_vs_latency", "eer_vs_size", "latency_distributions"):
        assert {f"plots/{fig}.png", f"plots/{fig}.svg"} <= files
        assert (out / "plots" / f"{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') >= 4 and "src=\"http" not in page and "<link" not in page
    md = (out / "report.md").read_text()
    assert "| device · runtime | teacher | teacher fp16 | student |" in md
    # rewriting a report folder is fine; a folder that is not a report is refused
    write_report(_report(scene), out, plots=False)
    other = scene["tmp"] / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(ToolchainError, match="not a report"):
        write_report(_report(scene), other)
    assert (other / "keep.txt").exists()


def test_no_results_is_a_clear_error(tmp_path):
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ToolchainError, match="no valid results"):
        build_report([tmp_path])


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (make setup installs Debian's chromium)")
def test_html_renders_in_headless_chromium(scene, tmp_path):
    from PIL import Image

    out = scene["tmp"] / "report"
    write_report(_report(scene), out)
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,1600",
           (out / "report.html").resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120)
    assert shot.is_file(), "Chromium wrote no screenshot"
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert img.shape == (1600, 1200)
    assert img.std() > 10 and (img < 128).mean() > 0.005  # text and tables drawn, not a blank page


def test_cli_report(scene, tmp_path):
    from typer.testing import CliRunner

    from toolchain.cli import app

    args = ["report", "--results", str(scene["results"][0]), "--artifacts", str(scene["artifacts"][0]),
            "--bundles", str(scene["bundles"][0]), "--metrics", str(scene["metrics"][0]),
            "--out", str(tmp_path / "rep"), "--no-plots", "--no-flops"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rep" / "report.html").is_file() and "report of 5 runs" in res.output


def test_report_names_the_verification_protocol(scene, tmp_path):
    from toolchain.report.render import protocol_line

    rep = _report(scene)  # the scene's metrics.json files record no protocol
    assert protocol_line(rep) == "Verification protocol of the accuracy columns: not recorded."
    label = "cross-session (enrol 1 -> verify 2, 3; same condition; other eye excluded)"
    met = scene["metrics"][0]
    for name in ("teacher", "student", "student_onnx"):
        doc = json.loads((met / name / "metrics.json").read_text())
        doc["data"] = {"verification_protocol": {"name": "cross-session", "label": label}}
        _write(met / name / "metrics.json", doc)
    rep = _report(scene)
    assert protocol_line(rep) == f"Verification protocol of the accuracy columns: {label}."
    out = tmp_path / "r"
    write_report(rep, out, plots=False)
    import html

    assert label in (out / "report.md").read_text() and html.escape(label) in (out / "report.html").read_text()
    assert {v["verification_protocol"] for v in json.loads((out / "report.json").read_text())["variants"]
            if v["eer"] is not None} == {label}
    doc = json.loads((met / "student" / "metrics.json").read_text())
    doc["data"]["verification_protocol"]["label"] = "all-pairs (other eye excluded)"
    _write(met / "student" / "metrics.json", doc)
    assert "are not comparable" in protocol_line(_report(scene))


def test_v2_runs_show_load_times_and_peak_memory_and_flag_partial_delegation(scene):
    for name in ("v2_ios", "v2_android"):
        shutil.copy(FIXTURES / f"{name}.json", scene["results"][0] / f"{name}.json")
    rep = _report(scene)
    out = scene["tmp"] / "report-v2"
    write_report(rep, out, plots=False)
    runs = {r["run_id"]: r for r in csv.DictReader(open(out / "runs.csv"))}
    ios, android = _fixture("v2_ios"), _fixture("v2_android")
    row = runs[ios["run_id"]]
    assert float(row["cold_load_ms"]) == ios["cold_load_ns"] / 1e6
    assert float(row["warm_load_ms"]) == statistics.median(ios["warm_load_ns"]) / 1e6
    assert int(row["peak_memory_bytes"]) == ios["memory"]["peak_bytes"]
    assert runs[_fixture("ok")["run_id"]]["cold_load_ms"] == ""  # v1: not recorded, not made up
    flags = {vw.run_id: {f.check: (f.level, f.message) for f in vw.flags} for vw in rep.runs}
    assert flags[android["run_id"]]["delegation"] == ("warn", "partly delegated: 42 of 45 nodes delegated")
    assert flags[android["run_id"]]["device_state"][0] == "warn"  # the fixture left the foreground
    assert flags[ios["run_id"]]["delegation"][0] == "warn" and "cpu 3" in flags[ios["run_id"]]["delegation"][1]
    assert flags[_fixture("ok")["run_id"]]["delegation"][0] == "skipped"
    md = (out / "report.md").read_text()
    assert "cold load ms" in md and "peak MB" in md and "74.5" in md
