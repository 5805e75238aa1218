"""Architectures: build a feature extractor from an ``architecture`` dict, with no pickles.

An architecture dict (as stored in ``model.json``) is::

    {"source": "torchvision" | "toolchain", "name": "resnet50",
     "layer_shapes": {"layer1.0.conv1": {"in": 32, "out": 32}, ...},   # pruned widths (optional)
     "removed_blocks": ["layer3.5", ...],                                # depth pruning (optional)
     "num_classes": null | int}                                          # training head (optional)

``build_model`` makes the base network, turns its final ``Linear`` into the feature head
(``Identity``), then applies the recorded widths and removed blocks. That is how a
width- or depth-pruned network rebuilds from ``model.json`` + safetensors alone.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from toolchain.errors import CardError
from toolchain.registry import Registry

#: Architectures defined here (source "toolchain"); torchvision's come from torchvision.
LOCAL_ARCHS: Registry[Callable[[], nn.Module]] = Registry("architecture")


class _TinyBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class TinyResNet(nn.Module):
    """Stem conv + max pool, two residual stages, global average pool, linear 'classifier'."""

    def __init__(self, widths: tuple[int, int] = (16, 64), num_classes: int = 10) -> None:
        super().__init__()
        c1, c2 = widths
        self.conv1 = nn.Conv2d(3, c1, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(_TinyBlock(c1))
        self.down = nn.Sequential(nn.Conv2d(c1, c2, 1, stride=2, bias=False), nn.BatchNorm2d(c2), nn.ReLU(inplace=True))
        self.layer2 = nn.Sequential(_TinyBlock(c2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.down(self.layer1(x)))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


LOCAL_ARCHS.add("tiny_resnet", TinyResNet)


def _mobilenet_v1(**kwargs: Any) -> nn.Module:
    from toolchain.models.mobilenet_v1 import MobileNetV1

    return MobileNetV1(**kwargs)


LOCAL_ARCHS.add("mobilenet_v1", _mobilenet_v1)


#: source -> build(name, kwargs): the network with its classifier, random weights, never downloading.
ARCH_SOURCES: Registry[Callable[[str, dict[str, Any]], nn.Module]] = Registry("architecture source")


@ARCH_SOURCES.register("toolchain")
def _toolchain_network(name: str, kwargs: dict[str, Any]) -> nn.Module:
    return LOCAL_ARCHS.get(name)(**kwargs)


@ARCH_SOURCES.register("torchvision")
def _torchvision_network(name: str, kwargs: dict[str, Any]) -> nn.Module:
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise CardError(
            f"unknown torchvision classification architecture {name!r}; "
            "see torchvision.models.list_models(module=torchvision.models)"
        )
    import warnings

    with warnings.catch_warnings():  # GoogLeNet/Inception warn that their default init will change
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torchvision.models.get_model(name, weights=None, **kwargs)


@ARCH_SOURCES.register("timm")
def _timm_network(name: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise CardError(f"timm:{name} needs the timm package: pip install 'toolchain[timm]'") from None
    if not timm.is_model(name):
        raise CardError(f"unknown timm architecture {name!r}; see timm.list_models()")
    return timm.create_model(name, pretrained=False, **kwargs)


@ARCH_SOURCES.register("file")
def _file_network(name: str, kwargs: dict[str, Any], code: dict[str, Any] | None = None) -> nn.Module:
    """The user's own class from ``--arch path/to/file.py:Name`` (:mod:`toolchain.models.user_code`)."""
    from toolchain.models import user_code

    return user_code.build(name, kwargs, code)


#: Constructor arguments new bundles use: GoogLeNet and Inception v3 train auxiliary classifiers that no
#: deployed trunk runs; an imported checkpoint's auxiliary weights are dropped (and listed) instead.
DEFAULT_KWARGS: dict[tuple[str, str], dict[str, Any]] = {
    ("torchvision", "googlenet"): {"aux_logits": False},
    ("torchvision", "inception_v3"): {"aux_logits": False},
}


def default_kwargs(source: str, name: str) -> dict[str, Any]:
    return dict(DEFAULT_KWARGS.get((source, name), {}))


def base_network(source: str, name: str, kwargs: dict[str, Any] | None = None,
                 code: dict[str, Any] | None = None) -> nn.Module:
    """The architecture with its classifier, as its library builds it (random weights). ``code``: the user's
    file an architecture of source ``file`` comes from (``architecture.code`` in model.json)."""
    if source not in ARCH_SOURCES:
        from toolchain.models import graph

        if source in graph.GRAPH_SOURCES:
            raise CardError(f"a {source} bundle is a fixed graph: it has no architecture to rebuild")
        raise CardError(f"unknown architecture source {source!r}; known: {', '.join(ARCH_SOURCES.names())}")
    build = ARCH_SOURCES.get(source)
    if code is not None:
        import functools

        build = functools.partial(build, code=code)
    _check_size(build, source, name, dict(kwargs or {}))
    return build(name, dict(kwargs or {}))


