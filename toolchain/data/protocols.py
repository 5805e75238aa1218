"""Verification protocols: which pairs of a split's images are genuine, impostor, or left out.

A protocol is a pairing (registered by name in :data:`PAIRINGS`) plus rules (:class:`ProtocolRules`):

* ``all-pairs``: every pair ``i < j`` of the split's images is a candidate.
* ``cross-session``: an image's session ``"a/b/visit"`` splits into a *condition* (``"a/b"``, everything
  before the last ``/``; empty for a plain session number) and a *visit* (the last part). Images of the
  enrolment visits are paired with images of the verification visits only (never two images of one
  session), and with ``condition = "same"`` only within one condition (VISOB: the same phone and lighting).
  Images of other visits, and images without a session, take no part.

A candidate pair of one identity (subject and eye side) is *genuine*; of two subjects, an *impostor*; of
one subject's two different eyes (or an eye and an unknown side) it follows ``other_eye``: ``exclude``
(neither: the default, because the two eyes of one person are neither the same pattern nor independent),
``impostor``, or ``genuine`` (either-eye genuines).

Worked example (cross-session, enrol visit 1, verify visit 2, other eye excluded): images
``a/L@1, a/L@2, a/R@2, b/L@2`` -> genuine ``[a/L@1, a/L@2]``, impostor ``[a/L@1, b/L@2]``, left out
``[a/L@1, a/R@2]`` (other eye); ``a/L@2`` vs ``b/L@2`` is no candidate (both verification images).

Visits are matched by their trailing number when they have one (``Visit1``, ``visit_1``, ``S1`` and ``1``
are all visit ``1``), else by name, ignoring case. Layout defaults (``Layout.cross_session``) and their
sources are in ``docs/datasets.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from toolchain.data.config import (
    CONDITION_RULES,
    OTHER_EYE_RULES,
    PROTOCOL_NAMES,
    SplitConfig,
)
from toolchain.data.layouts import LAYOUTS, Sample
from toolchain.errors import DataError
from toolchain.registry import Registry


@dataclass(frozen=True)
class ProtocolRules:
    """How a split's images become pairs (the fields of ``SplitConfig`` that concern pairs, resolved)."""

    name: str = SplitConfig.protocol
    enrol_sessions: tuple[str, ...] = SplitConfig.enrol_sessions
    verify_sessions: tuple[str, ...] = SplitConfig.verify_sessions
    other_eye: str = SplitConfig.other_eye
    condition: str = SplitConfig.condition
    source: str | None = None  # where the session choice comes from: a published protocol, or "--enrol/--verify"

    @property
    def genuine(self) -> str:
        return "either-eye" if self.other_eye == "genuine" else "same-eye"

    def label(self) -> str:
        """One line for reports: ``cross-session (enrol 1 -> verify 2, 3; same condition; other eye excluded)``."""
        eye = {"exclude": "other eye excluded", "impostor": "other eye impostor", "genuine": "either-eye genuines"}
        parts = [eye[self.other_eye]]
        if self.name == "cross-session":
            parts = [f"enrol {', '.join(self.enrol_sessions)} -> verify {', '.join(self.verify_sessions)}",
                     f"{self.condition} condition"] + parts
        return f"{self.name} ({'; '.join(parts)})"

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "genuine": self.genuine, "other_eye": self.other_eye,
                             "label": self.label()}
        if self.name == "cross-session":
            d.update(enrol_sessions=list(self.enrol_sessions), verify_sessions=list(self.verify_sessions),
                     condition=self.condition)
        if self.source:
            d["source"] = self.source
        return d

    @classmethod
    def from_json(cls, d: Any) -> "ProtocolRules":
        """The rules a protocol file records; a file without them is an all-pairs protocol written before rules
        were recorded, where the other eye of a subject counted as an impostor."""
        if not isinstance(d, dict):
            return cls(name="all-pairs", other_eye="impostor")
        rules = cls(str(d.get("name", "all-pairs")), tuple(map(str, d.get("enrol_sessions") or ())),
                    tuple(map(str, d.get("verify_sessions") or ())), str(d.get("other_eye", "impostor")),
                    str(d.get("condition", "same")), d.get("source"))
        rules.check()
        return rules

    def check(self) -> None:
        for value, known, what in ((self.name, PROTOCOL_NAMES, "protocol"), (self.other_eye, OTHER_EYE_RULES, "other-eye"),
                                   (self.condition, CONDITION_RULES, "condition")):
            if value not in known:
                raise DataError(f"unknown {what} rule {value!r}; known: {', '.join(known)}")
        if self.name == "cross-session":
            if not self.enrol_sessions or not self.verify_sessions:
                raise DataError("a cross-session protocol needs enrolment and verification sessions "
                                "(--enrol-sessions 1 --verify-sessions 2,3)")
            both = {visit_key(v) for v in self.enrol_sessions} & {visit_key(v) for v in self.verify_sessions}
            if both:
                raise DataError(f"session(s) {', '.join(sorted(both))} are both enrolment and verification sessions; "
                                "a cross-session protocol needs them disjoint")


