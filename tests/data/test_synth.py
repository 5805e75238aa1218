from __future__ import annotations

import json

import numpy as np

from toolchain.data.layouts import detect_layout, scan
from toolchain.data.synth import generate, image_rng, make_subject, render, subject_rng


def test_layout_and_counts(synth_small):
    assert detect_layout(synth_small) == "per-subject"
    ds = scan(synth_small)
    assert len(ds.subjects()) == 8 and len(ds.samples) == 32
    assert json.loads((synth_small / "synth.json").read_text())["seed"] == 0


def test_deterministic_per_seed_and_stable_when_growing(synth_small, tmp_path):
    bigger = generate(tmp_path / "b", subjects=9, images_per_subject=5, size=32, seed=0)
    for f in sorted(synth_small.rglob("*.png")):
        assert (bigger / f.relative_to(synth_small)).read_bytes() == f.read_bytes()
    other = generate(tmp_path / "o", subjects=1, images_per_subject=1, size=32, seed=1)
    first = sorted(synth_small.rglob("*.png"))[0]
    assert (other / first.relative_to(synth_small)).read_bytes() != first.read_bytes()


def test_images_of_a_subject_differ_but_resemble_each_other_more_than_others():
    # mean colour is a crude identity cue: same-subject images closer than other subjects' on average
    def img(s, j):
        return render(make_subject(subject_rng(0, s)), image_rng(0, s, j), 48).astype(np.float64)

    a0, a1 = img(0, 0), img(0, 1)
    assert not np.array_equal(a0, a1)
    same = np.mean([np.abs(img(s, 0) - img(s, 1)).mean() for s in range(6)])
    diff = np.mean([np.abs(img(s, 0) - img(s + 1, 1)).mean() for s in range(6)])
    assert same < diff


def test_render_shape_and_range():
    a = render(make_subject(subject_rng(3, 0)), image_rng(3, 0, 0), 40)
    assert a.shape == (40, 40, 3) and a.dtype == np.uint8 and a.std() > 5


def test_session_layouts_are_deterministic_and_sessions_differ(tmp_path):
    a = generate(tmp_path / "a", subjects=2, images_per_subject=3, size=32, seed=0, layout="ufpr")
    b = generate(tmp_path / "b", subjects=2, images_per_subject=3, size=32, seed=0, layout="ufpr")
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*.png"))
    assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*.png")) and len(files) == 12
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert json.loads((a / "synth.json").read_text())["layout"] == "ufpr"
    v = generate(tmp_path / "v", subjects=1, images_per_subject=8, size=32, seed=0, layout="visob")
    assert (v / "Samsung" / "Dim" / "Visit2" / "1000_01_R_1.png").is_file()