def _check_size(build: Any, source: str, name: str, kwargs: dict[str, Any]) -> None:
    """Build on the ``meta`` device first (no memory, no init work) and refuse a network above
    :data:`~toolchain.bounds.MAX_PARAMETERS`, or one its constructor rejects, before any real allocation:
    a card's ``widths = [100000, 100000]`` is a 10^10-parameter net that would otherwise take the machine."""
    from toolchain.bounds import MAX_PARAMETERS

    try:
        with torch.device("meta"):
            net = build(name, dict(kwargs))
    except (TypeError, ValueError) as e:
        raise CardError(f"{source}:{name} cannot be built with kwargs {kwargs!r}: {str(e)[:200]}") from None
    except (RuntimeError, NotImplementedError):  # a constructor that computes on its tensors: no estimate
        return
    n = sum(p.numel() for p in net.parameters())
    if n > MAX_PARAMETERS:
        raise CardError(f"{source}:{name} with kwargs {kwargs!r} has {n:,} parameters ({n * 4 / 2 ** 30:,.1f} GiB "
                        f"in fp32); allowed: at most {MAX_PARAMETERS:,}")


def _get(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path) if path else root


def _resized(module: nn.Module, c_in: int, c_out: int) -> nn.Module:
    """A fresh module like ``module`` with new channel counts (weights are loaded later)."""
    if isinstance(module, nn.Conv2d):
        depthwise = module.groups == module.in_channels and module.groups > 1
        groups = c_in if depthwise else module.groups
        return nn.Conv2d(c_in, c_out, module.kernel_size, module.stride, module.padding, module.dilation,
                         groups, module.bias is not None, module.padding_mode)
    if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):  # BatchNorm1d: an embedding's final norm (iresnet)
        return type(module)(c_out, module.eps, module.momentum, module.affine, module.track_running_stats)
    if isinstance(module, nn.PReLU):  # per-channel slopes (iresnet); a single shared slope has no width
        return nn.PReLU(c_out)
    if isinstance(module, nn.Linear):
        return nn.Linear(c_in, c_out, module.bias is not None)
    raise CardError(f"cannot resize a {type(module).__name__}; only Conv2d, BatchNorm1d/2d, PReLU and Linear carry widths")


def layer_shapes(model: nn.Module) -> dict[str, dict[str, int]]:
    """Channel counts of every Conv2d / BatchNorm2d / Linear: the widths that rebuild a network."""
    out: dict[str, dict[str, int]] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            out[name] = {"in": m.in_channels, "out": m.out_channels}
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            out[name] = {"in": m.num_features, "out": m.num_features}
        elif isinstance(m, nn.PReLU) and m.num_parameters > 1:
            out[name] = {"in": m.num_parameters, "out": m.num_parameters}
        elif isinstance(m, nn.Linear):
            out[name] = {"in": m.in_features, "out": m.out_features}
    return out


