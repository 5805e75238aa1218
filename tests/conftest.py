"""Shared fixtures: tiny bundles are cheap; the real ResNet50 bundle is built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    from toolchain.models.bundle import init_bundle

    return init_bundle("tiny_ocular", tmp_path_factory.mktemp("bundles") / "tiny", seed=0)


@pytest.fixture(scope="session")
def resnet50_bundle(tmp_path_factory) -> Path:
    from toolchain.models.bundle import init_bundle

    return init_bundle("resnet50_ocular", tmp_path_factory.mktemp("bundles") / "resnet50", seed=0)
