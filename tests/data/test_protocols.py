"""Verification protocols: all-pairs and cross-session, on UFPR-like and VISOB-like synthetic layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from toolchain.data.layouts import Sample, scan
from toolchain.data.protocols import ProtocolRules, resolve_rules, visit_key
from toolchain.data.splits import load_protocol, make_protocol, write_split_files
from toolchain.errors import DataError


@pytest.fixture(scope="module")
def ufpr_like(tmp_path_factory) -> Path:
    from toolchain.data.synth import generate

    # 12 subjects x 2 eyes x 6 images (2 per session S1-S3) at 32 px
    return generate(tmp_path_factory.mktemp("ufpr") / "u", subjects=12, images_per_subject=6, size=32, seed=0,
                    layout="ufpr")


@pytest.fixture(scope="module")
def visob_like(tmp_path_factory) -> Path:
    from toolchain.data.synth import generate

    # 10 subjects x 2 eyes x 8 images: one per (phone, lighting, visit)
    return generate(tmp_path_factory.mktemp("visob") / "v", subjects=10, images_per_subject=8, size=32, seed=0,
                    layout="visob")


def _pairs_ok(p, enrol: set[str], verify: set[str], same_condition: bool) -> None:
    """Every pair joins one enrolment and one verification image; no genuine pair within a session."""
    for pairs in (p.genuine, p.impostor):
        for i, j in pairs.tolist():
            a, b = p.images[i], p.images[j]
            assert {a["role"], b["role"]} == {"enrol", "verify"}
            assert a["session"] != b["session"]
            visits = {visit_key(a["session"].rpartition("/")[2]), visit_key(b["session"].rpartition("/")[2])}
            assert visits & enrol and visits & verify
            if same_condition:
                assert a["session"].rpartition("/")[0] == b["session"].rpartition("/")[0]
    ids = p.identities()
    assert all(ids[i] == ids[j] for i, j in p.genuine.tolist())
    subj = [im["subject"] for im in p.images]
    assert all(subj[i] != subj[j] for i, j in p.impostor.tolist())  # other eye excluded by default


def test_ufpr_like_layout_is_detected_with_sessions_and_eyes(ufpr_like):
    ds = scan(ufpr_like)
    assert ds.layout == "ufpr" and ds.sessions() == ["1", "2", "3"] and ds.eyes() == ["L", "R"]
    assert len(ds.subjects()) == 12 and len(ds.identities()) == 24 and len(ds.samples) == 12 * 2 * 6


def test_visob_like_layout_is_detected_with_sessions_and_eyes(visob_like):
    ds = scan(visob_like)
    assert ds.layout == "visob" and len(ds.sessions()) == 8 and ds.eyes() == ["L", "R"]
    assert "iPhone/Office/Visit1" in ds.sessions() and len(ds.subjects()) == 10


def test_ufpr_cross_session_has_no_same_session_genuine_pair(ufpr_like, tmp_path):
    ds = scan(ufpr_like)
    rules = resolve_rules(ds.layout, "cross-session")
    assert (rules.enrol_sessions, rules.verify_sessions) == (("1",), ("2", "3")) and "Zanlorensi" in rules.source
    written = write_split_files(ds, tmp_path, seed=0, fractions=(0.4, 0.3, 0.3), rules=rules)
    for split in ("val", "test"):
        p = load_protocol(written[split], root=ufpr_like)
        assert p.rules == rules and len(p.genuine) and len(p.impostor)
        _pairs_ok(p, {"1"}, {"2", "3"}, same_condition=True)
        # every genuine pair of an identity: its 2 session-1 images x its 4 session-2/3 images
        assert len(p.genuine) == len(set(p.identities())) * 2 * 4
    doc = json.loads(written["test"].read_text())
    assert doc["protocol"]["name"] == "cross-session" and doc["protocol"]["genuine"] == "same-eye"
    assert json.loads(written["splits"].read_text())["protocol"]["verify_sessions"] == ["2", "3"]


def test_visob_cross_session_pairs_visit1_with_visit2_of_the_same_phone_and_lighting(visob_like, tmp_path):
    ds = scan(visob_like)
    rules = resolve_rules(ds.layout, "cross-session")
    assert (rules.enrol_sessions, rules.verify_sessions, rules.condition) == (("1",), ("2",), "same")
    written = write_split_files(ds, tmp_path, seed=0, fractions=(0.4, 0.3, 0.3), rules=rules)
    p = load_protocol(written["test"], root=visob_like)
    _pairs_ok(p, {"1"}, {"2"}, same_condition=True)
    # 4 conditions x (1 visit-1 image x 1 visit-2 image) per identity
    assert len(p.genuine) == len(set(p.identities())) * 4
    anywhere = make_protocol(ds.select(p.subjects()), root=visob_like,
                             rules=resolve_rules("visob", "cross-session", condition="any"))
    _pairs_ok(anywhere, {"1"}, {"2"}, same_condition=False)
    assert len(anywhere.genuine) == len(set(p.identities())) * 4 * 4


def test_all_pairs_has_same_session_genuines_cross_session_none(ufpr_like):
    ds = scan(ufpr_like)
    allp = make_protocol(ds.samples, root=ufpr_like)
    sess = [im["session"] for im in allp.images]
    assert any(sess[i] == sess[j] for i, j in allp.genuine.tolist())
    assert allp.to_json()["protocol"] == {"name": "all-pairs", "genuine": "same-eye", "other_eye": "exclude",
                                          "label": "all-pairs (other eye excluded)"}


def test_either_eye_genuines_and_other_eye_impostors(ufpr_like):
    samples = scan(ufpr_like).samples
    either = make_protocol(samples, rules=resolve_rules("ufpr", "cross-session", other_eye="genuine"))
    same = make_protocol(samples, rules=resolve_rules("ufpr", "cross-session"))
    assert len(either.genuine) == 2 * len(same.genuine)  # the other eye's 2 x 4 pairs join each identity's
    imp = make_protocol(samples, rules=resolve_rules("ufpr", "cross-session", other_eye="impostor"))
    subj = [im["subject"] for im in imp.images]
    assert sum(subj[i] == subj[j] for i, j in imp.impostor.tolist()) == 12 * 2 * 2 * 4


def test_sampled_cross_session_impostors_are_seeded_and_valid(ufpr_like):
    samples = scan(ufpr_like).samples
    rules = resolve_rules("ufpr", "cross-session")
    p, q = (make_protocol(samples, seed=3, max_impostors=300, rules=rules) for _ in range(2))
    assert p.impostor_sampling == "sampled" and len(p.impostor) == 300 and np.array_equal(p.impostor, q.impostor)
    assert len(np.unique(p.impostor, axis=0)) == 300
    _pairs_ok(p, {"1"}, {"2", "3"}, same_condition=True)


def test_no_session_labels_is_a_one_line_error(tmp_path):
    s = [Sample(Path(f"/d/{k}.png"), f"s{k // 2}") for k in range(6)]
    with pytest.raises(DataError, match="no session labels.*--protocol all-pairs"):
        make_protocol(s, rules=ProtocolRules("cross-session", ("1",), ("2",)))
    with pytest.raises(DataError, match="per-subject layout has no published cross-session protocol.*--enrol-sessions"):
        resolve_rules("per-subject", "cross-session")


def test_split_without_cross_session_genuine_pair_is_an_error():
    # a is only in session 1, b only in session 2: impostors exist, genuine pairs across sessions do not
    s = [Sample(Path("/d/1.png"), "a", "1"), Sample(Path("/d/2.png"), "a", "1"), Sample(Path("/d/3.png"), "b", "2"),
         Sample(Path("/d/4.png"), "b", "2")]
    rules = ProtocolRules("cross-session", ("1",), ("2",))
    with pytest.raises(DataError, match="no cross-session genuine pair in the test split"):
        make_protocol(s, rules=rules)
    with pytest.raises(DataError, match="no images of the verification session"):
        make_protocol(s[:2], rules=rules)


def test_bad_rules_are_refused():
    with pytest.raises(DataError, match="both enrolment and verification"):
        resolve_rules("ufpr", "cross-session", ["1"], ["S1", "2"])
    with pytest.raises(DataError, match="unknown protocol rule 'random'"):
        resolve_rules("ufpr", "random")
    # sessions without cross-session would be ignored: refused, not dropped silently
    with pytest.raises(DataError, match="add --protocol cross-session"):
        resolve_rules("ufpr", "all-pairs", ["1"], ["2"])


def test_one_side_given_is_recorded_as_mixed_source():
    both = resolve_rules("ufpr", "cross-session")
    one = resolve_rules("ufpr", "cross-session", (), ["2"])
    assert one.verify_sessions == ("2",) and one.enrol_sessions == both.enrol_sessions
    assert one.source.startswith("--verify-sessions, the other side from UFPR-Periocular")
    assert both.source.startswith("UFPR-Periocular")


def test_visit_keys():
    assert [visit_key(v) for v in ("Visit1", "visit_01", "S1", "1", "Session 2", "day")] == ["1", "1", "1", "1", "2",
                                                                                             "day"]


def test_tampered_cross_session_file_is_refused(ufpr_like, tmp_path):
    p = make_protocol(scan(ufpr_like).samples, root=ufpr_like, rules=resolve_rules("ufpr", "cross-session"))
    d = p.to_json()
    roles = [im["role"] for im in d["images"]]
    ids = p.identities()
    i, j = next((i, j) for i in range(len(ids)) for j in range(i + 1, len(ids))
                if ids[i] == ids[j] and roles[i] == roles[j])
    d["genuine"].append([i, j])
    (tmp_path / "p.json").write_text(json.dumps(d))
    with pytest.raises(DataError, match="same side"):
        load_protocol(tmp_path / "p.json")


def test_old_protocol_files_without_rules_still_load(tmp_path):
    s = [Sample(Path("/d/1.png"), "a", eye="L"), Sample(Path("/d/2.png"), "a", eye="L"),
         Sample(Path("/d/3.png"), "a", eye="R")]
    d = make_protocol(s + [Sample(Path("/d/4.png"), "b")], rules=ProtocolRules(other_eye="impostor")).to_json()
    del d["protocol"]  # as written before rules were recorded: the other eye was an impostor
    (tmp_path / "old.json").write_text(json.dumps(d))
    p = load_protocol(tmp_path / "old.json")
    assert p.rules.other_eye == "impostor" and len(p.impostor) == 5