def resolve_rules(layout: str | None, protocol: str = SplitConfig.protocol,
                  enrol_sessions: Sequence[str] = SplitConfig.enrol_sessions,
                  verify_sessions: Sequence[str] = SplitConfig.verify_sessions, other_eye: str = SplitConfig.other_eye,
                  condition: str = SplitConfig.condition) -> ProtocolRules:
    """Rules for a data set of ``layout``: cross-session sessions left empty take the layout's published default.

    >>> resolve_rules("ufpr", "cross-session").label()
    'cross-session (enrol 1 -> verify 2, 3; same condition; other eye excluded)'
    """
    enrol, verify, source = tuple(map(str, enrol_sessions)), tuple(map(str, verify_sessions)), None
    if protocol != "cross-session" and (enrol or verify):
        raise DataError(f"--enrol-sessions/--verify-sessions choose the sessions of a cross-session protocol; "
                        f"with --protocol {protocol} they would be ignored: add --protocol cross-session")
    if protocol == "cross-session":
        spec = LAYOUTS.get(layout) if layout in LAYOUTS else None
        if (not enrol or not verify) and (spec is None or spec.cross_session is None):
            raise DataError(f"the {layout or 'given'!s} layout has no published cross-session protocol: name the "
                            "sessions, e.g. --enrol-sessions 1 --verify-sessions 2 (see `deploy data check` for them)")
        if enrol and verify:
            source = "--enrol-sessions/--verify-sessions"
        else:
            given = "--enrol-sessions" if enrol else "--verify-sessions" if verify else None
            enrol, verify = enrol or spec.cross_session[0], verify or spec.cross_session[1]
            # one side chosen by the user is no longer the published protocol: say which part is whose
            source = spec.protocol_source if given is None else f"{given}, the other side from {spec.protocol_source}"
    rules = ProtocolRules(protocol, enrol if protocol == "cross-session" else (),
                          verify if protocol == "cross-session" else (), other_eye, condition, source)
    rules.check()
    return rules


def visit_key(visit: str) -> str:
    """``Visit1`` / ``visit_01`` / ``S1`` / ``1`` -> ``1``; a visit without a trailing number -> its lower-case name."""
    m = re.search(r"(\d+)\s*$", visit)
    return str(int(m.group(1))) if m else visit.strip().lower()


def split_session(session: str) -> tuple[str, str]:
    """``"iPhone/Office/Visit1"`` -> (condition ``"iPhone/Office"``, visit ``"Visit1"``); ``"2"`` -> ("", "2")."""
    cond, _, visit = session.rpartition("/")
    return cond, visit


# --- pairings: which images take part and which pairs are candidates ---------------------------------------


@dataclass
class Block:
    """Candidate pairs: all ``i < j`` within ``a`` (``b`` None), or every ``a[k]`` x ``b[l]`` (a and b disjoint)."""

    a: np.ndarray
    b: np.ndarray | None = None

    def size(self) -> int:
        m = len(self.a)
        return m * (m - 1) // 2 if self.b is None else m * len(self.b)


@dataclass
class Plan:
    """A pairing's answer for one split: the images kept (indices into the samples), their roles, the blocks."""

    keep: list[int]
    blocks: list[Block]  # in kept-image indices
    roles: list[str] | None = None  # "enrol" / "verify" per kept image (cross-session)
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> images left out


