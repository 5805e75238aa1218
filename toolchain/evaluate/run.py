"""``deploy evaluate``: score a protocol's pairs with one model, or overlay several models.

One evaluation writes into its output folder::

    scores.npz        genuine and impostor cosine similarities (numpy arrays, no pickles)
    roc.png det.png scores_hist.png
    metrics.json      written last: its presence means the evaluation is complete

``metrics.json`` holds ``model`` (kind, name, sha256, runtime, format, precision), ``data``
(folder, protocol and its sha256, image and pair counts, and ``verification_protocol``: the rules the
protocol file records — all-pairs or cross-session, its sessions, other-eye handling, a one-line
``label``, where from), ``metrics`` (see
:func:`toolchain.evaluate.metrics.compute_metrics`), ``timing`` and ``files``; and ``closed_set``
(``top1``, ``top5``, ``images``, ``method`` ``head``|``class-mean``; :mod:`toolchain.evaluate.closed_set`)
when the protocol's folder has a ``closed-set.json`` (``deploy data split --closed-set K``) or one is given.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from toolchain import __version__
from toolchain.errors import EvaluationError
from toolchain.evaluate import features as F
from toolchain.evaluate import plots
from toolchain.evaluate.metrics import DEFAULT_FARS, compute_metrics
from toolchain.fsutil import atomic_write_json, claim_output_dir, sha256_file

log = logging.getLogger(__name__)

EVAL_FORMAT = "toolchain.evaluation"
EVAL_VERSION = 1
METRICS_FILE = "metrics.json"
SCORES_FILE = "scores.npz"
FILES = {"scores": SCORES_FILE, "roc": "roc.png", "det": "det.png", "histogram": "scores_hist.png"}


@dataclass
class Pairs:
    """Verification pairs resolved to image files: ``images[index_a[k]]`` vs ``images[index_b[k]]``."""

    images: list[Path]
    index_a: np.ndarray
    index_b: np.ndarray
    genuine: np.ndarray  # bool per pair
    #: the rules the protocol file records (``ProtocolRules.to_json()`` plus its split)
    protocol: dict[str, Any] = field(default_factory=dict)


def read_pairs(protocol: str | Path, data_dir: str | Path) -> Pairs:
    """A protocol file's pairs (``toolchain.data.splits.load_protocol``) with image paths under ``data_dir``.

    Only the images some pair uses are listed, each once, so each is decoded and run once.
    """
    from toolchain.data.splits import load_protocol

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise EvaluationError(f"--data {data_dir} is not a folder")
    proto = load_protocol(protocol, root=data_dir)
    if len(proto.genuine) == 0 or len(proto.impostor) == 0:
        raise EvaluationError(f"protocol {protocol} has {len(proto.genuine)} genuine and {len(proto.impostor)} "
                             "impostor pairs; evaluation needs both")
    a = np.concatenate([proto.genuine[:, 0], proto.impostor[:, 0]])
    b = np.concatenate([proto.genuine[:, 1], proto.impostor[:, 1]])
    used, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    paths = proto.paths(data_dir)
    images = [paths[k] for k in used]
    missing = [p for p in images if not p.is_file()]
    if missing:
        raise EvaluationError(f"{len(missing)} of {len(images)} images named by {protocol} are missing under {data_dir}, "
                             f"e.g. {missing[0]}: is --data the folder the protocol was made for?")
    labels = np.r_[np.ones(len(proto.genuine), bool), np.zeros(len(proto.impostor), bool)]
    return Pairs(images, inverse[:len(a)].astype(np.int64), inverse[len(a):].astype(np.int64), labels,
                 {**proto.rules.to_json(), "split": proto.split})


@dataclass
class Evaluation:
    out: Path
    document: dict[str, Any]
    genuine: np.ndarray
    impostor: np.ndarray

    @property
    def metrics(self) -> dict[str, Any]:
        return self.document["metrics"]

    @property
    def label(self) -> str:
        return self.document["model"]["name"]


def evaluate_model(model_path: str | Path, data_dir: str | Path, protocol: str | Path, out: str | Path,
                   batch_size: int = 32, fars: Sequence[float] = DEFAULT_FARS,
                   progress: F.ProgressFn | None = None, plot: bool = True, force: bool = False,
                   allow_parity_failed: bool = False, closed_set: str | Path | None = None,
                   find_closed_set: bool = True) -> Evaluation:
    """Extract features for every image a protocol names, score its pairs, write metrics and plots.

    ``out`` must be new, empty or an earlier evaluation (``force``: any folder). ``allow_parity_failed``:
    evaluate an artifact whose export parity failed (recorded in its warnings). ``closed_set``: a
    ``closed-set.json`` to score top-1/top-5 on; default (``find_closed_set``): the one beside ``protocol``.
    """
    from toolchain.data.closed_set import closed_set_beside, load_closed_set

    out = claim_output_dir(out, "evaluation", force)
    model = F.open_model(model_path, allow_parity_failed=allow_parity_failed)
    pairs = read_pairs(protocol, data_dir)
    if closed_set is None and find_closed_set:
        closed_set = closed_set_beside(protocol)
    cs = load_closed_set(closed_set, data_dir) if closed_set is not None else None
    t0 = time.perf_counter()
    feats = F.extract_features(model, pairs.images, batch_size=batch_size, progress=progress)
    extract_s = time.perf_counter() - t0
    scores = F.cosine_similarity(feats, pairs.index_a, pairs.index_b)
    genuine, impostor = scores[pairs.genuine], scores[~pairs.genuine]
    metrics = compute_metrics(genuine, impostor, fars)
    closed = None
    if cs is not None:
        from toolchain.evaluate.closed_set import accuracy

        closed = {**accuracy(model, cs, data_dir, batch_size, progress), "file": str(closed_set)}
    # Everything is computed; from here on only writes. A stale metrics.json goes first, so an
    # interrupted run never leaves an old metrics.json beside new scores.
    (out / METRICS_FILE).unlink(missing_ok=True)
    F.save_scores(out / SCORES_FILE, genuine, impostor)
    if plot:
        write_plots(out, plots.Scores(model.name, genuine, impostor), metrics["eer_threshold"], fars)
    doc = {
        "format": EVAL_FORMAT,
        "format_version": EVAL_VERSION,
        "model": model.describe(),
        "data": {"dir": str(Path(data_dir)), "protocol": str(Path(protocol)), "protocol_sha256": sha256_file(protocol),
                 "num_images": len(pairs.images), "num_pairs": int(len(pairs.genuine)),
                 "num_genuine": int(genuine.size), "num_impostor": int(impostor.size),
                 "feature_dim": int(feats.shape[1]), "verification_protocol": pairs.protocol},
        "metrics": metrics,
        **({"closed_set": closed} if closed is not None else {}),
        "timing": {"extraction_seconds": round(extract_s, 3), "images_per_second": round(len(pairs.images) / extract_s, 2),
                   "batch_size": batch_size, "note": "image loading included"},
        "files": {k: v for k, v in FILES.items() if plot or k == "scores"},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "toolchain_version": __version__,
    }
    atomic_write_json(out / METRICS_FILE, doc)
    return Evaluation(out, doc, genuine, impostor)


def write_plots(out: Path, scores: plots.Scores, threshold: float, fars: Sequence[float] = DEFAULT_FARS) -> None:
    plots.plot_roc([scores], out / FILES["roc"], fars)
    plots.plot_det([scores], out / FILES["det"])
    plots.plot_histograms(scores, out / FILES["histogram"], threshold)


def load_evaluation(path: str | Path) -> Evaluation:
    """A finished evaluation: its folder, or its metrics.json (scores.npz beside it)."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    doc = F.read_json(folder / METRICS_FILE)
    if doc.get("format") != EVAL_FORMAT:
        raise EvaluationError(f"{folder / METRICS_FILE} is not a `deploy evaluate` result (format != {EVAL_FORMAT!r})")
    scores = folder / doc.get("files", {}).get("scores", SCORES_FILE)
    if not scores.is_file():
        raise EvaluationError(f"{scores} is missing: re-run `deploy evaluate` for {folder}")
    g, i = F.load_scores(scores)
    return Evaluation(folder, doc, g, i)


