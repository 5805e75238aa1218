"""The numpy Core ML executor, op by op, against PyTorch (NeuralNetwork and ML Program paths)."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
import torch
from torch import nn

from tests.runtimes._coreml import run_coreml
from toolchain.errors import RuntimeUnavailable
from toolchain.runtimes.coreml import kernels, loader, mlprogram


torch.set_num_threads(1)
SIZE = 12


@pytest.mark.parametrize("groups,stride,padding,dilation,bias", [
    (1, 1, 0, 1, True), (1, 2, 1, 1, False), (1, 1, 2, 2, True), (2, 1, 1, 1, True), (4, 2, 1, 1, True),
    (1, (2, 1), (0, 1), (1, 2), True),
])
def test_conv2d_kernel_matches_torch(groups, stride, padding, dilation, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 9, 8, generator=g)
    w = torch.randn(8, 4 // groups, 3, 3, generator=g)
    b = torch.randn(8, generator=g) if bias else None
    ref = nn.functional.conv2d(x, w, b, stride, padding, dilation, groups).numpy()
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    ph, pw = pair(padding)
    got = kernels.conv2d(x.numpy(), w.numpy(), None if b is None else b.numpy(), pair(stride), (ph, ph, pw, pw),
                            pair(dilation), groups)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind,ceil,exclude", [("max", False, True), ("max", True, True), ("avg", False, True),
                                               ("avg", False, False), ("avg", True, True)])
def test_pool2d_kernel_matches_torch(kind, ceil, exclude):
    x = torch.randn(1, 3, 7, 7, generator=torch.Generator().manual_seed(1))
    if kind == "max":
        ref = nn.functional.max_pool2d(x, 3, 2, 1, ceil_mode=ceil)
    else:
        ref = nn.functional.avg_pool2d(x, 3, 2, 1, ceil_mode=ceil, count_include_pad=not exclude)
    got = kernels.pool2d(x.numpy(), kind, (3, 3), (2, 2), (1, 1, 1, 1), exclude_padding=exclude, ceil_mode=ceil)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-6, atol=1e-6)


def test_include_last_pixel_is_ceil_mode():
    """NeuralNetwork includeLastPixel padding = PyTorch ceil_mode, for odd and even sizes, with padding."""
    for n, k, s, p in [(7, 3, 2, 0), (6, 3, 2, 0), (8, 3, 2, 1), (5, 2, 2, 0)]:
        x = torch.randn(1, 2, n, n, generator=torch.Generator().manual_seed(n))
        ref = nn.functional.max_pool2d(x, k, s, p, ceil_mode=True)
        pads = kernels.include_last_pixel_pads((n, n), (k, k), (s, s), (p, p))
        got = kernels.pool2d(x.numpy(), "max", (k, k), (s, s), pads)
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-6)
        for include_pad in (True, False):  # the ceil cells never count; the padding counts when asked
            ref = nn.functional.avg_pool2d(x, k, s, p, ceil_mode=True, count_include_pad=include_pad)
            got = kernels.pool2d(x.numpy(), "avg", (k, k), (s, s), (p, p, p, p), exclude_padding=not include_pad,
                                    ceil_mode=True)
            np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-6)
    assert kernels.concat([np.array([1, 2]), np.array([3, 4])], 0, interleave=True).tolist() == [1, 3, 2, 4]


def test_same_padding_and_bit_unpacking_worked_examples():
    assert kernels.same_padding((4, 4), (3, 3), (2, 2)) == (0, 1, 0, 1)
    assert kernels.same_padding((4, 4), (3, 3), (2, 2), top_left_heavy=True) == (1, 0, 1, 0)
    assert mlprogram.unpack_bits(np.array([0b00100001, 0b11110000], np.uint8), 4, 4).tolist() == [1, 2, 0, 15]


class _Net(nn.Module):
    def __init__(self, body: nn.Module, channels: int = 3) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _Lambda(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _conv_bn() -> nn.Module:
    m = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6))
    with torch.no_grad():  # non-trivial statistics, so BN folding into the conv is exercised
        m[1].running_mean.uniform_(-1, 1)
        m[1].running_var.uniform_(0.5, 2)
        m[1].weight.uniform_(0.5, 1.5)
        m[1].bias.uniform_(-1, 1)
    return m


class _SE(nn.Module):
    """Squeeze-excitation as in MobileNetV3: mean -> 1x1 convs -> hardsigmoid -> broadcast multiply."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 3, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(s))))


