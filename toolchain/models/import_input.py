"""The input spec of an imported model (issue 24): never a silent guess, and a stem that must match the file.

Why apart from :mod:`toolchain.models.importer`: the same two rules serve every kind of file (weights, ONNX,
programs), and they are the part of an import a user must be told about: where mean/std came from (the card,
``--mean/--std``, or ImageNet's assumed, with a one-line warning recorded in ``provenance.import.preprocessing``),
and which ``--channels`` a checkpoint's first convolution needs (``--strict false`` would drop that trained layer).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from toolchain.errors import ImportModelError
from toolchain.models.arch import input_channels_module
from toolchain.models.cards import Card


def import_input_spec(req: Any, card: Card | None, file_channels: int | None = None) -> tuple[dict, dict]:
    """(the bundle's input spec, its provenance record). Never a silent guess: when neither the card nor the
    options give mean and std, ImageNet's are used and the record carries a one-line warning saying so."""
    from toolchain.errors import BundleError
    from toolchain.models.bundle import input_spec

    opts = dict(req.pixels)
    if file_channels is not None:
        if opts.get("channels", file_channels) != file_channels:
            raise ImportModelError(f"{req.source.name} takes {file_channels} input channel(s), not "
                                   f"--channels {opts['channels']}")
        opts["channels"] = file_channels
    try:
        spec = input_spec(card, **opts)
    except BundleError as e:
        raise ImportModelError(str(e)) from None
    given = "mean" in opts and "std" in opts
    declared = card is not None and card.input_declared
    source = "--mean/--std" if given else (f"card {card.name}" if declared else "ImageNet default (assumed)")
    record: dict[str, Any] = {"mean": list(spec["mean"]), "std": list(spec["std"]), "color": spec["color"],
                              "scale": spec["scale"], "channels": spec["channels"], "from": source, "warning": None}
    if not given and not declared:
        record["warning"] = (f"{req.source.name}: no preprocessing given, assumed ImageNet's mean {list(spec['mean'])} "
                             f"std {list(spec['std'])} ({spec['color']}, pixels / {spec['scale']:g}); if it was trained "
                             "otherwise, re-import with --mean/--std (e.g. --mean 0.5 --std 0.5)")
    return spec, record


def check_stem(full: nn.Module, tensors: dict[str, torch.Tensor], channels: int, req: Any) -> None:
    """A checkpoint whose first convolution reads another number of channels than the architecture: say which
    ``--channels`` to pass (``--strict false`` would drop the trained first layer and keep a random one)."""
    found = input_channels_module(full)
    w = tensors.get(f"{found[0]}.weight") if found else None
    if w is None or w.ndim != 4 or int(w.shape[1]) == channels or int(w.shape[1]) not in (1, 3):
        return
    raise ImportModelError(f"{req.source.name}: the first convolution {found[0]} reads {int(w.shape[1])} channel(s) "
                           f"(weight {list(w.shape)}), the architecture {channels}: pass --channels {int(w.shape[1])}")
