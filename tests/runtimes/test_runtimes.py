"""The runtime layer: one registry, one session per artifact serving parity, evaluation and timing."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from toolchain import runtimes
from toolchain.artifact.formats import format_names
from toolchain.artifact.formats import BUNDLE_FORMAT
from toolchain.artifact.inputs import smooth_random_images
from toolchain.errors import ParityError, RuntimeUnavailable
from toolchain.export.base import ExportRequest, export_bundle


@pytest.mark.parametrize("name", runtimes.RUNTIMES.names())
def test_every_runtime_declares_what_it_opens(name):
    rt = runtimes.get_runtime(name)
    assert rt.name == name and rt.formats and set(rt.formats) <= {*format_names(), BUNDLE_FORMAT}
    assert isinstance(rt.timing, bool) and isinstance(rt.preference, int)
    why = rt.unavailable()
    assert why is None or (isinstance(why, str) and why)


def test_every_format_has_a_runtime_for_numerics():
    for fmt in format_names():
        assert runtimes.runtimes_for(fmt), fmt


def test_one_session_serves_numerics_and_timing(tiny_bundle):
    from functools import partial

    from toolchain.models.bundle import load_bundle

    rt, session = runtimes.open_session(partial(load_bundle, tiny_bundle), BUNDLE_FORMAT, timing=True, threads=1)
    px = smooth_random_images(2, 64, seed=3)
    feats = session.features(px)
    one = session.prepare(px[:1])
    np.testing.assert_allclose(one(), feats[:1], rtol=1e-5, atol=1e-6)
    assert rt.name == "pytorch" and session.runtime["threads"] == 1


def test_apples_runtime_leads_core_ml_parity_on_a_mac_only(monkeypatch):
    """On macOS `make test` checks Core ML artifacts with Apple's runtime first (the executor second)."""
    from toolchain.artifact.formats import COREML

    monkeypatch.setattr(sys, "platform", "darwin")
    assert [r.name for r in runtimes.runtimes_for(COREML)][:2] == ["coreml", "coreml-ref"]
    monkeypatch.setattr(sys, "platform", "linux")
    assert [r.name for r in runtimes.runtimes_for(COREML)][:2] == ["coreml-ref", "coreml"]


def test_unknown_format_is_unavailable_not_a_crash():
    class Ref:
        name, format = "x", "caffe"
    with pytest.raises(RuntimeUnavailable, match="no runtime runs caffe"):
        runtimes.open_session(Ref(), "caffe")


FAKE = '''
import numpy as np

from toolchain.artifact.formats import ONNX
from toolchain.runtimes.base import Runtime


class Off(Runtime):
    """A second ONNX runtime whose features are a little off (cosine ~0.9995 with PyTorch's)."""

    name = "fake-second"
    formats = (ONNX,)
    timing = False
    preference = 5

    def _open(self, model, threads=None):
        from toolchain.runtimes import get_runtime

        inner = get_runtime("onnxruntime").open(model, threads)
        block = self.block("0", "cpu", None, None)

        class S:
            runtime = block
            description, output_name = "fake second runtime", inner.output_name

            def features(self, px):
                f = inner.features(px)
                noise = np.random.default_rng(0).normal(size=f.shape).astype(np.float32)
                return f + 0.03 * np.linalg.norm(f, axis=1, keepdims=True) * noise / np.sqrt(f.shape[1])

            def prepare(self, px):
                return lambda: self.features(px)
        return S()
'''


@pytest.fixture
def second_runtime(tmp_path, monkeypatch):
    """A new runtime = one module + one registration line (here: monkeypatched into the registry)."""
    (tmp_path / "fake_second_runtime.py").write_text(textwrap.dedent(FAKE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(runtimes.RUNTIMES._items, "fake-second", "fake_second_runtime:Off")
    yield
    runtimes._loaded.pop("fake-second", None)
    sys.modules.pop("fake_second_runtime", None)


def test_every_runtime_of_the_format_checks_parity_at_the_same_threshold(tiny_bundle, tmp_path, second_runtime):
    """Before: the Apple-runtime check used its own threshold (ignoring --min-cosine) and nobody read it."""
    with pytest.raises(ParityError, match="fake-second: sample 0") as e:
        export_bundle(ExportRequest(tiny_bundle, "onnx", tmp_path / "strict"))
    (o,) = e.value.outcomes
    assert o.manifest.parity.status == "failed" and o.manifest.parity.reference.startswith("onnxruntime")
    assert o.manifest.parity_by_runtime["onnxruntime"].status == "passed"
    (o,) = export_bundle(ExportRequest(tiny_bundle, "onnx", tmp_path / "lenient", min_cosine=0.99))
    by = o.manifest.parity_by_runtime
    assert o.manifest.parity.status == "passed" and by["fake-second"].status == "passed"
    assert by["fake-second"].min_cosine_required == 0.99 and by["fake-second"].cosine_min < 0.9999