class _Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=1)


OPS = {
    "conv_groups_stride_pad_dil": lambda: nn.Conv2d(3, 6, 3, stride=2, padding=2, dilation=2, groups=3),
    "conv_bn_fused": _conv_bn,
    "depthwise_conv": lambda: nn.Conv2d(3, 3, 3, padding=1, groups=3),
    "relu": lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()),
    "relu6_clip": lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU6()),
    "hardswish": lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.Hardswish()),
    "hardsigmoid": lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.Hardsigmoid()),
    "residual_add": lambda: _Lambda(lambda x: x + torch.relu(x)),
    "max_pool": lambda: nn.MaxPool2d(3, 2, 1),
    "avg_pool": lambda: nn.AvgPool2d(2, 2),
    "reduce_mean_flatten": lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
    "flatten_linear": lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5)),
    "mul_add_consts": lambda: _Lambda(lambda x: x * torch.tensor([0.5, 2.0, -1.0]).view(1, 3, 1, 1) + 0.25),
    "squeeze_excite": _SE,
    "concat": _Concat,
    # what the torchvision/timm zoo adds (benchmarks/architectures.py):
    "max_pool_ceil": lambda: nn.MaxPool2d(3, 2, ceil_mode=True),  # SqueezeNet: NN includeLastPixel padding
    "avg_pool_ceil_pad": lambda: nn.AvgPool2d(3, 2, padding=1, ceil_mode=True),
    "sigmoid": lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sigmoid()),
    "silu": lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.SiLU()),
    "channel_shuffle": lambda: _Shuffle(),  # ShuffleNet: coremltools fuses it into an interleaved concat
    "spatial_mean": lambda: _Lambda(lambda x: x.mean((2, 3))),  # MNASNet's head: reduce_mean / reduceMean
}


class _Shuffle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], 1)
        n, c, h, w = y.shape
        return y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


#: ops whose NeuralNetwork form needs iOS 14 (spec 5): the interleaved concatND
NN_IOS14 = {"channel_shuffle"}


class _LayerNorm2d(nn.Module):
    """ConvNeXt's channels-last LayerNorm: permute, layer_norm over C, permute back."""

    def __init__(self) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(3)
        with torch.no_grad():
            self.ln.weight.uniform_(0.5, 1.5)
            self.ln.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


#: ML Program only (their NeuralNetwork layers are spec 4+ kinds the executor leaves to UnknownOpError)
MIL_OPS_ONLY = {
    "chunk_split": lambda: _Lambda(lambda x: torch.cat(list(reversed(x.chunk(3, dim=1))), 1)),
    "gelu": lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.GELU()),
    "gelu_tanh": lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.GELU(approximate="tanh")),
    "layer_norm_channels_last": _LayerNorm2d,
    "softmax": lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.Softmax(dim=1)),
    # Swin and ViT: strided / negative / selecting slices, unsqueeze, the shifted window's roll
    "slice_select_unsqueeze": lambda: _Lambda(
        lambda x: torch.cat([x[:, 1:, ::2, -5:], x[:, 0, ::2, -5:].unsqueeze(1)], 1)),
    "roll": lambda: _Lambda(lambda x: torch.roll(x, shifts=(-3, 2), dims=(2, 3))),
    "slice_assign_scatter": lambda: _SliceAssign(),  # Swin's attention mask: index_put -> MIL scatter
    # Swin's mask: masked_fill(mask != 0, -100).masked_fill(mask == 0, 0) -> not_equal / equal / select
    "masked_fill_select": lambda: _Lambda(
        lambda x: x.masked_fill(x.relu() != 0, -100.0).masked_fill(x.relu() == 0, 0.5) + x),
}


