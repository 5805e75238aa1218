"""A tiny synthetic set and tiny-model helpers for training tests (32 px, seconds per fit)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_tiny(tmp_path_factory) -> Path:
    from toolchain.data.synth import generate

    return generate(tmp_path_factory.mktemp("synth") / "s", subjects=10, images_per_subject=4, size=32, seed=0)


@pytest.fixture
def parts(synth_tiny):
    """(make_model, train_ds, val_protocol) on the tiny set: 32 px tiny_ocular."""
    from toolchain.data.images import ImageDataset
    from toolchain.data.layouts import scan
    from toolchain.data.splits import assign_splits, make_protocol
    from toolchain.models.bundle import new_model
    from toolchain.models.cards import load_card

    ds = scan(synth_tiny)
    split = assign_splits(ds.subjects(), seed=0)
    train = [s for s in ds.samples if split[s.subject] == "train"]
    names = sorted({s.subject for s in train})
    train_ds = ImageDataset([s.path for s in train], [names.index(s.subject) for s in train], 32,
                            (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), augment="ocular")
    val = make_protocol(ds.select([s for s, k in split.items() if k == "val"]), root=synth_tiny, split="val")

    def make_model():
        m, _ = new_model(load_card("tiny_ocular"), seed=0, input_size=32)
        return m.train()

    return make_model, train_ds, val