Pairing = Callable[[Sequence[Sample], ProtocolRules, str], Plan]
#: Pairings by protocol name.
PAIRINGS: Registry[Pairing] = Registry("verification protocol")


@PAIRINGS.register("all-pairs")
def _all_pairs(samples: Sequence[Sample], rules: ProtocolRules, split: str) -> Plan:
    """Every image; every pair ``i < j``."""
    return Plan(list(range(len(samples))), [Block(np.arange(len(samples), dtype=np.int64))])


@PAIRINGS.register("cross-session")
def _cross_session(samples: Sequence[Sample], rules: ProtocolRules, split: str) -> Plan:
    """Enrolment-visit images x verification-visit images, per condition when ``condition == "same"``."""
    if not any(s.session for s in samples):
        raise DataError(f"the {split} split's images have no session labels, so no cross-session protocol can be made: "
                        "use --protocol all-pairs, or a layout, --subject-regex (?P<session>...) or CSV that names sessions")
    enrol, verify = {visit_key(v) for v in rules.enrol_sessions}, {visit_key(v) for v in rules.verify_sessions}
    keep, roles, conds, dropped = [], [], [], {"no session": 0, "other sessions": 0}
    seen: set[str] = set()
    for k, s in enumerate(samples):
        if not s.session:
            dropped["no session"] += 1
            continue
        cond, visit = split_session(s.session)
        key = visit_key(visit)
        seen.add(visit)
        role = "enrol" if key in enrol else "verify" if key in verify else None
        if role is None:
            dropped["other sessions"] += 1
            continue
        keep.append(k)
        roles.append(role)
        conds.append(cond if rules.condition == "same" else "")
    found = ", ".join(sorted(seen)) or "none"
    for role, want in (("enrol", rules.enrol_sessions), ("verify", rules.verify_sessions)):
        if role not in roles:
            raise DataError(f"the {split} split has no images of the {'enrolment' if role == 'enrol' else 'verification'} "
                            f"session(s) {', '.join(want)}; its sessions (last part) are: {found}. "
                            "Choose with --enrol-sessions/--verify-sessions")
    r, c = np.array(roles), np.array(conds, dtype=object)
    blocks = []
    for cond in sorted(set(conds)):
        a = np.flatnonzero((r == "enrol") & (c == cond)).astype(np.int64)
        b = np.flatnonzero((r == "verify") & (c == cond)).astype(np.int64)
        if len(a) and len(b):
            blocks.append(Block(a, b))
    if not blocks:
        raise DataError(f"the {split} split has no condition with both enrolment and verification images "
                        "(--condition same); try --condition any")
    return Plan(keep, blocks, roles, {k: v for k, v in dropped.items() if v})


# --- classifying and sampling pairs --------------------------------------------------------------------------


@dataclass
class Pairs:
    genuine: np.ndarray  # (G, 2) int64, i < j, sorted
    impostor: np.ndarray  # (I, 2)
    sampling: str  # "all" or "sampled"
    excluded_other_eye: int  # candidate pairs left out by other_eye = "exclude"
    candidates: int


def _codes(values: Sequence[str]) -> np.ndarray:
    return np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)[1].astype(np.int64)