class _SliceAssign(nn.Module):
    def forward(self, x):
        y = x * 2
        y[:, 1] = x[:, 2] + 1
        return y


class _Attention(nn.Module):
    """ViT's encoder attention over the pixels as tokens (``need_weights=False``, as torchvision calls it)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj, self.mha = nn.Conv2d(3, 8, 1), nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        t = self.proj(x).flatten(2).transpose(1, 2)
        return self.mha(t, t, t, need_weights=False)[0]


@pytest.mark.parametrize("ios", [15, 18])  # iOS 18 converts it to one scaled_dot_product_attention op
def test_executor_matches_torch_attention(ios, tmp_path):
    """What the Core ML exporter traces: the fast path off (its fused op has no coremltools converter)."""
    from toolchain.export.coreml import ops as coreml_ops
    from toolchain.export.coreml.exporter import mha_fastpath_off

    coreml_ops.register()  # the head split traces aten::Int
    torch.manual_seed(0)
    with mha_fastpath_off():
        path, x, ref = _convert(_Attention(), "mlprogram", tmp_path, ml_ios=ios)
    assert torch.backends.mha.get_fastpath_enabled()  # restored
    ops = {op.op_type for op in loader.load_mlpackage_program(path)[1].functions["main"].operations}
    assert ("scaled_dot_product_attention" in ops) == (ios >= 18)
    got = run_coreml(path, {"x": x})[0]["y"]
    np.testing.assert_allclose(got.reshape(ref.shape), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("op", sorted(MIL_OPS_ONLY))
def test_executor_matches_torch_ml_program_ops(op, tmp_path):
    from toolchain.export.coreml import ops as coreml_ops

    coreml_ops.register()  # index_put traces aten::Int
    torch.manual_seed(0)
    path, x, ref = _convert(MIL_OPS_ONLY[op](), "mlprogram", tmp_path)
    got = run_coreml(path, {"x": x})[0]["y"]
    np.testing.assert_allclose(got.reshape(ref.shape), ref, rtol=1e-4, atol=1e-4)


def _convert(module: nn.Module, fmt: str, path, nn_ios: int = 13, ml_ios: int = 15):
    module = _Net(module).eval()
    x = torch.rand(1, 3, SIZE, SIZE) * 4 - 2
    with torch.no_grad():
        ref = module(x).numpy()
        traced = torch.jit.trace(module, x)
    kwargs = {"compute_precision": ct.precision.FLOAT32} if fmt == "mlprogram" else {}
    model = ct.convert(traced, convert_to=fmt, inputs=[ct.TensorType(name="x", shape=x.shape)],
                       outputs=[ct.TensorType(name="y")],
                       minimum_deployment_target=getattr(ct.target, f"iOS{ml_ios if fmt == 'mlprogram' else nn_ios}"),
                       **kwargs)
    out = path / ("m.mlpackage" if fmt == "mlprogram" else "m.mlmodel")
    model.save(str(out))
    return out, x.numpy(), ref


@pytest.mark.parametrize("fmt", ["neuralnetwork", "mlprogram"])
@pytest.mark.parametrize("op", sorted(OPS))
def test_executor_matches_torch_op_by_op(op, fmt, tmp_path):
    from toolchain.export.coreml import ops as coreml_ops

    coreml_ops.register()  # the channel shuffle traces aten::Int
    torch.manual_seed(0)
    path, x, ref = _convert(OPS[op](), fmt, tmp_path, 14 if op in NN_IOS14 else 13)
    outs, runtime = run_coreml(path, {"x": x})
    got = outs["y"]
    assert ("ML Program" in runtime) == (fmt == "mlprogram")
    assert got.size == ref.size
    np.testing.assert_allclose(got.reshape(ref.shape), ref, rtol=1e-4, atol=1e-4)


def test_fp16_program_is_rounded_like_the_device(tmp_path):
    """An fp16 program's output differs from fp32 maths by about fp16 resolution, never exactly 0 or hugely."""
    module = _Net(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))).eval()
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        ref = module(x).numpy()
    model = ct.convert(torch.jit.trace(module, x), convert_to="mlprogram", inputs=[ct.TensorType(name="x", shape=x.shape)],
                       outputs=[ct.TensorType(name="y", dtype=np.float32)], minimum_deployment_target=ct.target.iOS15)
    model.save(str(tmp_path / "h.mlpackage"))
    got = run_coreml(tmp_path / "h.mlpackage", {"x": x.numpy()})[0]["y"]
    err = np.abs(got - ref).max()
    assert 0 < err < 5e-3 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("kind,ios", [(k, i) for k in ("sparse", "palettize4", "int8") for i in (16, 18)]
                         + [("sparse-palettize4", 18), ("sparse-palettize4-grouped", 18)])
