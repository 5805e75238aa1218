"""Subject-disjoint splits and verification protocols (the pairs every model is scored on).

**Splits.** :func:`assign_splits` gives each subject a split from a hash of ``seed`` and the
subject's name alone: ``u = sha256(f"{seed}:{subject}")[:16] / 2**64`` falls into
``[0, f_train)`` -> train, ``[f_train, f_train + f_val)`` -> val, else test. Adding subjects
later never moves an existing one. With few subjects a split can come out empty; then the
subject whose ``u`` lies nearest that split's interval is moved into it (only in that case,
so the stability promise holds for any data set where every split is non-empty).

**Protocol.** A JSON file (``format: toolchain.protocol``) listing the images of one split
(paths relative to the data root, subject, session, eye) and the genuine and impostor pairs
as index pairs ``[i, j]`` with ``i < j`` into that list, and the rules that chose them
(``protocol``: all-pairs or cross-session, other-eye handling; :mod:`toolchain.data.protocols`).
Genuine = same :attr:`~toolchain.data.layouts.Sample.identity` (subject and eye side); impostor =
different subjects; one subject's other eye is left out by default. All genuine pairs are kept;
impostors are all pairs when there are at most ``max_impostors``, else a seeded uniform sample of
``max_impostors`` distinct pairs.

Worked example: images of identities [a, a, b] -> genuine [[0, 1]], impostor [[0, 2], [1, 2]].

Files written by :func:`write_split_files` (``deploy data split``): ``splits.json``
(subject -> split), ``protocol-val.json``, ``protocol-test.json``, ``excluded.json`` (images left
out because they do not decode).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from toolchain import jsonio
from toolchain.data.config import SplitConfig
from toolchain.data.layouts import Dataset, Sample
from toolchain.data.protocols import PAIRINGS, ProtocolRules, make_pairs
from toolchain.errors import DataError
from toolchain.fsutil import atomic_write_json, atomic_write_text, claim_output_dir

SPLITS = ("train", "val", "test")
PROTOCOL_FORMAT = "toolchain.protocol"
SPLITS_FORMAT = "toolchain.splits"
FORMAT_VERSION = 1
DEFAULT_FRACTIONS = SplitConfig.fractions  # one home: toolchain.data.config (CLI, pipeline, library)
DEFAULT_MAX_IMPOSTORS = SplitConfig.max_impostors
#: A protocol of 200 000 impostor pairs over ~10 000 images is a few MB.
MAX_PROTOCOL_BYTES = 256 << 20
EXCLUDED_FILE = "excluded.json"
#: Side (pixels) images are decoded at to find unreadable ones (decoding is the check; the size only saves time).
CHECK_SIZE = 32


def _unit(seed: int, subject: str) -> float:
    return int(hashlib.sha256(f"{seed}:{subject}".encode()).hexdigest()[:16], 16) / 2.0**64


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise DataError(f"split fractions must be three non-negative numbers (train, val, test) summing to 1, "
                        f"got {tuple(fractions)}")
    return tuple(float(f) for f in fractions)  # type: ignore[return-value]


def assign_splits(subjects: Iterable[str], fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  seed: int = 0, min_subjects: Sequence[int] = (1, 2, 2)) -> dict[str, str]:
    """Subject -> ``"train"|"val"|"test"``, stable under adding subjects (see the module docstring).

    Args:
        subjects: subject names (duplicates are ignored).
        fractions: (train, val, test) shares of subjects, summing to 1; a 0 share leaves that split empty.
        seed: seed of the hash.
        min_subjects: the fewest subjects in each split with a non-zero share (verification needs
            2 subjects for an impostor pair). Only a split below its minimum takes subjects from
            others, the ones whose hash lies nearest its interval.

    >>> s = assign_splits([f"s{i}" for i in range(100)], seed=0)
    >>> s == {k: v for k, v in assign_splits([f"s{i}" for i in range(200)], seed=0).items() if k in s}
    True
    """
    f = _check_fractions(fractions)
    subjects = sorted(set(subjects))
    bounds = np.cumsum(f)
    u = {s: _unit(seed, s) for s in subjects}
    out = {s: SPLITS[min(int(np.searchsorted(bounds, u[s], side="right")), 2)] for s in subjects}
    need = {k: (int(m) if frac > 0 else 0) for k, frac, m in zip(SPLITS, f, min_subjects)}
    if len(subjects) < sum(need.values()):
        wanted = ", ".join(f"{k} {n}" for k, n in need.items() if n)
        raise DataError(f"{len(subjects)} subject(s) cannot fill the subject-disjoint splits (at least {wanted}); "
                        "add subjects or set a split's fraction to 0")
    for k in SPLITS:
        lo = 0.0 if k == "train" else float(bounds[SPLITS.index(k) - 1])
        hi = float(bounds[SPLITS.index(k)])
        while sum(1 for v in out.values() if v == k) < need[k]:
            counts = {name: sum(1 for v in out.values() if v == name) for name in SPLITS}
            donors = [s for s in subjects if out[s] != k and counts[out[s]] > need[out[s]]]
            best = min(donors, key=lambda s: (min(abs(u[s] - lo), abs(u[s] - hi)), s))
            out[best] = k
    return out


@dataclass
class Protocol:
    """Verification pairs over the images of one split. ``genuine``/``impostor``: int arrays (P, 2)."""

    images: list[dict[str, Any]]  # {"path": relative POSIX path, "subject", "session", "eye"}
    genuine: np.ndarray
    impostor: np.ndarray
    split: str = "test"
    seed: int = 0
    max_impostors: int = DEFAULT_MAX_IMPOSTORS
    impostor_sampling: str = "all"  # "all" or "sampled"
    root: Path | None = None  # the data folder relative paths resolve against (not authoritative in the file)
    meta: dict[str, Any] = field(default_factory=dict)
    rules: ProtocolRules = field(default_factory=ProtocolRules)

    def identities(self) -> list[str]:
        return [f"{im['subject']}/{im['eye']}" if im.get("eye") else str(im["subject"]) for im in self.images]

    def subjects(self) -> list[str]:
        return sorted({str(im["subject"]) for im in self.images})

    def paths(self, root: str | Path | None = None) -> list[Path]:
        """Absolute image paths, against ``root`` (default: the root the protocol was made or loaded with)."""
        base = Path(root) if root is not None else self.root
        if base is None:
            raise DataError("this protocol has no data folder; pass the data folder (--data) to resolve its image paths")
        return [(base / im["path"]) if not Path(im["path"]).is_absolute() else Path(im["path"]) for im in self.images]

    def check_files(self, root: str | Path | None = None) -> None:
        """Raise DataError naming the first missing image (a protocol for another data folder?)."""
        missing = [p for p in self.paths(root) if not p.is_file()]
        if missing:
            raise DataError(f"{len(missing)} of {len(self.images)} protocol images are missing under "
                            f"{root or self.root}, e.g. {missing[0]}: is this the data folder the protocol was made for?")

    def to_json(self) -> dict[str, Any]:
        return {"format": PROTOCOL_FORMAT, "format_version": FORMAT_VERSION, "split": self.split, "seed": self.seed,
                "protocol": self.rules.to_json(),
                "max_impostors": self.max_impostors, "impostor_sampling": self.impostor_sampling,
                "counts": {"images": len(self.images), "subjects": len(self.subjects()),
                           "identities": len(set(self.identities())),
                           "genuine": int(len(self.genuine)), "impostor": int(len(self.impostor))},
                "meta": self.meta, "images": self.images,
                "genuine": self.genuine.tolist(), "impostor": self.impostor.tolist()}


def make_protocol(samples: Sequence[Sample], seed: int = 0, max_impostors: int = DEFAULT_MAX_IMPOSTORS,
                  root: str | Path | None = None, split: str = "test", rules: ProtocolRules | None = None) -> Protocol:
    """Genuine and impostor pairs over ``samples`` (one split's images); see the module docstring.

    Args:
        samples: the images, e.g. ``dataset.select(test_subjects)``.
        seed: seed of the impostor sample (unused when all impostor pairs fit).
        max_impostors: the most impostor pairs kept (all of them when there are no more).
        root: the data folder; image paths are stored relative to it.
        split: a label stored in the file.
        rules: the protocol (default: all-pairs, other eye excluded); build them with
            :func:`toolchain.data.protocols.resolve_rules` to get a layout's cross-session default.
    """
    rules = rules or ProtocolRules()
    rules.check()
    if max_impostors < 1:
        raise DataError(f"max_impostors must be at least 1, got {max_impostors}")
    base = Path(root) if root is not None else None
    samples = sorted(samples, key=lambda s: (s.subject, s.eye or "", s.session or "", s.path.as_posix()))
    if len(samples) < 2:
        raise DataError(f"a verification protocol needs at least 2 images, the {split} split has {len(samples)}")
    plan = PAIRINGS.get(rules.name)(samples, rules, split)
    samples = [samples[k] for k in plan.keep]

    def rel(p: Path) -> str:
        if base is not None:
            try:
                return p.relative_to(base).as_posix()
            except ValueError:
                pass
        return p.as_posix()

    images = [{"path": rel(s.path), "subject": s.subject, "session": s.session, "eye": s.eye} for s in samples]
    if plan.roles is not None:
        for im, role in zip(images, plan.roles):
            im["role"] = role
    pairs = make_pairs([s.subject for s in samples], [s.identity for s in samples], plan.blocks, rules,
                       max_impostors, seed)
    what = "cross-session " if rules.name == "cross-session" else ""
    if not len(pairs.impostor):
        raise DataError(f"the {split} split has no {what}impostor pairs; it needs at least 2 subjects"
                        + (" with images in the enrolment and the verification sessions" if what else ""))
    if not len(pairs.genuine):
        if what:
            raise DataError(f"no cross-session genuine pair in the {split} split: no identity has images in both the "
                            f"enrolment session(s) {', '.join(rules.enrol_sessions)} and the verification session(s) "
                            f"{', '.join(rules.verify_sessions)}" + (" under one condition (--condition any allows "
                                                                    "across)" if rules.condition == "same" else ""))
        raise DataError(f"no genuine pairs in the {split} split: every identity has one image; "
                        "verification needs at least two images of some identity")
    meta: dict[str, Any] = {"candidate_pairs": pairs.candidates, "excluded_other_eye_pairs": pairs.excluded_other_eye}
    if plan.dropped:
        meta["images_left_out"] = plan.dropped
    return Protocol(images, pairs.genuine.astype(np.int64), pairs.impostor.astype(np.int64), split, seed,
                    max_impostors, pairs.sampling, base, meta, rules)


def save_protocol(protocol: Protocol, path: str | Path) -> Path:
    """Write a protocol JSON atomically, compact: a test split holds up to hundreds of thousands of pairs, and
    indenting them (a number per line) made the file ~5x larger and `data split` on 20,000 rows ~3x slower
    (Python's indenting encoder is pure Python; the compact one is C)."""
    path = Path(path)
    atomic_write_text(path, jsonio.dumps(protocol.to_json(), separators=(",", ":")) + "\n")
    return path


def _pairs(value: Any, n: int, what: str, path: Path) -> np.ndarray:
    a = np.asarray(value, dtype=np.int64).reshape(-1, 2) if value else np.empty((0, 2), np.int64)
    if a.size and (a.min() < 0 or a.max() >= n or np.any(a[:, 0] >= a[:, 1])):
        raise DataError(f"{path}: {what} pairs must be index pairs [i, j] with 0 <= i < j < {n}")
    return a


def load_protocol(path: str | Path, root: str | Path | None = None) -> Protocol:
    """Read a protocol file; ``root`` is the data folder its relative image paths resolve against."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"protocol file {path} does not exist (write one with `deploy data split`)")
    d = jsonio.read(path, max_bytes=MAX_PROTOCOL_BYTES, error=DataError, what="protocol file")
    if not isinstance(d, dict) or d.get("format") != PROTOCOL_FORMAT:
        raise DataError(f"{path} is not a verification protocol (format != {PROTOCOL_FORMAT!r}); "
                        "write one with `deploy data split`")
    if d.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path} has protocol format version {d.get('format_version')}; this toolchain reads {FORMAT_VERSION}")
    images = d.get("images")
    if not isinstance(images, list) or not all(isinstance(im, dict) and "path" in im and "subject" in im for im in images):
        raise DataError(f"{path}: 'images' must be a list of {{path, subject, session, eye}}")
    n = len(images)
    try:
        rules = ProtocolRules.from_json(d.get("protocol"))
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    p = Protocol(images, _pairs(d.get("genuine"), n, "genuine", path), _pairs(d.get("impostor"), n, "impostor", path),
                 d.get("split", "test"), int(d.get("seed", 0)), int(d.get("max_impostors", DEFAULT_MAX_IMPOSTORS)),
                 d.get("impostor_sampling", "all"), Path(root) if root is not None else None, d.get("meta") or {},
                 rules)
    _check_pairs(p, path)
    return p


def _check_pairs(p: Protocol, path: Path) -> None:
    """Refuse a file whose pairs break its own rules (edited or corrupt)."""
    ids = np.array(p.identities(), dtype=object)
    subj = np.array([str(im["subject"]) for im in p.images], dtype=object)
    g, i = p.genuine, p.impostor
    same = (subj if p.rules.other_eye == "genuine" else ids)
    if len(g) and np.any(same[g[:, 0]] != same[g[:, 1]]):
        raise DataError(f"{path}: a genuine pair joins two different identities; the file was edited or is corrupt")
    if len(i) and np.any(ids[i[:, 0]] == ids[i[:, 1]]):
        raise DataError(f"{path}: an impostor pair joins one identity; the file was edited or is corrupt")
    if len(i) and p.rules.other_eye != "impostor" and np.any(subj[i[:, 0]] == subj[i[:, 1]]):
        raise DataError(f"{path}: an impostor pair joins one subject's two eyes, which its rules "
                        f"(other eye {p.rules.other_eye}) leave out; the file was edited or is corrupt")
    if p.rules.name == "cross-session":
        roles = np.array([im.get("role") for im in p.images], dtype=object)
        for what, pairs in (("genuine", g), ("impostor", i)):
            if len(pairs) and np.any(roles[pairs[:, 0]] == roles[pairs[:, 1]]):
                raise DataError(f"{path}: a {what} pair joins two images of the same side (enrolment or "
                                "verification) of a cross-session protocol; the file was edited or is corrupt")


def splits_json(assignment: dict[str, str], seed: int, fractions: Sequence[float], dataset: Dataset | None = None,
                rules: ProtocolRules | None = None, excluded: int = 0,
                closed_set: dict[str, Any] | None = None) -> dict[str, Any]:
    counts = {k: sum(1 for v in assignment.values() if v == k) for k in SPLITS}
    extra = {"closed_set": closed_set} if closed_set else {}
    return {"format": SPLITS_FORMAT, "format_version": FORMAT_VERSION, "seed": seed, "fractions": list(fractions),
            "layout": dataset.layout if dataset else None, "counts": counts,
            "protocol": (rules or ProtocolRules()).to_json(), "excluded_images": excluded,
            **extra, "subjects": dict(sorted(assignment.items()))}


def drop_unreadable(dataset: Dataset, progress: Callable[[int, int], None] | None = None,
                    size: int = CHECK_SIZE) -> tuple[Dataset, list[dict[str, str]]]:
    """Decode every image; return the data set without the ones that fail, and ``[{path, reason}]`` for those.

    ``progress(done, total)`` after each image. Raises DataError only when no image decodes at all.
    """
    from toolchain.data.images import check_images

    bad = check_images([s.path for s in dataset.samples], size, progress)
    if not bad:
        return dataset, []
    failed = {p for p, _ in bad}
    kept = [s for s in dataset.samples if s.path not in failed]
    excluded = [{"path": dataset.relative(Sample(p, "")), "reason": r} for p, r in bad]
    if not kept:
        raise DataError(f"none of the {len(bad)} images of {dataset.root} decode, e.g. {bad[0][1]}")
    return Dataset(dataset.root, dataset.layout, kept, dataset.unmatched), excluded


def load_splits(path: str | Path) -> dict[str, str]:
    """subject -> split from a ``splits.json``."""
    path = Path(path)
    d = jsonio.read(path, max_bytes=MAX_PROTOCOL_BYTES, error=DataError, what="splits file")
    if not isinstance(d, dict) or d.get("format") != SPLITS_FORMAT or not isinstance(d.get("subjects"), dict):
        raise DataError(f"{path} is not a splits file (format != {SPLITS_FORMAT!r}); write one with `deploy data split`")
    bad = {v for v in d["subjects"].values() if v not in SPLITS}
    if bad:
        raise DataError(f"{path}: unknown split name(s) {sorted(bad)}; known: {', '.join(SPLITS)}")
    return {str(k): str(v) for k, v in d["subjects"].items()}


def write_split_files(dataset: Dataset, out: str | Path, seed: int = 0,
                      fractions: Sequence[float] = DEFAULT_FRACTIONS,
                      max_impostors: int = DEFAULT_MAX_IMPOSTORS, force: bool = False,
                      rules: ProtocolRules | None = None, check_images: bool = SplitConfig.check_images,
                      progress: Callable[[int, int], None] | None = None, closed_set: int = 0) -> dict[str, Path]:
    """Write ``splits.json``, ``protocol-val.json``, ``protocol-test.json`` and ``excluded.json`` into ``out``.

    ``closed_set`` > 0 also writes ``closed-set.json``: that many held-out images of every training identity
    (:mod:`toolchain.data.closed_set`), which training then leaves out.

    ``rules``: the verification protocol (default all-pairs; see :func:`toolchain.data.protocols.resolve_rules`).
    ``check_images``: decode every image first (``progress(done, total)`` after each) and leave the unreadable
    ones out of splits and protocols, listed with the reason in ``excluded.json``; ``evaluate`` would abort on
    them. A split with no subjects (fraction 0) gets no protocol file. Returns name -> path written. ``out``
    must be new, empty or an earlier splits folder (``force``: any folder).
    """
    rules = rules or ProtocolRules()
    rules.check()
    out = claim_output_dir(out, "splits", force)
    excluded: list[dict[str, str]] = []
    # every subject of the folder gets a split, also one whose images all fail to decode: `deploy train --splits`
    # scans the same folder and refuses a splits file that lacks one of its subjects
    all_subjects = dataset.subjects()
    if check_images:
        dataset, excluded = drop_unreadable(dataset, progress)
    assignment = assign_splits(all_subjects, fractions, seed)
    protocols = {}
    for split in ("val", "test"):  # all made before anything is written: a protocol error leaves no files behind
        subjects = [s for s, k in assignment.items() if k == split]
        if not subjects:
            continue
        proto = make_protocol(dataset.select(subjects), seed, max_impostors, dataset.root, split, rules)
        proto.meta = {"layout": dataset.layout, "splits_seed": seed, "fractions": list(fractions),
                      "excluded_images": len(excluded), **proto.meta}
        protocols[split] = proto
    from toolchain.data.closed_set import CLOSED_SET_FILE, hold_out

    held = hold_out(dataset, [s for s, k in assignment.items() if k == "train"], closed_set, seed) if closed_set else None
    (out / CLOSED_SET_FILE).unlink(missing_ok=True)  # a re-split without --closed-set leaves no stale probes
    written = {"splits": out / "splits.json", "excluded": out / EXCLUDED_FILE}
    cs_info = None
    if held is not None:
        written["closed_set"] = out / CLOSED_SET_FILE
        atomic_write_json(written["closed_set"], held.to_json())
        cs_info = {"file": CLOSED_SET_FILE, "per_identity": closed_set, "probes": len(held.probes),
                   "classes": len(held.classes)}
    atomic_write_json(written["excluded"], {"format": "toolchain.excluded", "format_version": 1,
                                            "count": len(excluded), "checked": bool(check_images),
                                            "images": excluded})
    atomic_write_json(written["splits"], splits_json(assignment, seed, fractions, dataset, rules, len(excluded),
                                                         cs_info))
    for split, proto in protocols.items():
        written[split] = save_protocol(proto, out / f"protocol-{split}.json")
    return written
