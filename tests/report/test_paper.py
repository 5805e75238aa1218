"""The paper-ready report: a row per evaluated variant, untrusted artifacts apart, ROC/DET, collapsed checks,
figures titled once, paper.csv / paper.tex, and the page in headless Chromium at 1280 px (selenium)."""

from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from toolchain.evaluate.features import save_scores
from toolchain.report import paper
from toolchain.report.build import build_report, write_report
from toolchain.report.render import checks_table, skipped_line

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "results"
METHODS = ("global-magnitude", "layer-magnitude", "global-gradient", "layer-gradient", "random")
RATIOS = (2, 4, 8, 16, 32)
REF = [0.5, -1.0, 2.0, 0.25]
PASSED = {"status": "passed", "reference": "onnxruntime", "cosine_min": 0.99999, "min_cosine_required": 0.9999}
FAILED = {"status": "failed", "reference": "onnxruntime", "cosine_min": 0.912345, "min_cosine_required": 0.99,
          "reason": "cosine below the int8 floor"}
TEACHER_PARAMS = 23_500_000


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _sha(i: int, salt: str = "b") -> str:
    return f"{salt}{i:063x}"


def _run(run_id: str, art_sha: str, lat: list[int], device: str, runtime: str, precision: str = "fp32") -> dict:
    r = json.loads((FIXTURES / "ok.json").read_text())
    r = copy.deepcopy(r)
    r.update(run_id=run_id, latency_ns=lat, feature_sample=REF, feature_dim=len(REF))
    r["protocol"].update(iterations=len(lat), input_source="image")
    r["artifact"].update(name=run_id, format="onnx" if runtime == "onnxruntime" else "tflite", sha256=art_sha,
                         precision=precision)
    r["device"].update(platform="linux", identifier="linux-x86_64", marketing_name=device, os_version="Linux 6",
                       thermal_state_start="unknown", thermal_state_end="unknown", battery_state=None)
    r["runtime"] = {"name": runtime, "version": "1.20", "compute_units": "cpu", "delegate": None, "threads": 2}
    return r


def _manifest(name, sha, bundle_sha, bundle_name, precision="fp32", parity=PASSED, fmt="onnx"):
    return {"name": name, "format": fmt, "precision": precision, "file": f"{name}.bin", "sha256": sha,
            "input": {"name": "pixels", "shape": [1, 3, 112, 112]}, "output": {"name": "features", "dim": len(REF)},
            "size_bytes": 1000, "source_bundle_sha256": bundle_sha, "parity": parity,
            "source_bundle": {"name": bundle_name, "sha256": bundle_sha},
            "reference_features": {"input": "fixed_input.png", "sample": REF}}