def test_constexpr_weights_decode_like_coremltools(kind, ios, tmp_path):
    """The executor's own decoding of constexpr_* ops equals coremltools' decompress_weights."""
    import coremltools.optimize.coreml as cto

    torch.manual_seed(0)
    module = _Net(nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1))).eval()
    with torch.no_grad():
        w = module.body[2].weight
        w[w.abs() < w.abs().quantile(0.6)] = 0
    x = torch.rand(1, 3, SIZE, SIZE)
    model = ct.convert(torch.jit.trace(module, x), convert_to="mlprogram", inputs=[ct.TensorType(name="x", shape=x.shape)],
                       outputs=[ct.TensorType(name="y", dtype=np.float32)], compute_precision=ct.precision.FLOAT32,
                       minimum_deployment_target=getattr(ct.target, f"iOS{ios}"))
    prune = cto.OpThresholdPrunerConfig(threshold=1e-12, minimum_sparsity_percentile=0.1)
    if kind.startswith("sparse-palettize4"):  # joint: constexpr_lut_to_sparse, per-tensor or per channel group
        sparse = cto.prune_weights(model, cto.OptimizationConfig(global_config=prune))
        pal = (cto.OpPalettizerConfig(mode="kmeans", nbits=4, granularity="per_grouped_channel", group_size=16)
               if kind.endswith("grouped") else cto.OpPalettizerConfig(mode="kmeans", nbits=4))
        small = cto.palettize_weights(sparse, cto.OptimizationConfig(global_config=pal), joint_compression=True)
    else:
        cfg = {"sparse": prune, "palettize4": cto.OpPalettizerConfig(mode="kmeans", nbits=4),
               "int8": cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")}[kind]
        fn = {"sparse": cto.prune_weights, "palettize4": cto.palettize_weights,
              "int8": cto.linear_quantize_weights}[kind]
        small = fn(model, cto.OptimizationConfig(global_config=cfg))
    small.save(str(tmp_path / "c.mlpackage"))
    cto.decompress_weights(small).save(str(tmp_path / "d.mlpackage"))
    _, prog = loader.load_mlpackage_program(tmp_path / "c.mlpackage")
    ops = {op.op_type for op in prog.functions["main"].operations}
    assert any(o.startswith("constexpr") for o in ops)
    if kind.startswith("sparse-"):
        assert "constexpr_lut_to_sparse" in ops
    got = run_coreml(tmp_path / "c.mlpackage", {"x": x.numpy()})[0]["y"]
    want = run_coreml(tmp_path / "d.mlpackage", {"x": x.numpy()})[0]["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_unknown_op_is_named(tmp_path):
    path, x, _ = _convert(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Softplus()), "mlprogram", tmp_path)
    with pytest.raises(RuntimeUnavailable, match="softplus"):
        run_coreml(path, {"x": x})


def test_unknown_nn_layer_is_named(tmp_path):
    path, x, _ = _convert(nn.Sequential(nn.Conv2d(3, 4, 1), nn.GELU()), "neuralnetwork", tmp_path)
    with pytest.raises(RuntimeUnavailable, match="gelu"):
        run_coreml(path, {"x": x})