def _within_subject(block: Block, subj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The block's candidate pairs whose images share a subject (few: one subject's images)."""
    out_a, out_b = [], []
    if block.b is None:
        order = block.a[np.argsort(subj[block.a], kind="stable")]
        _, starts, counts = np.unique(subj[order], return_index=True, return_counts=True)
        for st, n in zip(starts, counts):
            if n > 1:
                i, j = np.triu_indices(int(n), k=1)
                out_a.append(order[st + i])
                out_b.append(order[st + j])
    else:
        for s in np.intersect1d(subj[block.a], subj[block.b]):
            a, b = block.a[subj[block.a] == s], block.b[subj[block.b] == s]
            out_a.append(np.repeat(a, len(b)))
            out_b.append(np.tile(b, len(a)))
    if not out_a:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(out_a), np.concatenate(out_b)


def _cross_subject_count(block: Block, subj: np.ndarray) -> int:
    if block.b is None:
        _, n = np.unique(subj[block.a], return_counts=True)
        return block.size() - int((n * (n - 1) // 2).sum())
    sa, na = np.unique(subj[block.a], return_counts=True)
    sb, nb = np.unique(subj[block.b], return_counts=True)
    _, ia, ib = np.intersect1d(sa, sb, return_indices=True)
    return block.size() - int((na[ia] * nb[ib]).sum())


def _all_candidates(block: Block) -> tuple[np.ndarray, np.ndarray]:
    if block.b is None:
        i, j = np.triu_indices(len(block.a), k=1)
        return block.a[i], block.a[j]
    return np.repeat(block.a, len(block.b)), np.tile(block.b, len(block.a))


def _ordered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1).astype(np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else np.empty((0, 2), np.int64)


def make_pairs(subjects: Sequence[str], identities: Sequence[str], blocks: Sequence[Block], rules: ProtocolRules,
               max_impostors: int, seed: int) -> Pairs:
    """Classify every candidate pair of ``blocks``; keep all genuines and all (or a seeded sample of) impostors."""
    subj, ident = _codes(subjects), _codes(identities)

    def classify(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        same_subj, same_id = subj[a] == subj[b], ident[a] == ident[b]
        other = same_subj & ~same_id
        genuine = same_id | (other & (rules.other_eye == "genuine"))
        impostor = ~same_subj | (other & (rules.other_eye == "impostor"))
        return genuine, impostor, other & (rules.other_eye == "exclude")

    gen, imp_within, excluded = [], [], 0
    for block in blocks:
        a, b = _within_subject(block, subj)
        g, i, x = classify(a, b)
        gen.append(_ordered(a[g], b[g]))
        imp_within.append(_ordered(a[i], b[i]))
        excluded += int(x.sum())
    genuine = np.unique(np.concatenate(gen), axis=0) if gen else np.empty((0, 2), np.int64)
    n_imp = sum(_cross_subject_count(bl, subj) for bl in blocks) + sum(len(p) for p in imp_within)
    candidates = sum(bl.size() for bl in blocks)
    if n_imp <= max_impostors:
        parts = imp_within[:]
        for block in blocks:
            a, b = _all_candidates(block)
            keep = subj[a] != subj[b]
            parts.append(_ordered(a[keep], b[keep]))
        impostor = np.unique(np.concatenate(parts), axis=0) if parts else np.empty((0, 2), np.int64)
        return Pairs(genuine, impostor, "all", excluded, candidates)
    return Pairs(genuine, _sample_impostors(blocks, lambda a, b: classify(a, b)[1], max_impostors,
                                            np.random.default_rng(seed)), "sampled", excluded, candidates)


def _sample_impostors(blocks: Sequence[Block], is_impostor: Callable[[np.ndarray, np.ndarray], np.ndarray],
                      count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct impostor pairs, uniformly at random: uniform candidates, rejecting the others."""
    weights = np.array([bl.size() for bl in blocks], dtype=np.float64)
    chosen = np.empty((0, 2), dtype=np.int64)
    while len(chosen) < count:
        k = 2 * (count - len(chosen)) + 64
        per = [k] if len(blocks) == 1 else np.bincount(rng.choice(len(blocks), k, p=weights / weights.sum()),
                                                        minlength=len(blocks)).tolist()
        drawn_a, drawn_b = [], []
        for bl, n in zip(blocks, per):
            if not n:
                continue
            a = bl.a[rng.integers(0, len(bl.a), n)]
            b = bl.a[rng.integers(0, len(bl.a), n)] if bl.b is None else bl.b[rng.integers(0, len(bl.b), n)]
            drawn_a.append(a)
            drawn_b.append(b)
        a, b = np.concatenate(drawn_a), np.concatenate(drawn_b)
        keep = (a != b) & is_impostor(a, b)
        pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)[keep]
        chosen = np.unique(np.concatenate([chosen, pairs]), axis=0)
        if len(chosen) > count:  # drop a random surplus so the sample stays uniform
            chosen = chosen[np.sort(rng.choice(len(chosen), count, replace=False))]
    return chosen
