"""Closed-set top-1/top-5: through a bundle's head, by nearest class mean without one, in metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from toolchain.data.closed_set import CLOSED_SET_FILE, ClosedSet
from toolchain.evaluate.closed_set import accuracy, class_means, ranks
from toolchain.evaluate.features import FeatureExtractor

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


@pytest.fixture(scope="module")
def solid(tmp_path_factory) -> tuple[Path, ClosedSet]:
    """6 classes, each a solid colour; 2 gallery images and 1 probe per class; the last probe has class 0's colour."""
    root = tmp_path_factory.mktemp("solid")
    probes, gallery = [], []
    for k, c in enumerate(COLOURS):
        for i in range(3):
            colour = COLOURS[0] if (k == 5 and i == 2) else c
            Image.new("RGB", (16, 16), colour).save(root / f"c{k}_{i}.png")
            (probes if i == 2 else gallery).append((f"c{k}_{i}.png", k))
    return root, ClosedSet([f"s{k}" for k in range(6)], probes, gallery, 1, root=root)


def _mean_colour_model(logits=None, num_classes=0) -> FeatureExtractor:
    """Features = the mean pixel per channel (N, 3): a model whose answer is known by hand."""
    return FeatureExtractor("bundle", Path("."), "mean-colour", 16, "0" * 64,
                            _run=lambda x: x.mean(axis=(2, 3)), logits=logits, num_classes=num_classes)


def test_ranks_and_means_by_hand():
    assert ranks(np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [np.nan, 1, 0]]), np.array([0, 1, 1])).tolist() == [0, 1, 3]
    m = class_means(np.array([[2.0, 0], [0, 5.0], [0, 1.0]]), np.array([0, 0, 1]), 3)
    np.testing.assert_allclose(m, [[2 ** -0.5, 2 ** -0.5], [0, 1], [0, 0]])


def test_class_mean_scores_the_known_answer(solid):
    root, cs = solid
    r = accuracy(_mean_colour_model(), cs, root, batch_size=4)
    # five probes in their class's colour are rank 0; the last (class 5, drawn in class 0's red) is not
    assert r["method"] == "class-mean" and r["images"] == 6 and r["gallery_images"] == 12
    assert r["top1"] == pytest.approx(5 / 6)
    # the red probe of class 5: only red's mean scores higher than magenta's (cos 0.707, tied with yellow): rank 1
    assert r["top5"] == 1.0


def test_the_head_is_used_when_its_classes_match(solid):
    root, cs = solid
    # a head that always says class 2: top-1 is exactly the one probe of class 2
    always_2 = lambda f: np.tile(np.eye(6)[2], (len(f), 1))
    r = accuracy(_mean_colour_model(always_2, 6), cs, root)
    assert r["method"] == "head" and r["top1"] == pytest.approx(1 / 6) and "gallery_images" not in r
    # a head of another size is not this closed set's: nearest class mean, said so
    r = accuracy(_mean_colour_model(always_2, 7), cs, root)
    assert r["method"] == "class-mean" and "7 classes" in r["note"] and r["top1"] == pytest.approx(5 / 6)


def test_evaluate_writes_closed_set_into_metrics(tiny_bundle, tmp_path):
    """A trained-head bundle: `head`, with top-1 equal to the head's own argmax; the metrics.json key of TEAM.md."""
    import torch

    from toolchain.data.layouts import scan
    from toolchain.data.splits import write_split_files
    from toolchain.data.synth import generate
    from toolchain.evaluate.run import evaluate_model
    from toolchain.models.bundle import derive_meta, load_bundle, save_bundle

    data = generate(tmp_path / "data", subjects=8, images_per_subject=4, size=32, seed=0)
    written = write_split_files(scan(data), tmp_path / "splits", closed_set=1, fractions=(0.5, 0.25, 0.25))
    cs = json.loads(written["closed_set"].read_text())
    b = load_bundle(tiny_bundle)
    torch.manual_seed(0)
    b.model.head = torch.nn.Linear(b.feature_dim, len(cs["classes"]))
    headed = save_bundle(b.model, derive_meta(b), tmp_path / "headed")
    evaluate_model(headed, data, written["test"], tmp_path / "ev", plot=False)
    doc = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    block = doc["closed_set"]
    assert set(block) >= {"top1", "top5", "images", "method"} and block["method"] == "head"
    assert block["images"] == len(cs["probes"]) and 0 <= block["top1"] <= block["top5"] <= 1
    hb = load_bundle(headed)
    from toolchain.data.images import load_image

    x = np.stack([load_image(data / p, hb.input_size) for p, _ in cs["probes"]]).transpose(0, 3, 1, 2)
    mean = torch.tensor(hb.mean).view(1, 3, 1, 1)
    std = torch.tensor(hb.std).view(1, 3, 1, 1)
    with torch.no_grad():
        pred = hb.model.logits((torch.from_numpy(x).float() / 255 - mean) / std).argmax(1).numpy()
    assert block["top1"] == pytest.approx(np.mean(pred == np.array([c for _, c in cs["probes"]])))
    # no head: nearest class mean; no closed set beside the protocol: no block
    ev2 = evaluate_model(tiny_bundle, data, written["test"], tmp_path / "ev2", plot=False)
    assert ev2.document["closed_set"]["method"] == "class-mean"
    (tmp_path / "splits" / CLOSED_SET_FILE).unlink()
    assert "closed_set" not in evaluate_model(tiny_bundle, data, written["test"], tmp_path / "ev3", plot=False).document


def test_docstring_examples_hold():
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module("toolchain.evaluate.closed_set"))
    assert result.attempted > 0 and result.failed == 0