def _evaluation(folder: Path, kind: str, name: str, sha: str, eer: float, rng, closed_set=None, bundle_sha=None):
    """What `deploy evaluate` writes: scores.npz, then metrics.json (its shape, toolchain/evaluate/run.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    d = 2 * 1.6449 * (1 - eer * 5)  # roughly separated scores: a better EER, a wider gap
    save_scores(folder / "scores.npz", rng.normal(d, 1.0, 300) / 10 + 0.5, rng.normal(0, 1.0, 3000) / 10 + 0.5)
    model = {"kind": kind, "name": name, "sha256": sha, "format": "onnx" if kind == "artifact" else "pytorch",
             "precision": "fp32"}
    if bundle_sha:
        model["source_bundle_sha256"] = bundle_sha
    doc = {"format": "toolchain.evaluation", "format_version": 1, "model": model,
           "metrics": {"eer": eer, "tar_at_far": {"1e-2": 1 - 2 * eer, "1e-3": 1 - 4 * eer}},
           "files": {"scores": "scores.npz"},
           "data": {"verification_protocol": {"label": "cross-session (enrol 1 -> verify 2, 3)"}}}
    if closed_set is not None:
        doc["closed_set"] = closed_set
    _write(folder / "metrics.json", doc)


@pytest.fixture
def grid(tmp_path):
    return make_grid(tmp_path)


def make_grid(tmp_path: Path) -> dict:
    """The Almadan grid as a report sees it: a teacher, 5 methods x 5 ratios, a KD student. Only some are timed
    (3 host rows); one int8 artifact's parity failed; every variant was evaluated."""
    rng = np.random.default_rng(0)
    res, art, bundles, met = (tmp_path / n for n in ("results", "artifacts", "bundles", "metrics"))
    specs = [("resnet50_ocular", {}, 1.0)]
    specs += [(f"resnet50_ocular_{m.replace('-', '_')}_{r}x_sb", {"recipe": {"kind": "unstructured", "method": m,
               "ratio": float(r), "ratio_of": "shrinkbench"}}, float(r)) for m in METHODS for r in RATIOS]
    specs += [("resnet50_ocular_kd_resnet18", {"recipe": {"kind": "distill"}}, 2.1)]
    names = []
    for i, (name, prov, ratio) in enumerate(specs):
        bsha = _sha(i, "1")
        nz = int(TEACHER_PARAMS / ratio)
        _write(bundles / name / "model.json", {"name": name, "provenance": prov, "input": {"size": [112, 112]},
               "weights": {"sha256": bsha, "num_parameters": TEACHER_PARAMS + 5000,
                           "deployed_parameters": TEACHER_PARAMS, "deployed_nonzero": nz, "size_bytes": 4 * nz}})
        eer = 0.02 + 0.002 * i
        closed = {"top1": 0.9 - 0.01 * i, "top5": 0.97, "images": 400, "method": "head"}
        _evaluation(met / name, "bundle", name, bsha, eer, rng, closed)
        names.append(name)
        if i % 4 == 0:  # every fourth variant timed, on three host rows
            osha = _sha(i, "c")
            _write(art / name / "manifest.json", _manifest(f"{name}_onnx", osha, bsha, name))
            for dev, rt in (("Intel Xeon host", "onnxruntime"), ("AMD EPYC host with a long name", "onnxruntime"),
                            ("Intel Xeon host", "litert")):
                lat = [int(x) for x in rng.normal(20e6 / ratio ** 0.3, 1e5, 40)]
                _write(res / f"{name}-{dev}-{rt}.json".replace(" ", "_"), _run(f"{name}-{dev}-{rt}".replace(" ", "-"),
                                                                              osha, lat, dev, rt))
    # an int8 artifact of the KD student: parity failed, so it is never timed in the main table
    kd, kd_sha = specs[-1][0], _sha(len(specs) - 1, "1")
    bad = _sha(99, "d")
    _write(art / "kd_int8" / "manifest.json", _manifest(f"{kd}_int8", bad, kd_sha, kd, "int8", FAILED, "tflite"))
    _write(res / "kd-int8.json", _run("kd-int8-run", bad, [77_777_777] * 40, "Intel Xeon host", "litert", "int8"))
    return {"results": [res], "artifacts": [art], "bundles": [bundles], "metrics": [met], "names": names,
            "tmp": tmp_path, "kd": kd}


def _build(g):
    return build_report(g["results"], g["artifacts"], g["bundles"], g["metrics"])


def test_every_evaluated_variant_is_a_row_with_method_ratio_top1_and_compression(grid):
    rep = _build(grid)
    head, rows = paper.table(rep)
    by = {r[0]: dict(zip(head, r)) for r in rows}
    assert set(grid["names"]) <= set(by)  # 27 evaluated; only 7 of them timed
    assert len(rows) == len(grid["names"]) + 1  # + the KD student's untrusted int8 artifact, untimed
    lm8 = by["resnet50_ocular_layer_magnitude_8x_sb"]
    assert lm8["method"] == "layer-magnitude" and lm8["ratio"] == "8× (SB)"
    assert lm8["comp. ×"] == "8.00" and lm8["top-1 %"] != "–"
    assert lm8["Intel Xeon host · litert cpu x2 (ms)"] != "–"  # timed (every fourth variant)
    lm16 = by["resnet50_ocular_layer_magnitude_16x_sb"]
    assert all(lm16[c] == "–" for c in head if c.endswith("(ms)"))  # evaluated, never timed: present, no timing
    assert lm16["EER %"] == "3.80" and lm16["comp. × SB"] != "–"
    assert by["resnet50_ocular"]["method"] == "baseline" and by[grid["kd"]]["method"] == "KD"
    assert by["resnet50_ocular"]["Intel Xeon host · onnxruntime cpu x2 (ms)"] != "–"
    assert rows[0][0] == "resnet50_ocular" and rows[-2][1] == "KD"  # baseline first, KD after the pruned
    assert float(by["resnet50_ocular"]["EER %"]) == pytest.approx(2.0)
    assert by["resnet50_ocular"]["TAR@1e-2 %"] == "96.00" and by["resnet50_ocular"]["top-1 %"] == "90.00"


