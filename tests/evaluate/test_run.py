"""End to end: a tiny bundle and its ONNX export scored on a tiny per-subject data set; compare; errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from toolchain.errors import DataError, ToolchainError
from toolchain.evaluate.run import FILES, METRICS_FILE, compare, evaluate_model, load_evaluation, read_pairs

SUBJECTS, PER_SUBJECT, SIZE = 6, 4, 64


@pytest.fixture(scope="module")
def eye_data(tmp_path_factory) -> tuple[Path, Path]:
    """ROOT/<subject>/<n>.png: each subject a colour pattern, its images shifted and noisy copies; + a protocol."""
    from toolchain.data.layouts import scan
    from toolchain.data.splits import make_protocol, save_protocol

    root = tmp_path_factory.mktemp("eyes")
    rng = np.random.default_rng(0)
    for s in range(SUBJECTS):
        base = np.kron(rng.random((4, 4, 3)), np.ones((SIZE // 4, SIZE // 4, 1))) * 255
        (root / f"subject_{s:02d}").mkdir()
        for k in range(PER_SUBJECT):
            img = np.roll(base, rng.integers(-3, 4, 2), axis=(0, 1)) + rng.normal(0, 12, base.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").save(root / f"subject_{s:02d}" / f"{k}.png")
    ds = scan(root, "per-subject")
    proto = save_protocol(make_protocol(ds.samples, root=root), tmp_path_factory.mktemp("proto") / "protocol-test.json")
    return root, proto


@pytest.fixture(scope="module")
def tiny_onnx(tiny_bundle, tmp_path_factory):
    from toolchain.export.base import ExportRequest, export_bundle

    (o,) = export_bundle(ExportRequest(tiny_bundle, "onnx", tmp_path_factory.mktemp("onnx"), precision="fp32"))
    return o.folder


@pytest.fixture(scope="module")
def evaluations(tiny_bundle, tiny_onnx, eye_data, tmp_path_factory):
    root, proto = eye_data
    out = tmp_path_factory.mktemp("evals")
    seen = []
    b = evaluate_model(tiny_bundle, root, proto, out / "bundle", batch_size=7, progress=lambda *a: seen.append(a))
    o = evaluate_model(tiny_onnx, root, proto, out / "onnx", batch_size=16)
    return b, o, seen


def test_pairs_follow_the_protocol(eye_data):
    root, proto = eye_data
    pairs = read_pairs(proto, root)
    n = SUBJECTS * PER_SUBJECT
    assert len(pairs.images) == n
    assert pairs.genuine.sum() == SUBJECTS * PER_SUBJECT * (PER_SUBJECT - 1) // 2
    assert (~pairs.genuine).sum() == n * (n - 1) // 2 - pairs.genuine.sum()
    same_folder = np.array([pairs.images[a].parent == pairs.images[b].parent
                            for a, b in zip(pairs.index_a, pairs.index_b)])
    np.testing.assert_array_equal(same_folder, pairs.genuine)


def test_bundle_and_its_onnx_export_score_the_same(evaluations):
    b, o, _ = evaluations
    assert b.document["model"]["kind"] == "bundle" and o.document["model"]["kind"] == "artifact"
    assert "onnxruntime" in o.document["model"]["runtime"] and "pytorch" in b.document["model"]["runtime"]
    np.testing.assert_allclose(o.genuine, b.genuine, atol=1e-4)
    np.testing.assert_allclose(o.impostor, b.impostor, atol=1e-4)
    assert abs(o.metrics["eer"] - b.metrics["eer"]) < 0.01
    # the pipeline keeps pairs and labels together: distinct subject patterns separate well even with random weights
    assert b.metrics["eer"] < 0.2 and b.metrics["auc"] > 0.85


def test_outputs_written(evaluations):
    b, _, seen = evaluations
    doc = json.loads((b.out / METRICS_FILE).read_text())
    assert doc["format"] == "toolchain.evaluation" and doc["metrics"]["eer"] == b.metrics["eer"]
    assert doc["data"]["num_genuine"] == 36 and doc["data"]["num_impostor"] == 240 and doc["data"]["feature_dim"] == 64
    assert set(doc["metrics"]["tar_at_far"]) == {"1e-2", "1e-3", "1e-4"}
    assert any("rule of three" in w for w in doc["metrics"]["warnings"])  # 240 impostor pairs support none
    vp = doc["data"]["verification_protocol"]  # the rules of the protocol file, so numbers say what they measure
    assert vp["name"] == "all-pairs" and vp["label"] == "all-pairs (other eye excluded)" and vp["split"] == "test"
    for name in FILES.values():
        assert (b.out / name).is_file() and (b.out / name).stat().st_size > 1000
    assert seen[-1][1:3] == (24, 24) and len(seen) == 4  # (stage, done, total, info); batches of 7: 7, 14, 21, 24
    again = load_evaluation(b.out / METRICS_FILE)
    np.testing.assert_array_equal(again.genuine, b.genuine)


def test_compare_reuses_finished_evaluations_and_evaluates_models(evaluations, tiny_bundle, eye_data, tmp_path):
    b, o, _ = evaluations
    root, proto = eye_data
    c = compare([b.out, o.out / METRICS_FILE, tiny_bundle], tmp_path / "cmp", root, proto)
    rows = c.summary["models"]
    assert [r["model"]["kind"] for r in rows] == ["bundle", "artifact", "bundle"]
    assert rows[2]["label"] == rows[0]["label"] + " #2"  # the same bundle twice gets a distinct label
    assert rows[2]["eer"] == pytest.approx(rows[0]["eer"])
    assert (tmp_path / "cmp" / "tiny" / METRICS_FILE).is_file()
    for f in ("compare_roc.png", "compare_det.png", "compare.json"):
        assert (tmp_path / "cmp" / f).is_file()
    assert c.summary["warnings"] == []
    assert {r["protocol"] for r in rows} == {"all-pairs (other eye excluded)"}


def test_compare_errors(evaluations, tiny_bundle, tmp_path):
    b, _, _ = evaluations
    with pytest.raises(ToolchainError, match="at least two"):
        compare([b.out], tmp_path / "c")
    with pytest.raises(ToolchainError, match="give --data and --protocol"):
        compare([b.out, tiny_bundle], tmp_path / "c")
    with pytest.raises(ToolchainError, match="neither a model bundle nor"):
        compare([b.out, tmp_path], tmp_path / "c", tmp_path, tmp_path / "p.json")


def test_missing_images_and_bad_protocol(tiny_bundle, eye_data, tmp_path):
    root, proto = eye_data
    with pytest.raises(ToolchainError, match="24 of 24 images named by .* are missing"):
        evaluate_model(tiny_bundle, tmp_path, proto, tmp_path / "out")
    (tmp_path / "p.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match="not a verification protocol"):
        evaluate_model(tiny_bundle, root, tmp_path / "p.json", tmp_path / "out")
    assert not (tmp_path / "out" / METRICS_FILE).exists()


def test_unreadable_image_is_named(tiny_bundle, eye_data, tmp_path):
    import shutil

    root, proto = eye_data
    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    (copy / "subject_03" / "2.png").write_bytes(b"not a png")
    with pytest.raises(ToolchainError, match="subject_03/2.png"):
        evaluate_model(tiny_bundle, copy, proto, tmp_path / "out")
    assert not (tmp_path / "out" / METRICS_FILE).exists()


def test_failed_rerun_keeps_the_previous_result(evaluations, tiny_bundle, eye_data, tmp_path):
    import shutil

    b, _, _ = evaluations
    root, proto = eye_data
    out = tmp_path / "prev"
    shutil.copytree(b.out, out)
    before = (out / METRICS_FILE).read_bytes(), (out / "scores.npz").read_bytes()
    with pytest.raises(ToolchainError):
        evaluate_model(tiny_bundle, tmp_path / "nowhere", proto, out)
    assert ((out / METRICS_FILE).read_bytes(), (out / "scores.npz").read_bytes()) == before


def test_cross_session_protocol_is_recorded_in_metrics(tiny_bundle, tmp_path):
    from toolchain.data.layouts import scan
    from toolchain.data.protocols import resolve_rules
    from toolchain.data.splits import make_protocol, save_protocol
    from toolchain.data.synth import generate

    root = generate(tmp_path / "u", subjects=3, images_per_subject=3, size=32, seed=0, layout="ufpr")
    rules = resolve_rules("ufpr", "cross-session")
    proto = save_protocol(make_protocol(scan(root).samples, root=root, rules=rules), tmp_path / "p.json")
    ev = evaluate_model(tiny_bundle, root, proto, tmp_path / "e", plot=False)
    vp = json.loads((ev.out / METRICS_FILE).read_text())["data"]["verification_protocol"]
    assert vp["name"] == "cross-session" and vp["enrol_sessions"] == ["1"] and vp["verify_sessions"] == ["2", "3"]
    assert vp["label"] == rules.label() and "Zanlorensi" in vp["source"]
    assert ev.document["data"]["num_genuine"] == 3 * 2 * 1 * 2  # 3 subjects x 2 eyes x (1 S1 image x 2 S2/S3 images)
