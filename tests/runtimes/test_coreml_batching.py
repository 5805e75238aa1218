"""The fast numpy Core ML executor: prepared convolutions and whole-batch execution, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import coremltools as ct
import numpy as np
import pytest
import torch
from torch import nn

from toolchain.runtimes.coreml import kernels

torch.set_num_threads(1)
SIZE = 13  # odd: 'same' padding and strided windows end unevenly


@pytest.mark.parametrize("cin,cout,k,groups,stride,padding,dilation", [
    (6, 6, 3, 6, 1, 1, 1),          # depthwise
    (6, 6, 3, 6, 2, 1, 1),          # depthwise, strided (MobileNet's downsampling)
    (4, 8, 3, 4, 1, 2, 2),          # depthwise with multiplier 2 (grouped path), dilated
    (6, 6, 5, 6, (2, 1), (2, 0), (1, 2)),  # depthwise, uneven stride/pad/dilation
    (8, 4, 3, 2, 2, 1, 1),          # grouped
    (4, 6, 1, 1, 2, 0, 1),          # 1x1 strided (ResNet's projection shortcut)
    (3, 5, 7, 1, 2, 3, 1),          # ResNet's stem
    (4, 4, 3, 1, 1, 0, 3),          # dense, dilated, no padding
])
def test_prepared_conv_matches_torch(cin, cout, k, groups, stride, padding, dilation):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, cin, SIZE, SIZE - 2, generator=g)
    w = torch.randn(cout, cin // groups, k, k, generator=g)
    b = torch.randn(cout, generator=g)
    ref = nn.functional.conv2d(x, w, b, stride, padding, dilation, groups).numpy()
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    ph, pw = pair(padding)
    conv = kernels.Conv2d(w.numpy(), b.numpy(), groups)
    got = conv(x.numpy(), pair(stride), (ph, ph, pw, pw), pair(dilation))
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    # the same prepared weights on another batch size (one sample), as an artifact's session reuses them
    np.testing.assert_allclose(conv(x[:1].numpy(), pair(stride), (ph, ph, pw, pw), pair(dilation)), ref[:1],
                               rtol=1e-4, atol=1e-4)


def test_conv_asymmetric_pads_and_batch_slicing(monkeypatch):
    """'same' padding is asymmetric (pads = top, bottom, left, right); a batch larger than the im2col buffer
    is convolved in slices of samples with the same result."""
    g = torch.Generator().manual_seed(4)
    x, w = torch.randn(7, 3, 9, 9, generator=g), torch.randn(4, 3, 3, 3, generator=g)
    ref = nn.functional.conv2d(nn.functional.pad(x, (0, 1, 1, 0)), w, None, 2).numpy()  # F.pad: left, right, top, bottom
    monkeypatch.setattr(kernels, "COLUMNS_MAX", 3 * 9 * 16 * 2)  # two samples' columns at a time
    monkeypatch.setattr(kernels, "DEPTHWISE_BLOCK", 1)
    got = kernels.conv2d(x.numpy(), w.numpy(), None, (2, 2), (1, 0, 0, 1))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    dw = torch.randn(3, 1, 3, 3, generator=g)
    ref = nn.functional.conv2d(x, dw, None, 1, 1, 1, 3).numpy()
    np.testing.assert_allclose(kernels.conv2d(x.numpy(), dw.numpy(), None, (1, 1), (1, 1, 1, 1), groups=3), ref,
                               rtol=1e-5, atol=1e-5)


class _Convs(nn.Module):
    """Every convolution form the executor has: dense, strided, dilated, depthwise, grouped, 1x1, then a
    flatten and a linear layer (a reshape of each sample that batched execution must re-aim)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU6(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),                      # depthwise
            nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2),                      # grouped, dilated
            nn.Conv2d(8, 16, 1), nn.MaxPool2d(3, 2, 1),
            nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16))                     # depthwise, strided
        self.fc = nn.Linear(16 * 2 * 2, 6)
        with torch.no_grad():
            self.body[1].running_mean.uniform_(-1, 1)
            self.body[1].running_var.uniform_(0.5, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.body(x), 1))