def test_failed_parity_artifact_is_never_timed_and_is_shown_apart_with_its_cosine(grid):
    rep = _build(grid)
    kd8 = f"{grid['kd']} int8"
    assert [vw.run_id for vw in rep.untrusted] == ["kd-int8-run"]
    assert not any(c.variant == kd8 for c in rep.cells.values())
    head, rows = paper.table(rep)
    row = dict(zip(head, next(r for r in rows if r[0] == kd8)))
    assert all(row[c] == "–" for c in head if c.endswith("(ms)"))
    # no evaluation of the int8 artifact was given: its bundle's fp32 accuracy is shown, and marked as such
    assert row["EER %"] == "7.20 †" and dict(zip(head, next(r for r in rows if r[0] == grid["kd"])))["EER %"] == "7.20"
    out = grid["tmp"] / "report"
    write_report(rep, out, plots=False)
    page = (out / "report.html").read_text()
    apart = page[page.index("Not timed: export parity did not pass"):]
    assert "0.912345" in apart and "kd-int8-run" in apart and "77.78" not in page  # its 77.78 ms appears nowhere
    table = list(csv.DictReader(open(out / "table.csv")))
    assert not any(r["variant"] == kd8 for r in table)
    runs = {r["run_id"]: r for r in csv.DictReader(open(out / "runs.csv"))}
    assert runs["kd-int8-run"]["timed_in_report"] == "no"
    metrics_of = {r["variant"]: r["metrics_of"] for r in csv.DictReader(open(out / "paper.csv"))}
    assert metrics_of[kd8] == "bundle fp32" and metrics_of[grid["kd"]] == "own"
    flags = {f.check: f.level for f in next(vw for vw in rep.runs if vw.run_id == "kd-int8-run").flags}
    assert flags["parity"] == "fail"


@pytest.mark.parametrize("status", ["skipped", "unverified"])
def test_any_parity_status_but_passed_is_untrusted(grid, status):
    man_path = grid["artifacts"][0] / "resnet50_ocular" / "manifest.json"
    man = json.loads(man_path.read_text())
    man["parity"] = {"status": status, "reason": "could not run here"}
    man_path.write_text(json.dumps(man))
    rep = _build(grid)
    assert man["sha256"] in rep.catalog.manifests, rep.problems  # the reader accepts both statuses
    assert {vw.run_id for vw in rep.untrusted} == {"kd-int8-run"} | {vw.run_id for vw in rep.runs
                                                                    if vw.variant == "resnet50_ocular"}
    assert len(rep.untrusted) == 4 and not any(c.variant == "resnet50_ocular" for c in rep.cells.values())


