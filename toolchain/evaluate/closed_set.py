"""Closed-set identification accuracy (top-1, top-5) on the held-out images of the training identities.

The papers this toolchain reproduces report it (Latif et al. 2024: 91 %; Hong et al. 2022: every number),
beside verification. The probes come from ``deploy data split --closed-set K``
(:mod:`toolchain.data.closed_set`); training never saw them.

Two ways to score a probe against the C training classes:

* ``head``: the bundle's own classification head, as it was trained (``W f + b``, or ``s cos(theta)`` for a
  margin head; :func:`toolchain.compress.logits.head_of`). Used when the bundle has a head with exactly C
  outputs: the papers' accuracy.
* ``class-mean``: nearest class mean (rank by cosine to the mean of each class's unit-length gallery
  features, the training images of that identity). For anything without such a head: exported artifacts
  (the head does not ship), a bundle whose head has another number of classes.

Rank of the true class = how many classes score strictly higher (a tie counts for the probe); a probe with a
non-finite score (an all-zero feature) is wrong. top-k = share of probes whose rank is below k (k capped at C).

Worked example: scores of 2 probes over 3 classes [[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]] with true classes
[0, 1]: ranks [0, 1] -> top-1 = 0.5, top-2 = 1.0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from toolchain.data.closed_set import ClosedSet
from toolchain.errors import EvaluationError
from toolchain.evaluate import features as F

TOP_K = (1, 5)


def ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of each row's true class; ``C`` where a row has a non-finite score.

    >>> ranks(np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]]), np.array([0, 1])).tolist()
    [0, 1]
    """
    scores = np.asarray(scores, np.float64)
    true = scores[np.arange(len(labels)), labels]
    r = (scores > true[:, None]).sum(axis=1)
    r[~np.isfinite(scores).all(axis=1)] = scores.shape[1]
    return r


def class_means(features: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Unit-length mean of each class's unit-length features (C, D); a class without images is all zero."""
    f = features.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
    means = np.zeros((classes, f.shape[1]))
    np.add.at(means, labels, np.nan_to_num(f))
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return np.divide(means, norms, out=np.zeros_like(means), where=norms > 0)


def _check_files(paths: list[Path], what: str, data_dir: Path) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise EvaluationError(f"{len(missing)} of {len(paths)} closed-set {what} images are missing under {data_dir}, "
                              f"e.g. {missing[0]}: is --data the folder the closed set was made for?")


def accuracy(model: F.FeatureExtractor, cs: ClosedSet, data_dir: str | Path, batch_size: int = 32,
             progress: F.ProgressFn | None = None) -> dict[str, Any]:
    """The ``closed_set`` block of metrics.json: ``top1``, ``top5``, ``images``, ``method`` (module docstring)."""
    data_dir = Path(data_dir)
    classes = len(cs.classes)
    probe_paths = cs.paths(cs.probes, data_dir)
    _check_files(probe_paths, "probe", data_dir)
    labels = np.array([c for _, c in cs.probes], np.int64)
    feats = F.extract_features(model, probe_paths, batch_size, progress)
    out: dict[str, Any] = {}
    if model.logits is not None and model.num_classes == classes:
        method, scores = "head", model.logits(feats)
    else:
        if model.logits is not None:
            out["note"] = (f"the bundle's head has {model.num_classes} classes, the closed set {classes}: "
                           "scored by nearest class mean instead")
        if not cs.gallery:
            raise EvaluationError("the closed set has no gallery images to build class means from")
        gallery_paths = cs.paths(cs.gallery, data_dir)
        _check_files(gallery_paths, "gallery", data_dir)
        g_labels = np.array([c for _, c in cs.gallery], np.int64)
        means = class_means(F.extract_features(model, gallery_paths, batch_size, progress), g_labels, classes)
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = feats / np.linalg.norm(feats.astype(np.float64), axis=1, keepdims=True)
        method, scores = "class-mean", unit @ means.T
        out["gallery_images"] = len(cs.gallery)
    r = ranks(scores, labels)
    top = {f"top{k}": float(np.mean(r < min(k, classes))) for k in TOP_K}
    return {**top, "images": int(len(labels)), "method": method, "classes": classes,
            "per_identity": cs.per_identity, **out}