class _MixesSamples(nn.Module):
    """A reshape across the batch axis (its one-sample graph folds the batch into channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x).reshape(4, -1)).reshape(1, -1)


def _session(module: nn.Module, fmt: str, path: Path, precision: str = "fp32"):
    from toolchain.artifact.folder import ArtifactRef
    from toolchain.artifact.formats import COREML
    from toolchain.artifact.manifest import InputSpec, OutputSpec
    from toolchain.runtimes import get_runtime

    x = torch.rand(1, 3, SIZE + 3, SIZE + 3) * 255
    kwargs = {}
    if fmt == "mlprogram":
        kwargs["compute_precision"] = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    model = ct.convert(torch.jit.trace(module, x), convert_to=fmt, inputs=[ct.TensorType(name="x", shape=x.shape)],
                       outputs=[ct.TensorType(name="y")],
                       minimum_deployment_target=ct.target.iOS15 if fmt == "mlprogram" else ct.target.iOS13, **kwargs)
    path.mkdir(parents=True, exist_ok=True)
    out = path / ("m.mlpackage" if fmt == "mlprogram" else "m.mlmodel")
    model.save(str(out))
    ref = ArtifactRef(out, COREML, "m", InputSpec("x", [1, 3, SIZE + 3, SIZE + 3]), OutputSpec())
    return get_runtime("coreml-ref").open(ref)


@pytest.mark.parametrize("fmt,precision", [("mlprogram", "fp32"), ("neuralnetwork", "fp32"), ("mlprogram", "fp16")])
def test_batched_features_match_torch_and_one_by_one(fmt, precision, tmp_path):
    torch.manual_seed(0)
    module = _Convs().eval()
    session = _session(module, fmt, tmp_path, precision)
    x = torch.rand(6, 3, SIZE + 3, SIZE + 3) * 255
    with torch.no_grad():
        ref = module(x).numpy()
    got = session.features(x.numpy())
    plan = session._plan
    assert plan is not None and plan.batchable  # the batch ran as one: every step gave N samples
    one = np.concatenate([session.features(x[i:i + 1].numpy()) for i in range(len(x))])
    tol = 1e-3 if precision == "fp32" else 3e-2
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max())
    if precision == "fp32":
        np.testing.assert_allclose(got, one, rtol=1e-5, atol=1e-5)
    else:  # fp16 rounding may differ in the last bit between batch layouts (BLAS sums in another order)
        np.testing.assert_allclose(got, one, rtol=1e-2, atol=1e-2 * np.abs(ref).max())


def test_a_model_that_mixes_samples_runs_one_by_one(tmp_path):
    """Batching is checked, never assumed: a reshape across the batch axis sends the plan to one sample at a
    time, with PyTorch's numbers for each. (ML Program only: the NeuralNetwork executor has no general
    reshape layer, rankPreservingReshape, to build such a model from.)"""
    torch.manual_seed(1)
    module = _MixesSamples().eval()
    session = _session(module, "mlprogram", tmp_path)
    x = torch.rand(3, 3, SIZE + 3, SIZE + 3) * 255
    with torch.no_grad():
        ref = np.concatenate([module(x[i:i + 1]).numpy() for i in range(len(x))])
    got = session.features(x.numpy())
    assert not session._plan.batchable
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


def test_round_to_fp16_is_numpys_cast_bit_for_bit():
    """Every sampled float32 bit pattern (normals, float16 subnormals, overflow, inf, NaN) rounds exactly as
    ``astype(float16).astype(float32)``; a view is rounded on a copy, never in place."""
    bits = np.arange(0, 2 ** 32, 4099, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32).copy()
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).astype(np.float32)
    got = kernels.round_to_fp16(x.copy())
    nan = np.isnan(want)
    assert np.isnan(got[nan]).all()
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))
    base = np.full(6, 1 + 2 ** -12, np.float32)
    out = kernels.round_to_fp16(base[::2])
    assert out.tolist() == [1.0] * 3 and base.tolist() == [1 + 2 ** -12] * 6


def test_fp16_rounding_skipped_only_where_it_changes_nothing(tmp_path, monkeypatch):
    """Ops that only move or select float16 values (relu, clip, pooling's max, reshape, ...) skip the rounding:
    the outputs are bit-identical to rounding after every op."""
    from toolchain.runtimes.coreml import inplace

    torch.manual_seed(0)
    module = _Convs().eval()
    x = (torch.rand(3, 3, SIZE + 3, SIZE + 3) * 255).numpy()
    fast = _session(module, "mlprogram", tmp_path / "a", "fp16")
    got = fast.features(x)
    assert sum(s.finish[0] is inplace.same for s in fast._plan.steps) >= 3
    monkeypatch.setattr(inplace, "VALUE_PRESERVING", frozenset())
    every = _session(module, "mlprogram", tmp_path / "b", "fp16")
    np.testing.assert_array_equal(got, every.features(x))
    assert not any(s.finish[0] is inplace.same for s in every._plan.steps)


class _Residual(nn.Module):
    """ResNet's pattern: conv -> relu read twice (the residual), add -> relu; a relu6 on a value also returned."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)

    def forward(self, x):
        h = torch.relu(self.a(x))
        y = torch.relu(self.b(h) + h)
        z = self.c(y)
        return torch.cat([torch.nn.functional.relu6(z), z], 1)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_in_place_ops_only_overwrite_temporaries(precision, tmp_path, monkeypatch):
    """relu / clip / add overwrite their input only where no other op reads it: the same outputs as without."""
    from toolchain.runtimes.coreml import inplace

    torch.manual_seed(2)
    module = _Residual().eval()
    x = (torch.rand(3, 3, SIZE + 3, SIZE + 3) * 2 - 1).numpy()
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy().reshape(3, -1)
    fast = _session(module, "mlprogram", tmp_path / "a", precision)
    got = fast.features(x)
    assert sum(s.fn.__closure__ is not None and any(getattr(c.cell_contents, "__name__", "").endswith("_in_place")
                                                    for c in s.fn.__closure__) for s in fast._plan.steps) >= 2
    monkeypatch.setattr(inplace, "IN_PLACE", {})
    plain = _session(module, "mlprogram", tmp_path / "b", precision)
    np.testing.assert_array_equal(got, plain.features(x))
    tol = 1e-4 if precision == "fp32" else 2e-2
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max())
