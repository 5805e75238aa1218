"""The model importer compares features with the contract's one cosine (``toolchain.artifact.compare``)."""

from __future__ import annotations

import numpy as np

from toolchain.models.importer import compare


def test_zero_features_on_both_sides_agree():
    """Before: ``dot / (|a| |b| + 1e-30)`` scored a zero/zero pair 0, failing an import that matched exactly."""
    z = np.zeros((2, 4))
    r = compare(z, z)
    assert r["status"] == "passed" and r["cosine_min"] == 1.0


def test_a_zero_against_a_nonzero_feature_fails():
    r = compare(np.zeros((1, 3)), np.ones((1, 3)))
    assert r["status"] == "failed" and r["cosine_min"] == 0.0
