"""Fixtures for compression tests: a tiny synthetic data set and tiny bundles (1 thread: shared CPUs)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    from toolchain.data.synth import generate

    return generate(tmp_path_factory.mktemp("data") / "synth", subjects=12, images_per_subject=4, size=64, seed=0)