def test_paper_csv_and_latex(grid):
    out = grid["tmp"] / "report"
    write_report(_build(grid), out, plots=False)
    rows = list(csv.DictReader(open(out / "paper.csv")))
    assert len(rows) == len(grid["names"]) + 1
    lm8 = next(r for r in rows if r["variant"] == "resnet50_ocular_layer_magnitude_8x_sb")
    assert float(lm8["compression_deployed"]) == pytest.approx(8.0) and lm8["method"] == "layer-magnitude"
    assert float(lm8["top1"]) == pytest.approx(0.9 - 0.01 * 8)
    teacher = next(r for r in rows if r["variant"] == "resnet50_ocular")
    assert float(teacher["Intel Xeon host · onnxruntime cpu x2 median_ms"]) > 0
    tex = (out / "paper.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex
    body = tex[tex.index("\\midrule"):tex.index("\\bottomrule")]
    assert body.count("\\\\") == len(rows)  # a row per variant (the header is above the midrule)
    assert "resnet50\\_ocular\\_layer\\_magnitude\\_8x\\_sb" in tex and "8$\\times$ (SB)" in tex
    assert "EER \\%" in tex


def test_checks_are_collapsed_to_the_problems(grid):
    rep = _build(grid)
    head, rows = checks_table(rep)
    assert rows and all(r[0] in ("warn", "fail") for r in rows)  # never "skipped"
    keys = [(r[0], r[1], r[2]) for r in rows]
    assert len(keys) == len(set(keys))  # one row per distinct finding
    assert not any(r[1] == "thermal" for r in rows)  # hosts report no thermal state: counted, not listed
    assert "thermal in 22 runs" in skipped_line(rep)
    out = grid["tmp"] / "r"
    write_report(rep, out, plots=False)
    assert (out / "report.html").read_text().count("thermal state not reported") == 0
    assert sum(1 for r in csv.DictReader(open(out / "checks.csv")) if r["check"] == "thermal") == 22  # all kept


def test_roc_and_det_of_every_variant_titled_once(grid, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    titles = []
    real = Axes.set_title
    monkeypatch.setattr(Axes, "set_title", lambda self, t, *a, **k: (titles.append(t), real(self, t, *a, **k))[1])
    out = grid["tmp"] / "report"
    write_report(_build(grid), out)
    assert titles == []  # the page captions each figure; nothing inside the images repeats it
    rep_json = json.loads((out / "report.json").read_text())
    for name in ("roc", "det"):
        assert rep_json["figures"][name]["png"] == f"plots/{name}.png"
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert page.count("<figcaption>ROC of every evaluated variant") == 1
    assert page.count('src="data:image/png;base64,') == len(rep_json["figures"])
    md = (out / "report.md").read_text()
    assert md.count("### ROC of every evaluated variant") == 1


def test_flops_are_counted_on_a_bundle_with_its_weights(tmp_path, tiny_bundle):
    import torch

    from toolchain.compress.measure import count_flops
    from toolchain.models.bundle import load_bundle

    b = load_bundle(tiny_bundle)
    rng = np.random.default_rng(1)
    _evaluation(tmp_path / "met" / "tiny", "bundle", b.name, b.sha256, 0.1, rng)
    _write(tmp_path / "res" / "r.json", _run("r", "e" * 64, [1_000_000] * 5, "Host", "onnxruntime"))
    rep = build_report([tmp_path / "res"], [], [tiny_bundle], [tmp_path / "met"])
    v = next(v for v in rep.variants if v.label == b.name)
    with torch.no_grad():
        assert (v.flops, v.effective_flops) == count_flops(b.model, int(b.meta["input"]["size"][0]))
    assert v.flops > 0


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
VIEWPORT_PX = 1280


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="headless Chromium test needs Debian's chromium and chromium-driver "
                           f"(chromium: {CHROMIUM or 'absent'}, chromedriver: {CHROMEDRIVER or 'absent'}; "
                           "make setup installs them as root)")
def test_report_page_in_headless_chromium_fits_1280px_images_load_and_a_row_per_variant(grid):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    rep = _build(grid)
    out = grid["tmp"] / "report"
    write_report(rep, out)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={grid['tmp'] / 'profile'}", f"--window-size={VIEWPORT_PX},900"):
        opts.add_argument(a)
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": VIEWPORT_PX, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        driver.get((out / "report.html").resolve().as_uri())
        width = driver.execute_script("return [window.innerWidth, document.documentElement.scrollWidth, "
                                      "document.body.scrollWidth]")
        assert width[0] == VIEWPORT_PX and max(width[1:]) <= VIEWPORT_PX, width
        images = driver.execute_script("return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        assert len(images) == 6 and all(ok and w > 0 for _, ok, w in images), images
        names = driver.execute_script(
            "const h = Array.from(document.querySelectorAll('h2')).find(e => e.textContent === 'Paper table');"
            "let t = h.nextElementSibling; while (t && !t.querySelector('table')) t = t.nextElementSibling;"
            "return Array.from(t.querySelectorAll('tbody tr')).map(r => r.cells[0].textContent)")
        assert sorted(names) == sorted(v.label for v in rep.variants)
        assert set(grid["names"]) <= set(names)
    finally:
        driver.quit()


def test_flops_of_a_gray_rectangular_bundle_are_counted_at_its_own_input(tmp_path):
    """A 1-channel 32x48 bundle: counted (not "FLOPs not counted"), and at 32x48, not at a 32x32 RGB image."""
    from toolchain.compress.measure import count_flops
    from toolchain.models.bundle import init_bundle, load_bundle
    from toolchain.report.paper import bundle_flops

    path = init_bundle("tiny_ocular", tmp_path / "gray", input_size=(32, 48), channels=1)
    meta = {**json.loads((path / "model.json").read_text()), "_folder": str(path)}
    dense, _, why = bundle_flops(meta)
    assert why is None and dense == count_flops(load_bundle(path).model, (1, 32, 48))[0]
