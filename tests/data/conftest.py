"""Small data sets written on the fly."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory) -> Path:
    """8 subjects x 4 images at 32 px, seed 0 (per-subject layout)."""
    from toolchain.data.synth import generate

    return generate(tmp_path_factory.mktemp("synth") / "s", subjects=8, images_per_subject=4, size=32, seed=0)
