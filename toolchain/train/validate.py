"""Validation during training: the EER of a model on a verification protocol.

Scores are cosine similarities of the model's features over the protocol's pairs; the EER is
``toolchain.evaluate.metrics.equal_error_rate`` (the one EER definition in the toolchain).
"""

from __future__ import annotations

from typing import Any

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from toolchain.data.images import ImageDataset
from toolchain.data.splits import Protocol
from toolchain.errors import DataError
from toolchain.policy import MAX_BAD_FRACTION

log = logging.getLogger(__name__)


@dataclass
class ValSet:
    """A protocol's images, decoded once, and its pairs re-indexed onto the images that could be read."""

    dataset: ImageDataset
    genuine: np.ndarray  # (G, 2) indices into dataset
    impostor: np.ndarray  # (I, 2)

    @classmethod
    def from_protocol(cls, protocol: Protocol, size: Any, mean: Sequence[float], std: Sequence[float],
                      max_bad_fraction: float = MAX_BAD_FRACTION, **options: Any) -> "ValSet":
        """``options``: how images are read (channel order, scale...; :meth:`ImageDataset.options`)."""
        paths = protocol.paths()
        ds = ImageDataset(paths, [-1] * len(paths), size, mean, std, augment="none",
                          max_bad_fraction=max_bad_fraction, **options)
        where = {p: k for k, p in enumerate(ds.paths)}
        new_index = np.array([where.get(p, -1) for p in paths], dtype=np.int64)

        def remap(pairs: np.ndarray) -> np.ndarray:
            m = new_index[pairs] if len(pairs) else pairs.reshape(0, 2)
            return m[(m >= 0).all(axis=1)]

        g, i = remap(protocol.genuine), remap(protocol.impostor)
        if not len(g) or not len(i):
            raise DataError(f"the {protocol.split} protocol has no genuine or no impostor pair left "
                            "after dropping unreadable images")
        return cls(ds, g, i)


@torch.no_grad()
def extract(model: torch.nn.Module, dataset: ImageDataset, device: torch.device, batch_size: int = 64,
            amp: bool = False) -> torch.Tensor:
    """Features (N, D) float32 on ``device`` for every image of ``dataset``, model in eval mode."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        x = torch.stack([dataset[k][0] for k in range(start, min(start + batch_size, len(dataset)))]).to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            out.append(model(x).float())
    model.train(was_training)
    return torch.cat(out)


def pair_scores(features: torch.Tensor, pairs: np.ndarray) -> np.ndarray:
    """Cosine similarity of feature rows ``pairs[:, 0]`` and ``pairs[:, 1]``."""
    unit = F.normalize(features.double(), dim=1)
    idx = torch.as_tensor(pairs, device=features.device)
    return (unit[idx[:, 0]] * unit[idx[:, 1]]).sum(1).cpu().numpy()


def validation_eer(model: torch.nn.Module, val: ValSet, device: torch.device, batch_size: int = 64,
                   amp: bool = False) -> float:
    """EER (0..1) of ``model`` on ``val``'s pairs.

    A model whose scores cannot be ranked (constant or non-finite features: a diverged run, or a network pruned
    until a whole layer is zero) scores 0.5, chance, with a warning: one bad epoch must not end the training,
    and best-model selection then passes over it.
    """
    from toolchain.errors import MetricsError
    from toolchain.evaluate.metrics import equal_error_rate

    feats = extract(model, val.dataset, device, batch_size, amp)
    try:
        return float(equal_error_rate(pair_scores(feats, val.genuine), pair_scores(feats, val.impostor))[0])
    except MetricsError as e:
        log.warning("validation EER counted as 50%% (chance): %s", e)
        return 0.5