def changed_shapes(base: dict[str, dict[str, int]], now: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Entries of ``now`` that differ from ``base``: what model.json records for a pruned network."""
    return {k: v for k, v in now.items() if base.get(k) != v}


class FeatureModel(nn.Module):
    """A trunk that maps an image batch (N, 3, H, W, normalised) to deep features (N, D).

    ``head`` is an optional classification layer used only for training (subject
    classification); exports and evaluation use ``forward``, which returns features.
    """

    def __init__(self, trunk: nn.Module, num_classes: int | None = None, feature_dim: int | None = None) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(feature_dim, num_classes) if num_classes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            raise RuntimeError("this model has no classification head")
        return self.head(self.trunk(x))


def build_trunk(arch: dict[str, Any]) -> nn.Module:
    """Base network, feature head (``arch["head"]``, default: final Linear -> Identity), recorded widths,
    removed blocks, then (``head.kind == "layer"``) the cut at the feature layer."""
    from toolchain.models import feature_head

    net = base_network(arch.get("source", "torchvision"), arch["name"], arch.get("kwargs"), arch.get("code"))
    if arch.get("output") is not None and (arch.get("head") or {}).get("kind") != "layer":
        # --output: a network returning several tensors, reduced to one (a --feature-layer cut ends before them)
        from toolchain.models.user_code import select_output

        select_output(net, arch["output"])
    head = arch.get("head") or feature_head.default_head(net, arch.get("source", "torchvision"))
    feature_head.apply_head(net, head)
    for name, shape in (arch.get("layer_shapes") or {}).items():
        try:
            old = _get(net, name)
        except AttributeError:
            raise CardError(f"model.json names layer {name!r}, which {arch['name']} does not have") from None
        feature_head.replace_module(net, name, _resized(old, int(shape["in"]), int(shape["out"])))
    for name in arch.get("removed_blocks") or []:
        try:
            _get(net, name)
        except AttributeError:
            raise CardError(f"model.json removes block {name!r}, which {arch['name']} does not have") from None
        feature_head.replace_module(net, name, nn.Identity())
    return feature_head.cut(net, head, arch.get("source", "torchvision"))


def build_model(arch: dict[str, Any], feature_dim: int | None = None) -> FeatureModel:
    trunk = build_trunk(arch)
    num_classes = arch.get("num_classes")
    if num_classes and feature_dim is None:
        raise CardError("a classification head needs the feature dimension")
    return FeatureModel(trunk, num_classes, feature_dim)


def load_state(model: nn.Module, state: dict[str, torch.Tensor], strict: bool = True) -> Any:
    """``model.load_state_dict(state)`` for a plain dict of tensors (safetensors has no ``_metadata``).

    Some modules read a version from the state dict's metadata (torchvision's MNASNet refuses
    ``version=None``); the freshly built model's own metadata is the right one for its layout.
    """
    from collections import OrderedDict

    full = OrderedDict(state)
    full._metadata = getattr(model.state_dict(), "_metadata", None)  # type: ignore[attr-defined]
    return model.load_state_dict(full, strict=strict)


def input_channels_module(net: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """(name, module) of the convolution that reads the image: the first ``Conv2d`` in module order (the stem of
    every torchvision/timm CNN and of the local ones), or None when the network has none."""
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    return None


def set_input_channels(net: nn.Module, channels: int) -> None:
    """Make ``net`` read ``channels`` input channels by re-creating its stem convolution.

    Why not a separate layer: the stem's ``in`` width is recorded like any pruned width (``layer_shapes``), so a
    1-channel network rebuilds from ``model.json`` alone and pruning keeps it. Trained RGB filters are summed
    over the colour axis (what a gray image replicated to RGB would have met); random ones are re-drawn.
    """
    from toolchain.models import feature_head

    found = input_channels_module(net)
    if found is None or found[1].in_channels == channels:
        return
    name, conv = found
    if conv.groups != 1:
        raise CardError(f"the stem {name} is a grouped convolution; it cannot be given {channels} input channel(s)")
    new = _resized(conv, channels, conv.out_channels)
    if channels == 1 and conv.in_channels == 3:
        with torch.no_grad():
            new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
    feature_head.replace_module(net, name, new)


@torch.no_grad()
def probe_feature_dim(model: nn.Module, input_size: Any) -> int:
    """The feature dimension: one zero image of ``input_size`` (an int, (H, W) or (C, H, W)) through ``model``."""
    from toolchain.inputspec import chw

    was_training = model.training
    model.eval()
    # Values per sample: D for a vector, C*H*W for a map picked with --output (compared as a map, never pooled).
    dim = int(model(torch.zeros(1, *chw(input_size)))[0].numel())
    model.train(was_training)
    return dim


def smooth_noise(n: int, size: Any, generator: torch.Generator) -> torch.Tensor:
    """Normalised-space noise (N, C, H, W) blurred by 2x bilinear up-sampling: random but image-like, so
    BatchNorm statistics and the importer's feature check see inputs that are not constant.
    ``size``: an int (square RGB), (H, W) or (C, H, W)."""
    from toolchain.inputspec import chw

    c, h, w = chw(size)
    x = torch.randn(n, c, max(h // 2, 1), max(w // 2, 1), generator=generator)
    return nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, input_size: Any, seed: int = 0, batches: int = 4, batch_size: int = 8) -> None:
    """Re-estimate BatchNorm running statistics on seeded smooth random images.

    A randomly initialised torchvision network in eval mode can output features around
    1e-8 (MobileNetV2): fp16 underflows and parity numbers mean nothing. With statistics
    from real forward passes every BN output has unit scale and features are of order 1.
    Inputs are normalised-space noise blurred by 2x up-sampling, so they are not constant.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    g = torch.Generator().manual_seed(seed)
    saved = [(m.momentum,) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    was_training = model.training
    model.train()
    for _ in range(batches):
        model(smooth_noise(batch_size, input_size, g))
    for m, (mom,) in zip(bns, saved):
        m.momentum = mom
    model.train(was_training)
