"""Closed-set identification images: K held-out images of every training identity.

Latif et al. (2024) and Hong et al. (2022) report *accuracy*: the share of held-out images of the
training classes that the network puts in the right class. Every split here is subject-disjoint
(verification), so ``deploy data split --closed-set K`` also sets aside, for every identity of the
train split (subject x eye side: the class training uses), K of its images. Training never sees
them (:func:`training_samples`, read by ``deploy train`` and the prune/distill fine-tunes); ``deploy
evaluate`` classifies them (``toolchain.evaluate.closed_set``).

Which images: the K with the smallest ``sha256(f"{seed}:{relative path}")``, so the choice is
stable under adding images of other identities. An identity with K or fewer images keeps them all
for training (it has no held-out image; counted in ``identities_without_probes``): a class
training never saw cannot be scored.

Worked example: identity ``s1`` with images a, b, c and K = 1 -> the one of a, b, c with the smallest
hash is a probe, the other two train (the gallery for the nearest-class-mean rule).

The file ``closed-set.json`` (beside ``splits.json``, which names it under ``closed_set``) lists
``classes`` (the sorted training identities: class k is the k-th, the order ``deploy train`` gives
its head), ``probes`` and ``gallery`` as ``[relative path, class index]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from toolchain import jsonio
from toolchain.data.layouts import Dataset, Sample
from toolchain.errors import DataError

CLOSED_SET_FILE = "closed-set.json"
CLOSED_SET_FORMAT = "toolchain.closed_set"
FORMAT_VERSION = 1
#: largest closed-set file read (a gallery of ~1M images)
MAX_BYTES = 256 << 20


@dataclass
class ClosedSet:
    """Held-out (probe) and training (gallery) images of the training identities, as class indices."""

    classes: list[str]
    probes: list[tuple[str, int]]  # (path relative to the data root, class index)
    gallery: list[tuple[str, int]]
    per_identity: int
    seed: int = 0
    identities_without_probes: int = 0
    root: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {"format": CLOSED_SET_FORMAT, "format_version": FORMAT_VERSION, "per_identity": self.per_identity,
                "seed": self.seed, "counts": {"classes": len(self.classes), "probes": len(self.probes),
                                              "gallery": len(self.gallery),
                                              "identities_without_probes": self.identities_without_probes},
                "classes": self.classes, "probes": [list(p) for p in self.probes],
                "gallery": [list(g) for g in self.gallery]}

    def paths(self, which: Sequence[tuple[str, int]], root: str | Path | None = None) -> list[Path]:
        base = Path(root) if root is not None else self.root
        if base is None:
            raise DataError("this closed set has no data folder; pass the data folder (--data) to resolve its paths")
        return [Path(p) if Path(p).is_absolute() else base / p for p, _ in which]


def _rank(seed: int, rel: str) -> str:
    return hashlib.sha256(f"{seed}:{rel}".encode()).hexdigest()


def hold_out(dataset: Dataset, train_subjects: Sequence[str], per_identity: int, seed: int = 0) -> ClosedSet:
    """The closed set of ``train_subjects``: ``per_identity`` probes per identity (module docstring).

    >>> from pathlib import Path
    >>> ds = Dataset(Path("/d"), "per-subject", [Sample(Path(f"/d/{s}/{i}.png"), s) for s in "ab" for i in range(3)])
    >>> cs = hold_out(ds, ["a", "b"], 1)
    >>> cs.classes, len(cs.probes), len(cs.gallery), sorted(c for _, c in cs.probes)
    (['a', 'b'], 2, 4, [0, 1])
    """
    if per_identity < 1:
        raise DataError(f"--closed-set must be at least 1 image per identity, got {per_identity}")
    samples = dataset.select(train_subjects)
    by_id: dict[str, list[Sample]] = {}
    for s in samples:
        by_id.setdefault(s.identity, []).append(s)
    classes = sorted(by_id)
    probes, gallery, short = [], [], 0
    for k, ident in enumerate(classes):
        ranked = sorted(by_id[ident], key=lambda s: _rank(seed, dataset.relative(s)))
        if len(ranked) <= per_identity:
            short += 1
            gallery += [(dataset.relative(s), k) for s in ranked]
            continue
        probes += [(dataset.relative(s), k) for s in ranked[:per_identity]]
        gallery += [(dataset.relative(s), k) for s in ranked[per_identity:]]
    if not probes:
        raise DataError(f"no training identity has more than {per_identity} image(s): nothing to hold out for "
                        "closed-set accuracy (lower --closed-set)")
    return ClosedSet(classes, sorted(probes), sorted(gallery), per_identity, seed, short, dataset.root)


def _entries(value: Any, n: int, what: str, path: Path) -> list[tuple[str, int]]:
    if not isinstance(value, list) or not all(isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)
                                              and isinstance(e[1], int) and 0 <= e[1] < n for e in value):
        raise DataError(f"{path}: '{what}' must be a list of [relative path, class index < {n}]")
    return [(str(p), int(c)) for p, c in value]


def load_closed_set(path: str | Path, root: str | Path | None = None) -> ClosedSet:
    """Read a ``closed-set.json``; ``root`` is the data folder its paths are relative to."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"closed-set file {path} does not exist (write one with `deploy data split --closed-set K`)")
    d = jsonio.read(path, max_bytes=MAX_BYTES, error=DataError, what="closed-set file")
    if not isinstance(d, dict) or d.get("format") != CLOSED_SET_FORMAT:
        raise DataError(f"{path} is not a closed-set file (format != {CLOSED_SET_FORMAT!r})")
    if d.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path} has closed-set format version {d.get('format_version')}; this toolchain reads "
                        f"{FORMAT_VERSION}")
    classes = d.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) or len(set(classes)) < 2:
        raise DataError(f"{path}: 'classes' must list at least 2 distinct identities")
    n = len(classes)
    return ClosedSet(list(classes), _entries(d.get("probes"), n, "probes", path),
                     _entries(d.get("gallery"), n, "gallery", path), int(d.get("per_identity", 0)),
                     int(d.get("seed", 0)), int((d.get("counts") or {}).get("identities_without_probes", 0)),
                     Path(root) if root is not None else None)


