"""Lowering a NeuralNetwork to Core ML spec 3 (iOS 12): rewrites, refusals, numerics."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
import torch
from torch import nn

from toolchain.errors import UnsupportedLayerError
from toolchain.export.coreml.spec3 import check_spec3, lower_to_spec3, spec3_layer_kinds
from toolchain.runtimes.coreml.neuralnetwork import run_neuralnetwork

torch.set_num_threads(1)


def _nn_spec(module: nn.Module, size: int = 10, ios: int = 13):
    module = module.eval()
    x = torch.rand(1, 3, size, size) * 6 - 3
    with torch.no_grad():
        ref = module(x).numpy()
        model = ct.convert(torch.jit.trace(module, x), convert_to="neuralnetwork",
                           inputs=[ct.TensorType(name="pixels", shape=x.shape)], outputs=[ct.TensorType(name="features")],
                           minimum_deployment_target=getattr(ct.target, f"iOS{ios}"))
    return model.get_spec(), x.numpy(), ref


def test_spec3_layer_kinds_are_the_old_layers():
    kinds = spec3_layer_kinds()
    assert {"convolution", "pooling", "activation", "add", "multiply", "flatten", "unary", "batchnorm",
            "innerProduct", "concat", "scale"} <= kinds
    assert not {"clip", "reshapeStatic", "loadConstantND", "gelu", "reduceMean"} & kinds


def test_lowering_rewrites_relu6_and_flatten_and_keeps_the_numbers():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    spec, x, ref = _nn_spec(net)
    assert {"clip", "reshapeStatic"} & {layer.WhichOneof("layer") for layer in spec.neuralNetwork.layers}
    info = lower_to_spec3(spec, feature_dim=5)
    kinds = [layer.WhichOneof("layer") for layer in spec.neuralNetwork.layers]
    assert spec.specificationVersion == 3
    assert "clip" not in kinds and "reshapeStatic" not in kinds and "flatten" in kinds
    assert kinds.count("unary") == 2 and info["rewritten"]["clip"] == 1
    assert list(spec.description.input[0].type.multiArrayType.shape) == [3, 10, 10]
    assert spec.neuralNetwork.arrayInputShapeMapping == 0  # RANK5
    check_spec3(spec)
    out = run_neuralnetwork(spec, {"pixels": x[0]})["features"]
    np.testing.assert_allclose(out.reshape(ref.shape), ref, rtol=1e-5, atol=1e-5)


def test_clip_rewrite_worked_example():
    """clip(x, 0, 6) as threshold / negated threshold / linear(-1): 7 -> 6, -1 -> 0, 2.5 -> 2.5."""
    spec, _, _ = _nn_spec(nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU6(), nn.Flatten()), size=1)
    lower_to_spec3(spec, feature_dim=3)
    conv = spec.neuralNetwork.layers[0].convolution
    del conv.weights.floatValue[:]
    conv.weights.floatValue.extend([1, 0, 0, 0, 1, 0, 0, 0, 1])  # identity 1x1 conv
    del conv.bias.floatValue[:]
    conv.bias.floatValue.extend([0, 0, 0])
    x = np.array([7.0, -1.0, 2.5], np.float32).reshape(3, 1, 1)
    out = run_neuralnetwork(spec, {"pixels": x})["features"].ravel()
    assert out.tolist() == [6.0, 0.0, 2.5]


def test_spec4_only_layer_is_refused_by_name():
    spec, _, _ = _nn_spec(nn.Sequential(nn.Conv2d(3, 4, 1), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    with pytest.raises(UnsupportedLayerError, match=r"gelu \(layer"):
        lower_to_spec3(spec, feature_dim=4)


def test_inner_reshape_to_rank4_is_lowered_and_to_rank3_is_refused():
    class Reshape(nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.shape = shape

        def forward(self, x):
            return x.reshape(*self.shape)

    net = nn.Sequential(nn.Conv2d(3, 3, 1), Reshape((1, 6, 5, 10)), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    spec, x, ref = _nn_spec(net)
    lower_to_spec3(spec, feature_dim=6)
    assert "reshape" in [layer.WhichOneof("layer") for layer in spec.neuralNetwork.layers]  # the spec-1 layer
    out = run_neuralnetwork(spec, {"pixels": x[0]})["features"]
    np.testing.assert_allclose(out.reshape(ref.shape), ref, rtol=1e-5, atol=1e-5)
    spec, _, _ = _nn_spec(nn.Sequential(nn.Conv2d(3, 3, 1), Reshape((1, 30, 10)), nn.Softmax(-1), nn.Flatten()))
    with pytest.raises(UnsupportedLayerError, match=r"reshapeStatic.*\[1, 30, 10\]"):
        lower_to_spec3(spec, feature_dim=300)


class _SpatialMean(nn.Module):
    """MNASNet's head: x.mean([2, 3]) -> reduceMean in a spec-4 NeuralNetwork."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, x):
        return self.conv(x).mean([2, 3])


