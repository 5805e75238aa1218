import numpy as np
import pytest

from toolchain.artifact.compare import compare, cosine_per_sample, skipped
from toolchain.artifact.inputs import smooth_random_images
from toolchain.export.parity import settle
from toolchain.policy import MIN_COSINE_BY_PRECISION as DEFAULT_MIN_COSINE


def test_cosine_hand_computed():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    b = np.array([[1.0, 1.0], [0.0, 5.0], [0.0, 0.0]])
    np.testing.assert_allclose(cosine_per_sample(a, b), [2 ** -0.5, 1.0, 1.0])


def test_identical_outputs_pass():
    ref = np.random.default_rng(0).normal(size=(4, 32))
    r = compare(ref, ref.copy(), min_cosine=DEFAULT_MIN_COSINE["fp32"], runtime="x")
    assert r.status == "passed" and r.max_abs == 0.0 and r.cosine_min == pytest.approx(1.0)


def test_every_mismatch_is_listed():
    ref = np.random.default_rng(0).normal(size=(3, 16))
    got = ref.copy()
    got[1] = -got[1]
    got[2, 0] = np.nan
    r = compare(ref, got, min_cosine=0.99, runtime="x", output_name="output_0")
    assert r.status == "failed"
    joined = " | ".join(r.mismatches)
    assert "sample 1" in joined and "sample 2" in joined and "non-finite" in joined and "output_0" in joined


def test_shape_mismatch_fails_without_values():
    r = compare(np.zeros((2, 8)), np.zeros((2, 4)), min_cosine=0.9, runtime="x")
    assert r.status == "failed" and "shape" in r.mismatches[0]


def test_smooth_images_are_seeded_raw_pixels():
    a = smooth_random_images(2, 40, seed=5)
    assert a.shape == (2, 3, 40, 40) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 255 and a.std() > 20
    np.testing.assert_array_equal(a, smooth_random_images(2, 40, seed=5))
    assert not np.array_equal(a, smooth_random_images(2, 40, seed=6))


def test_thresholds_by_precision_and_compression():
    from toolchain.policy import min_cosine as default_min_cosine

    assert default_min_cosine("fp32") == 0.99999 and default_min_cosine("fp16") == 0.999
    assert default_min_cosine("fp16", "sparse") == 0.999  # exact zeros stored sparsely: lossless
    for bits in (4, 6, 8):  # every k-means palette is lossy, judged like int8
        assert default_min_cosine("fp16", f"palettize{bits}") == 0.99


def test_a_failure_on_any_runtime_fails_the_artifact():
    """The Apple runtime's result is read: a second runtime failing fails the artifact, naming it."""
    ref = np.random.default_rng(0).normal(size=(2, 8))
    good = compare(ref, ref.copy(), min_cosine=0.999, runtime="coreml-ref")
    bad = compare(ref, -ref, min_cosine=0.999, runtime="Core ML 15")
    assert settle([("coreml-ref", good), ("coreml", skipped("needs macOS"))]).status == "passed"
    r = settle([("coreml-ref", good), ("coreml", bad)])
    assert r.status == "failed" and r.reference == "coreml-ref" and r.cosine_min == good.cosine_min
    assert all(m.startswith("coreml: sample") for m in r.mismatches) and len(r.mismatches) == 2