def _is_evaluation(path: Path) -> bool:
    return (path.is_file() and path.name == METRICS_FILE) or (path.is_dir() and (path / METRICS_FILE).is_file()
                                                                and not (path / "model.json").is_file())


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "model"


@dataclass
class Comparison:
    out: Path
    evaluations: list[Evaluation]
    summary: dict[str, Any] = field(default_factory=dict)


def compare(items: Sequence[str | Path], out: str | Path, data_dir: str | Path | None = None,
            protocol: str | Path | None = None, batch_size: int = 32, fars: Sequence[float] = DEFAULT_FARS,
            progress: Callable[[str], None] | None = None,
            extract_progress: F.ProgressFn | None = None, force: bool = False,
            allow_parity_failed: bool = False) -> Comparison:
    """Overlay several models on one ROC and one DET.

    Each item is a finished evaluation (folder or metrics.json), reused as is, or a bundle /
    artifact folder, evaluated now on ``data_dir`` + ``protocol`` into ``out/<name>/``.
    """
    if len(items) < 2:
        raise EvaluationError("--compare needs at least two models or evaluation folders")
    out = claim_output_dir(out, "comparison", force)
    say = progress or (lambda m: log.info(m))
    evals: list[Evaluation] = []
    used: set[str] = set()
    for item in map(Path, items):
        if _is_evaluation(item):
            say(f"{item}: reusing finished evaluation")
            evals.append(load_evaluation(item))
            continue
        F.model_kind(item)  # a clear error for a folder that is neither, before any work
        if data_dir is None or protocol is None:
            raise EvaluationError(f"{item} is a model, not a finished evaluation: give --data and --protocol to evaluate it")
        name, k = _slug(item.resolve().name), 2
        while name in used:
            name, k = f"{_slug(item.resolve().name)}_{k}", k + 1
        used.add(name)
        sub = out / name
        say(f"{item}: evaluating into {sub}")
        evals.append(evaluate_model(item, data_dir, protocol, sub, batch_size, fars, extract_progress, force=force,
                                    allow_parity_failed=allow_parity_failed))
    labels = _unique_labels(evals)
    curves = [plots.Scores(lab, e.genuine, e.impostor) for lab, e in zip(labels, evals)]
    plots.plot_roc(curves, out / "compare_roc.png", fars)
    plots.plot_det(curves, out / "compare_det.png")
    protocols = {e.document["data"].get("protocol_sha256") for e in evals}
    warnings = []
    if len(protocols) > 1:
        warnings.append("the evaluations used different protocol files: their curves are not directly comparable")
    rules = {protocol_label(e.document) for e in evals}
    if len(rules) > 1:
        warnings.append(f"the evaluations used different verification protocols ({'; '.join(sorted(rules))})")
    rows = [{"label": lab, "folder": str(e.out), "model": e.document["model"], "eer": e.metrics["eer"],
             "protocol": protocol_label(e.document),
             "tar_at_far": e.metrics["tar_at_far"], "auc": e.metrics["auc"], "d_prime": e.metrics["d_prime"],
             "warnings": e.metrics["warnings"]} for lab, e in zip(labels, evals)]
    summary = {"format": "toolchain.evaluation.compare", "format_version": 1, "models": rows, "warnings": warnings,
               "files": {"roc": "compare_roc.png", "det": "compare_det.png"},
               "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(out / "compare.json", summary)
    return Comparison(out, evals, summary)


def protocol_label(document: dict[str, Any]) -> str:
    """The one-line verification protocol of a metrics.json (``unrecorded`` for files written before it was)."""
    vp = (document.get("data") or {}).get("verification_protocol")
    return str(vp.get("label")) if isinstance(vp, dict) and vp.get("label") else "unrecorded"


def _unique_labels(evals: Sequence[Evaluation]) -> list[str]:
    """Model names (an artifact's already names its format and precision), with a counter for repeats."""
    labels: list[str] = []
    for e in evals:
        base = e.label
        lab, k = base, 2
        while lab in labels:
            lab, k = f"{base} #{k}", k + 1
        labels.append(lab)
    return labels