def closed_set_beside(splits_or_protocol: str | Path) -> Path | None:
    """The ``closed-set.json`` in the folder of a splits or protocol file, when there is one."""
    p = Path(splits_or_protocol).parent / CLOSED_SET_FILE
    return p if p.is_file() else None


def training_samples(dataset: Dataset, train_subjects: Sequence[str],
                     splits_file: str | Path | None) -> tuple[list[Sample], int]:
    """The train split's images less the closed-set probes (when ``splits_file`` has a closed set beside it).

    Returns (samples, number of probes held out). Training on a probe would make closed-set accuracy a
    training accuracy.
    """
    samples = dataset.select(train_subjects)
    cs_file = closed_set_beside(splits_file) if splits_file is not None else None
    if cs_file is None:
        return samples, 0
    held = {p for p, _ in load_closed_set(cs_file).probes}
    kept = [s for s in samples if dataset.relative(s) not in held]
    return kept, len(samples) - len(kept)


def copy_closed_set(splits_file: str | Path | None, out: str | Path) -> Path | None:
    """Copy the closed set beside ``splits_file`` into ``out`` (a run folder that writes its own protocols), so
    ``deploy evaluate --protocol OUT/protocol-test.json`` finds it there too. None when there is none."""
    from toolchain.fsutil import atomic_write_bytes

    src = closed_set_beside(splits_file) if splits_file is not None else None
    if src is None:
        return None
    dst = Path(out) / CLOSED_SET_FILE
    if src.resolve() != dst.resolve():
        atomic_write_bytes(dst, src.read_bytes())
    return dst
