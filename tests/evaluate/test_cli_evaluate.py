"""`deploy evaluate` from the command line: one model, --compare, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DEPLOY = [sys.executable, "-m", "toolchain.cli"]


def deploy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*DEPLOY, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    from toolchain.data.layouts import scan
    from toolchain.data.splits import make_protocol, save_protocol

    root = tmp_path_factory.mktemp("cli_eyes")
    rng = np.random.default_rng(1)
    for s in range(4):
        base = np.kron(rng.random((4, 4, 3)), np.ones((16, 16, 1))) * 255
        (root / f"s{s}").mkdir()
        for k in range(3):
            img = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img, "RGB").save(root / f"s{s}" / f"{k}.png")
    return root, save_protocol(make_protocol(scan(root).samples, root=root), root.parent / "cli_protocol.json")


def test_evaluate_then_compare(tiny_bundle, data, tmp_path):
    root, proto = data
    r = deploy("evaluate", tiny_bundle, "--data", root, "--protocol", proto, "--out", tmp_path / "a",
               "--far", "0.1", "--batch-size", "5", "--threads", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert list(doc["metrics"]["tar_at_far"]) == ["1e-1"] and doc["timing"]["batch_size"] == 5
    assert "EER" in r.stdout and f"{doc['metrics']['eer'] * 100:.3f} %" in r.stdout
    assert "verification protocol: " in r.stdout and "unrecorded" not in r.stdout
    r = deploy("evaluate", "--compare", tmp_path / "a", tmp_path / "a" / "metrics.json", "--out", tmp_path / "c")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "c" / "compare_det.png").is_file()
    assert len(json.loads((tmp_path / "c" / "compare.json").read_text())["models"]) == 2


@pytest.mark.parametrize("args, message", [
    (["{bundle}", "{bundle}", "--out", "{tmp}/o"], "add --compare"),
    (["{bundle}", "--out", "{tmp}/o"], "--data and --protocol are required"),
    (["{tmp}", "--data", "{tmp}", "--protocol", "{tmp}/p.json", "--out", "{tmp}/o"], "neither a model bundle nor"),
    (["--compare", "{bundle}", "--out", "{tmp}/o"], "at least two"),
])
def test_user_errors_are_one_line(tiny_bundle, tmp_path, args, message):
    r = deploy("evaluate", *[a.format(bundle=tiny_bundle, tmp=tmp_path) for a in args])
    assert r.returncode == 2, r.stderr[-2000:]
    assert message in r.stderr and "Traceback" not in r.stderr