class _DenseBlock(nn.Module):
    """torchvision DenseNet-121's first dense block: coremltools emits spec-4 copy layers for its concatenations."""

    def __init__(self) -> None:
        super().__init__()
        import torchvision

        self.f = torchvision.models.densenet121().features[:5]

    def forward(self, x):
        return nn.functional.adaptive_avg_pool2d(self.f(x), 1).flatten(1)


class _ChannelSplit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.c2 = nn.Conv2d(3, 8, 1), nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        a, b = self.conv(x).chunk(2, dim=1)
        return nn.functional.adaptive_avg_pool2d(torch.cat([a, self.c2(b)], 1), 1).flatten(1)


@pytest.mark.parametrize("module,kind,dim", [(_SpatialMean, "reduceMean", 6), (_DenseBlock, "copy", 256),
                                             (_ChannelSplit, "splitND", 8)])
def test_spec4_layers_lowered_keep_the_numbers(module, kind, dim):
    """reduceMean -> global pooling, copy -> identity linear, splitND -> split: spec 3 and the same output."""
    torch.manual_seed(0)
    spec, x, ref = _nn_spec(module(), size=16)
    kinds = {layer.WhichOneof("layer") for layer in spec.neuralNetwork.layers}
    assert kind in kinds
    lower_to_spec3(spec, feature_dim=dim)
    check_spec3(spec)
    left = {layer.WhichOneof("layer") for layer in spec.neuralNetwork.layers}
    assert not left & {"reduceMean", "copy", "splitND"}
    out = run_neuralnetwork(spec, {"pixels": x[0]})["features"]
    np.testing.assert_allclose(out.reshape(ref.shape), ref, rtol=1e-5, atol=1e-5)


def test_reduce_mean_over_channels_is_refused():
    class ChannelMean(nn.Module):
        def forward(self, x):
            return x.mean(1, keepdim=True).flatten(1)

    spec, _, _ = _nn_spec(ChannelMean())
    with pytest.raises(UnsupportedLayerError, match="reduceMean"):
        lower_to_spec3(spec, feature_dim=100)


class _ShuffleUnit(nn.Module):
    """A ShuffleNetV2 unit: chunk, one branch convolved, concat, channel shuffle (groups 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.branch = nn.Conv2d(3, 8, 1), nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        a, b = self.stem(x).chunk(2, dim=1)
        y = torch.cat([a, self.branch(b)], 1)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return nn.functional.adaptive_avg_pool2d(y, 1).flatten(1)  # per channel: the order shows


def test_channel_shuffle_becomes_concat_and_a_permutation_convolution():
    """coremltools fuses the shuffle into an interleaved concatND (spec 5); spec 3 gets concat + 1x1 conv."""
    from toolchain.export.coreml import ops as coreml_ops

    coreml_ops.register()
    torch.manual_seed(0)
    spec, x, ref = _nn_spec(_ShuffleUnit(), ios=14)
    kinds = [layer.WhichOneof("layer") for layer in spec.neuralNetwork.layers]
    assert "concatND" in kinds and any(layer.concatND.interleave for layer in spec.neuralNetwork.layers
                                       if layer.WhichOneof("layer") == "concatND")
    info = lower_to_spec3(spec, feature_dim=8)
    assert info["rewritten"]["concatND"] == 1
    check_spec3(spec)
    out = run_neuralnetwork(spec, {"pixels": x[0]})["features"]
    np.testing.assert_allclose(out.reshape(ref.shape), ref, rtol=1e-5, atol=1e-5)
