"""Feature heads: where a classification network's deep feature comes from.

A head is a small dict stored as ``architecture.head`` in ``model.json``:

* ``{"kind": "drop", "module": "fc"}`` — the classifier module becomes ``Identity``: the feature is what
  entered it (ResNet's 2048-d pooled map; MobileNetV3's 1024-d vector after the first classifier layer).
* ``{"kind": "pool", "module": "classifier"}`` — for networks without a Linear classifier (SqueezeNet's
  1x1-conv classifier): the module becomes a global average pool, so the feature is the global-pooled
  last feature map.
* ``{"kind": "none"}`` — the network's output is the feature (e.g. a final Linear that is an embedding).
* ``{"kind": "layer", "module": "layer3"}`` — ``--feature-layer``: the graph is cut (torch.fx) after that
  module and its output is global-average-pooled when it is a map (N, C, H, W) -> (N, C), token-averaged
  when it is a sequence (N, L, C) -> (N, C).

Bundles written before heads existed have no ``head``: :func:`default_head` gives what they used (the
final Linear dropped), so they rebuild unchanged.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from toolchain.errors import CardError
from toolchain.registry import Registry

Head = dict[str, Any]


class GlobalAvgPool(nn.Module):
    """(N, C, H, W) -> (N, C) mean over the map; (N, L, C) -> (N, C) mean over tokens; (N, C) unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # adaptive pool + flatten, not mean(): converters map it to a global pooling layer
            return nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        if x.dim() == 3:
            return x.mean(dim=1)
        return x.flatten(1)


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """:class:`GlobalAvgPool` as a function (what the ``layer`` cut appends to the graph)."""
    return GlobalAvgPool()(x)


def find_module(net: nn.Module, name: str, what: str) -> nn.Module:
    if not name or not name.strip():  # get_submodule("") is the whole network: never what was meant
        raise CardError(f"{what} is empty; name a module, e.g. one of {', '.join(n for n, _ in net.named_children())}")
    try:
        return net.get_submodule(name)
    except AttributeError:
        raise CardError(f"{what} {name!r} is not a module of {type(net).__name__}; "
                        f"its top-level modules are {', '.join(n for n, _ in net.named_children())}") from None


def replace_module(net: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` at the dotted path ``name`` inside ``net`` (the one module-surgery helper)."""
    parent, _, leaf = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, leaf, module)


def timm_classifier_names(net: nn.Module) -> list[str]:
    """timm records its classifier's module name(s) in ``pretrained_cfg["classifier"]``."""
    cfg = getattr(net, "pretrained_cfg", None) or getattr(net, "default_cfg", None) or {}
    names = cfg.get("classifier")
    names = [names] if isinstance(names, str) else list(names or [])
    return [n for n in names if _has(net, n)]


def _has(net: nn.Module, name: str) -> bool:
    try:
        net.get_submodule(name)
        return True
    except AttributeError:
        return False


def linear_names(net: nn.Module) -> list[str]:
    return [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]


def default_head(net: nn.Module, source: str = "torchvision") -> Head:
    """The head a network gets when nobody says: timm's recorded classifier; else the final ``Linear`` in
    module order; else (no Linear at all) the last top-level module with weights, replaced by a global pool.

    >>> default_head(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(), nn.Linear(4, 2)))
    {'kind': 'drop', 'module': '2'}
    >>> default_head(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1)))
    {'kind': 'pool', 'module': '1'}
    """
    if source == "file":  # the user's own class returns its feature (or several outputs: --output picks one)
        return {"kind": "none"}
    if source == "timm" and (names := timm_classifier_names(net)):
        return {"kind": "drop", "module": names[0], **({"also": names[1:]} if len(names) > 1 else {})}
    if names := linear_names(net):
        return {"kind": "drop", "module": names[-1]}
    children = [n for n, m in net.named_children() if any(True for _ in m.parameters())]
    if not children:
        raise CardError(f"{type(net).__name__} has no module with weights to take features before")
    return {"kind": "pool", "module": children[-1]}


HeadFn = Callable[[nn.Module, Head], None]
#: kind -> in-place surgery on the base network (before widths and removed blocks are applied)
HEADS: Registry[HeadFn] = Registry("feature head kind")


@HEADS.register("drop")
def _drop(net: nn.Module, head: Head) -> None:
    for name in [head["module"], *head.get("also", [])]:
        find_module(net, name, "the classifier")
        replace_module(net, name, nn.Identity())


@HEADS.register("pool")
def _pool(net: nn.Module, head: Head) -> None:
    find_module(net, head["module"], "the classifier")
    replace_module(net, head["module"], GlobalAvgPool())


@HEADS.register("none")
def _none(net: nn.Module, head: Head) -> None:
    return None


@HEADS.register("layer")
def _layer(net: nn.Module, head: Head) -> None:
    find_module(net, head["module"], "--feature-layer")  # the cut itself happens last, in cut()


def apply_head(net: nn.Module, head: Head) -> None:
    HEADS.get(head.get("kind", "drop"))(net, head)


def cut(net: nn.Module, head: Head, source: str = "torchvision") -> nn.Module:
    """For a ``layer`` head, the network truncated after that module (a torch.fx GraphModule whose
    parameter names are the original ones), its output pooled; any other head returns ``net``."""
    if head.get("kind") != "layer":
        return net
    if source == "timm":
        from timm.models import create_feature_extractor
    else:
        from torchvision.models.feature_extraction import create_feature_extractor

    layer = head["module"]
    try:
        gm = create_feature_extractor(net, return_nodes={layer: "features"})
    except Exception as e:  # noqa: BLE001 - fx tracing failures are many and deep
        raise CardError(f"cannot cut {type(net).__name__} after --feature-layer {layer!r} "
                        f"(torch.fx: {type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                        "pick a module whose output is a plain tensor (e.g. a stage such as layer3)") from None
    # torchvision returns a DualGraphModule (one graph for train mode, one for eval): end both with the pool.
    graphs = {id(g): g for g in (getattr(gm, "train_graph", None), getattr(gm, "eval_graph", None), gm.graph) if g}
    for graph in graphs.values():
        out = next(n for n in graph.nodes if n.op == "output")
        if not isinstance(out.args[0], dict):
            continue
        with graph.inserting_before(out):
            pooled = graph.call_function(global_pool, (out.args[0]["features"],))
        out.args = (pooled,)
        graph.lint()
    gm.recompile()
    return gm
