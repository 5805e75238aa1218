"""The coremltools op overrides: `x.view(x.size(0), -1)` converts under NumPy 2.4 (apple/coremltools#2633)."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
import torch
from torch import nn

from tests.runtimes._coreml import run_coreml
from toolchain.export.coreml import ops as coreml_ops



class _ViewFlatten(nn.Module):
    """The classic flatten: traced, x.size(0) becomes aten::size -> aten::Int on a 1-element constant."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        y = self.conv(x)
        return self.fc(y.view(y.size(0), -1))


def test_scalar_worked_example():
    assert coreml_ops.scalar(np.array([8]), int) == 8 and coreml_ops.scalar(np.array(0.0), bool) is False
    with pytest.raises(ValueError):
        coreml_ops.scalar(np.array([1, 2]), int)


@pytest.mark.parametrize("fmt", ["mlprogram", "neuralnetwork"])
def test_view_size_flatten_converts_and_matches(tmp_path, fmt):
    torch.manual_seed(0)
    m = _ViewFlatten().eval()
    x = torch.rand(1, 3, 8, 8)
    traced = torch.jit.trace(m, x)
    assert "aten::size" in str(traced.graph) and "aten::Int" in str(traced.graph)  # the pattern that broke
    coreml_ops.register()
    coreml_ops.register()  # idempotent
    model = ct.convert(traced, convert_to=fmt, inputs=[ct.TensorType(name="x", shape=x.shape)],
                       outputs=[ct.TensorType(name="y")],
                       minimum_deployment_target=ct.target.iOS15 if fmt == "mlprogram" else ct.target.iOS13,
                       **({"compute_precision": ct.precision.FLOAT32} if fmt == "mlprogram" else {}))
    path = tmp_path / ("m.mlpackage" if fmt == "mlprogram" else "m.mlmodel")
    model.save(str(path))
    got = run_coreml(path, {"x": x.numpy()})[0]["y"]
    with torch.no_grad():
        np.testing.assert_allclose(got.reshape(1, -1), m(x).numpy(), rtol=1e-4, atol=1e-5)


def test_numpy_still_refuses_what_the_override_works_around():
    """If this starts passing, NumPy relaxed again and the override is merely harmless."""
    with pytest.raises(TypeError):
        int(np.array([3]))


class _Normalised(nn.Module):
    """The deploy module's input normalisation (a per-channel multiply-add) in front of a conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        self.register_buffer("scale", (1 / (255 * std)).view(1, 3, 1, 1))
        self.register_buffer("bias", (-mean / std).view(1, 3, 1, 1))

    def forward(self, x):
        return self.conv(x * self.scale + self.bias)


@pytest.mark.parametrize("fmt", ["mlprogram", "neuralnetwork"])
def test_multiply_add_fuses_into_an_exact_batchnorm(tmp_path, fmt):
    """coremltools' own fusion leaves the batch norm's epsilon on a variance of 1 (a 5e-6 relative gain
    error: this test fails with its default pipeline); the replacement computes ``x * scale + bias`` to
    float32 rounding."""
    torch.manual_seed(0)
    m = _Normalised().eval()
    x = torch.rand(1, 3, 8, 8) * 255
    model = ct.convert(torch.jit.trace(m, x), convert_to=fmt, inputs=[ct.TensorType(name="x", shape=x.shape)],
                       outputs=[ct.TensorType(name="y")], pass_pipeline=coreml_ops.pass_pipeline(),
                       minimum_deployment_target=ct.target.iOS15 if fmt == "mlprogram" else ct.target.iOS13,
                       **({"compute_precision": ct.precision.FLOAT32} if fmt == "mlprogram" else {}))
    spec = model.get_spec()
    if fmt == "neuralnetwork":  # the fused layer divides by sqrt(variance + epsilon): exactly 1
        (bn,) = [layer.batchnorm for layer in spec.neuralNetwork.layers if layer.WhichOneof("layer") == "batchnorm"]
        divisor = np.sqrt(np.asarray(bn.variance.floatValue, np.float32) + np.float32(bn.epsilon))
        np.testing.assert_array_equal(divisor, np.ones(3, np.float32))
    else:
        ops = spec.mlProgram.functions["main"].block_specializations["CoreML5"].operations
        assert "batch_norm" in [op.type for op in ops], "the multiply-add was not fused"
    path = tmp_path / ("m.mlpackage" if fmt == "mlprogram" else "m.mlmodel")
    model.save(str(path))
    got = run_coreml(path, {"x": x.numpy()})[0]["y"]
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=0, atol=2e-6)
