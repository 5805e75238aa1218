"""Feature extraction from a model bundle or an exported artifact, and cosine scoring of pairs.

Both kinds of model take the same input: raw RGB pixels 0..255 (float32, NCHW) at the model's
own input size. Both run through the runtime layer (``toolchain.runtimes``), the same sessions that check
export parity: a bundle in PyTorch (:class:`toolchain.export.types.DeployModule`, the very module every
artifact was converted from, normalisation included), an artifact folder, opened and checked by
:func:`toolchain.artifact.folder.open_artifact`, on its format's best runtime here (ONNX Runtime, LiteRT, or
the numpy Core ML executor). So the same images give comparable features before and after export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from toolchain.errors import EvaluationError, ManifestError
from toolchain.progress import ProgressFn
from toolchain.registry import Registry

__all__ = ["ProgressFn", "FeatureExtractor", "open_model", "extract_features", "cosine_similarity", "score_pairs",
           "save_scores", "load_scores", "artifact_input_size", "artifact_input_chw", "model_kind", "MODEL_KINDS"]


@dataclass
class FeatureExtractor:
    """Something that maps raw pixels (N, C, H, W) float32 0..255 to features (N, D).

    ``input_size`` is H (the side of a square input); ``input_chw`` the whole (C, H, W); ``color`` and
    ``rgb_to_gray`` say how image files are read for it (:func:`toolchain.data.images.load_image`)."""

    kind: str  # "bundle" or "artifact"
    path: Path
    name: str
    input_size: int
    sha256: str
    info: dict[str, Any] = field(default_factory=dict)  # format, precision, source bundle...
    runtime: str = ""  # what runs it, e.g. "onnxruntime 1.23.2"
    _run: Callable[[np.ndarray], np.ndarray] | None = None  # the runtime session's features()
    #: features (N, D) -> class logits (N, C) through the bundle's classification head (None: no head)
    logits: Callable[[np.ndarray], np.ndarray] | None = None
    num_classes: int = 0
    input_chw: tuple[int, int, int] | None = None  # None: (3, input_size, input_size)
    color: str = "rgb"
    rgb_to_gray: bool = False

    @property
    def chw(self) -> tuple[int, int, int]:
        return self.input_chw or (3, self.input_size, self.input_size)

    def extract(self, pixels_nchw: np.ndarray) -> np.ndarray:
        if pixels_nchw.ndim != 4 or pixels_nchw.shape[1:] != self.chw:
            raise EvaluationError(f"{self.name} takes (N, {', '.join(map(str, self.chw))}) pixels, "
                                  f"got {tuple(pixels_nchw.shape)}")
        assert self._run is not None
        feats = self._run(np.ascontiguousarray(pixels_nchw, dtype=np.float32))
        return np.asarray(feats, dtype=np.float32).reshape(len(pixels_nchw), -1)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "name": self.name, "input_size": self.input_size,
                "input_chw": list(self.chw), "color": self.color,
                "sha256": self.sha256, "runtime": self.runtime, **self.info}


def load_bundle_model(path: Path, allow_parity_failed: bool = False) -> FeatureExtractor:
    """A bundle as a feature model: PyTorch, eval mode, no autograd (``allow_parity_failed`` does not apply)."""
    from toolchain import runtimes
    from toolchain.models.bundle import load_bundle
    from toolchain.artifact.formats import BUNDLE_FORMAT

    b = load_bundle(path)
    _, session = runtimes.open_session(b, BUNDLE_FORMAT)
    head = b.model.head
    return FeatureExtractor("bundle", Path(path), b.name, b.input_size, b.sha256,
                            {"format": BUNDLE_FORMAT, "precision": "fp32", "feature_dim": b.feature_dim},
                            session.description, session.features,
                            _head_logits(b) if head is not None else None,
                            int(head.out_features) if head is not None else 0,
                            input_chw=b.input_chw, color=b.color, rgb_to_gray=b.pixel_options["rgb_to_gray"])


def _head_logits(b: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Inference logits of a bundle's head as it was trained (``W f + b``, or ``s cos`` for a margin head)."""
    import torch

    from toolchain.compress.logits import head_of

    spec = head_of(b.meta)

    def logits(features: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return spec.logits(torch.from_numpy(np.ascontiguousarray(features, np.float32)), b.model.head).numpy()

    return logits


def artifact_input_size(manifest: Any) -> int:
    """The input height from a manifest (see :func:`artifact_input_chw`)."""
    return artifact_input_chw(manifest)[1]


def artifact_input_chw(manifest: Any) -> tuple[int, int, int]:
    """(C, H, W) from a manifest's input shape and layout (NCHW or NHWC, batch optional).

    ``manifest``: a :class:`~toolchain.artifact.manifest.Manifest` or its JSON form.
    """
    inp = manifest.get("input", {}) if isinstance(manifest, dict) else {
        "shape": manifest.input.shape, "layout": manifest.input.layout}
    dims = [d for d in inp.get("shape", []) if isinstance(d, int)]
    layout = inp.get("layout", "nchw")
    if len(dims) < 3:
        raise ManifestError(f"manifest input shape {inp.get('shape')!r} does not give the image size; re-export the artifact")
    c, h, w = (dims[-1], dims[-3], dims[-2]) if layout == "nhwc" else (dims[-3], dims[-2], dims[-1])
    if c not in (1, 3):
        raise ManifestError(f"manifest input shape {inp.get('shape')!r} has {c} channels; an image has 1 or 3")
    return int(c), int(h), int(w)


def load_artifact_model(path: Path, allow_parity_failed: bool = False) -> FeatureExtractor:
    """An exported artifact folder as a feature model: checked (sha256, parity, containment), then opened on
    its format's best runtime here."""
    from toolchain import runtimes
    from toolchain.artifact.folder import open_artifact

    art = open_artifact(path, allow_parity_failed=allow_parity_failed)
    man = art.manifest
    chw = artifact_input_chw(man)
    _, session = runtimes.open_session(art.ref, man.format)
    info: dict[str, Any] = {"format": man.format, "precision": man.precision, "feature_dim": man.output.dim,
                            "source_bundle_sha256": man.source_bundle_sha256}
    if art.warnings:
        info["warnings"] = list(art.warnings)
    color = str(getattr(man.input, "color", None) or ("gray" if chw[0] == 1 else "rgb"))
    return FeatureExtractor("artifact", Path(path), art.name, chw[1], art.sha256, info, session.description,
                            session.features, input_chw=chw, color=color)


@dataclass(frozen=True)
class ModelKind:
    marker: str  # the file that identifies such a folder
    load: Callable[..., FeatureExtractor]  # (folder, allow_parity_failed=False)


#: what ``deploy evaluate MODEL`` accepts
MODEL_KINDS: Registry[ModelKind] = Registry("model kind")
MODEL_KINDS.add("bundle", ModelKind("model.json", load_bundle_model))
MODEL_KINDS.add("artifact", ModelKind("manifest.json", load_artifact_model))


def model_kind(path: str | Path) -> str:
    """``"bundle"`` or ``"artifact"``, from the marker file in the folder."""
    path = Path(path)
    for kind in MODEL_KINDS:
        if (path / MODEL_KINDS.get(kind).marker).is_file():
            return kind
    markers = ", ".join(f"{MODEL_KINDS.get(k).marker} ({k})" for k in MODEL_KINDS)
    raise EvaluationError(f"{path} is neither a model bundle nor an exported artifact folder: expected one of {markers}")


def open_model(path: str | Path, allow_parity_failed: bool = False) -> FeatureExtractor:
    """Load a bundle folder or an artifact folder as a :class:`FeatureExtractor`.

    ``allow_parity_failed``: evaluate an artifact whose export parity failed (with a warning in its info).
    """
    path = Path(path)
    if not path.is_dir():
        raise EvaluationError(f"model {path} is not a folder (give a bundle folder or an exported artifact folder)")
    return MODEL_KINDS.get(model_kind(path)).load(path, allow_parity_failed=allow_parity_failed)


def extract_features(model: FeatureExtractor, paths: Sequence[str | Path], batch_size: int = 32,
                     progress: ProgressFn | None = None) -> np.ndarray:
    """Features (N, D) float32 for image files, loaded ``batch_size`` at a time at the model's input size.

    Images go through ``toolchain.data.images.load_image`` (the one loader: in the model's channel order,
    resized to its H x W), then become raw pixels 0..255 NCHW.
    """
    from toolchain.data.images import load_image

    if batch_size < 1:
        raise EvaluationError(f"batch size must be at least 1, got {batch_size}")
    out: list[np.ndarray] = []
    total = len(paths)
    for start in range(0, total, batch_size):
        chunk = paths[start:start + batch_size]
        pixels = np.stack([load_image(p, model.chw, color=model.color, rgb_to_gray=model.rgb_to_gray)
                           for p in chunk]).transpose(0, 3, 1, 2).astype(np.float32)
        out.append(model.extract(pixels))
        if progress:
            progress("images", min(start + batch_size, total), total, {})
    if not out:
        raise EvaluationError("no images to extract features from")
    return np.concatenate(out)


def cosine_similarity(features: np.ndarray, index_a: np.ndarray, index_b: np.ndarray) -> np.ndarray:
    """Cosine similarity of feature rows ``index_a[k]`` and ``index_b[k]``; NaN where a feature is all zero.

    >>> f = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    >>> cosine_similarity(f, np.array([0, 0]), np.array([1, 2])).round(4).tolist()
    [0.7071, 0.0]
    """
    f = features.astype(np.float64)
    norms = np.linalg.norm(f, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = f / norms[:, None]  # a zero vector becomes NaN, and metrics refuse NaN scores by name
    return np.einsum("ij,ij->i", unit[index_a], unit[index_b])


def score_pairs(features: np.ndarray, genuine_pairs: np.ndarray, impostor_pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) cosine scores for index pairs (P, 2) into ``features`` rows.

    For features already computed in a protocol's image order (e.g. per-epoch validation):
    ``compute_metrics(*score_pairs(f, proto.genuine, proto.impostor))``.

    >>> f = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    >>> g, i = score_pairs(f, np.array([[0, 1]]), np.array([[0, 2], [1, 2]]))
    >>> g.round(3).tolist(), i.round(3).tolist()
    ([0.995], [0.0, 0.1])
    """
    gp, ip = np.asarray(genuine_pairs).reshape(-1, 2), np.asarray(impostor_pairs).reshape(-1, 2)
    return (cosine_similarity(features, gp[:, 0], gp[:, 1]), cosine_similarity(features, ip[:, 0], ip[:, 1]))


def save_scores(path: str | Path, genuine: np.ndarray, impostor: np.ndarray) -> None:
    """Write scores as a numpy ``.npz`` (no pickles) atomically."""
    import io

    from toolchain.fsutil import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, genuine=np.asarray(genuine, np.float64), impostor=np.asarray(impostor, np.float64))
    atomic_write_bytes(path, buf.getvalue())


def load_scores(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``genuine`` and ``impostor`` arrays from a scores ``.npz``; never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["genuine"]), np.asarray(z["impostor"])
    except (OSError, KeyError, ValueError) as e:
        raise EvaluationError(f"{path} is not a scores file with 'genuine' and 'impostor' arrays ({e})") from None


def read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EvaluationError(f"cannot read {path} ({e})") from None
