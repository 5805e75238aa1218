from __future__ import annotations

import json

import numpy as np
import pytest

from toolchain.data.layouts import Sample, scan
from toolchain.data.splits import (assign_splits, load_protocol, load_splits, make_protocol, save_protocol,
                                   write_split_files)
from toolchain.errors import DataError


def _samples(ids: list[str]) -> list[Sample]:
    from pathlib import Path

    return [Sample(Path(f"/d/{s}/{k}.png"), s) for k, s in enumerate(ids)]


def test_splits_are_stable_when_subjects_are_added():
    few = assign_splits([f"s{i}" for i in range(300)], seed=3)
    more = assign_splits([f"s{i}" for i in range(1000)], seed=3)
    assert all(more[s] == v for s, v in few.items())
    counts = {k: list(more.values()).count(k) for k in ("train", "val", "test")}
    assert 0.65 < counts["train"] / 1000 < 0.75 and 0.07 < counts["val"] / 1000 < 0.13


def test_seed_changes_the_assignment():
    subjects = [f"s{i}" for i in range(50)]
    assert assign_splits(subjects, seed=0) != assign_splits(subjects, seed=1)


def test_tiny_sets_still_get_two_subjects_in_val_and_test():
    out = assign_splits([f"s{i}" for i in range(6)], seed=0)
    assert [list(out.values()).count(k) for k in ("val", "test")] == [2, 2]
    with pytest.raises(DataError, match="cannot fill"):
        assign_splits(["a", "b", "c"], seed=0)


def test_bad_fractions():
    with pytest.raises(DataError, match="summing to 1"):
        assign_splits(["a"], fractions=(0.5, 0.5, 0.5))


def test_worked_example_pairs():
    p = make_protocol(_samples(["a", "a", "b"]), seed=0)
    assert p.genuine.tolist() == [[0, 1]] and p.impostor.tolist() == [[0, 2], [1, 2]]
    assert p.impostor_sampling == "all"


def test_left_and_right_eye_are_different_identities():
    from pathlib import Path

    from toolchain.data.protocols import ProtocolRules

    s = [Sample(Path("/d/1.png"), "a", eye="L"), Sample(Path("/d/2.png"), "a", eye="R"), Sample(Path("/d/3.png"), "a", eye="L"),
         Sample(Path("/d/4.png"), "b", eye="L")]
    p = make_protocol(s)  # default: a/L vs a/R is neither genuine nor impostor
    assert p.genuine.tolist() == [[0, 1]]  # sorted: (a, L) x2 first
    assert p.impostor.tolist() == [[0, 3], [1, 3], [2, 3]] and p.meta["excluded_other_eye_pairs"] == 2
    assert p.to_json()["protocol"]["other_eye"] == "exclude"
    old = make_protocol(s, rules=ProtocolRules(other_eye="impostor"))
    assert old.genuine.tolist() == [[0, 1]] and old.impostor.tolist() == [[0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    either = make_protocol(s, rules=ProtocolRules(other_eye="genuine"))
    assert either.genuine.tolist() == [[0, 1], [0, 2], [1, 2]] and either.to_json()["protocol"]["genuine"] == "either-eye"


def test_sampled_impostors_are_seeded_distinct_and_never_genuine():
    ids = [f"s{i // 5}" for i in range(200)]
    p = make_protocol(_samples(ids), seed=7, max_impostors=500)
    q = make_protocol(_samples(ids), seed=7, max_impostors=500)
    r = make_protocol(_samples(ids), seed=8, max_impostors=500)
    assert p.impostor_sampling == "sampled" and len(p.impostor) == 500
    assert np.array_equal(p.impostor, q.impostor) and not np.array_equal(p.impostor, r.impostor)
    assert len(np.unique(p.impostor, axis=0)) == 500 and np.all(p.impostor[:, 0] < p.impostor[:, 1])
    ident = np.array(p.identities())
    assert np.all(ident[p.impostor[:, 0]] != ident[p.impostor[:, 1]])
    assert len(p.genuine) == 40 * 10  # all genuine pairs: 40 subjects x C(5, 2)


def test_split_files_are_subject_disjoint_and_round_trip(synth_small, tmp_path):
    ds = scan(synth_small)
    written = write_split_files(ds, tmp_path, seed=0, max_impostors=50)
    splits = load_splits(written["splits"])
    val, test = load_protocol(written["val"], root=synth_small), load_protocol(written["test"], root=synth_small)
    train_subjects = {s for s, k in splits.items() if k == "train"}
    assert train_subjects and not train_subjects & set(val.subjects())
    assert not train_subjects & set(test.subjects()) and not set(val.subjects()) & set(test.subjects())
    assert all(p.is_file() for p in test.paths())
    again = load_protocol(save_protocol(test, tmp_path / "again.json"))
    assert np.array_equal(again.genuine, test.genuine) and again.images == test.images


def test_tampered_protocol_is_refused(synth_small, tmp_path):
    written = write_split_files(scan(synth_small), tmp_path, seed=0)
    d = json.loads(written["test"].read_text())
    d["genuine"][0] = d["impostor"][0]
    written["test"].write_text(json.dumps(d))
    with pytest.raises(DataError, match="genuine pair joins two different identities"):
        load_protocol(written["test"])


def test_not_a_protocol(tmp_path):
    (tmp_path / "p.json").write_text("{}")
    with pytest.raises(DataError, match="not a verification protocol"):
        load_protocol(tmp_path / "p.json")


def test_unreadable_images_are_left_out_and_listed(synth_small, tmp_path):
    import shutil

    data = tmp_path / "d"
    shutil.copytree(synth_small, data)
    victim = sorted(data.rglob("*.png"))[5]
    victim.write_bytes(victim.read_bytes()[:60])  # truncated PNG: the header is there, the pixels are not
    rel = victim.relative_to(data).as_posix()
    seen = []
    written = write_split_files(scan(data), tmp_path / "p", seed=0, progress=lambda n, total: seen.append((n, total)))
    assert seen[-1] == (32, 32)
    excluded = json.loads(written["excluded"].read_text())
    assert excluded["count"] == 1 and [im["path"] for im in excluded["images"]] == [rel]
    assert json.loads(written["splits"].read_text())["excluded_images"] == 1
    paths = {im["path"] for k in ("val", "test") for im in load_protocol(written[k]).images}
    assert rel not in paths
    unchecked = write_split_files(scan(data), tmp_path / "q", seed=0, check_images=False)
    assert json.loads(unchecked["excluded"].read_text()) == {"format": "toolchain.excluded", "format_version": 1,
                                                             "count": 0, "checked": False, "images": []}


def test_no_readable_image_is_one_error(tmp_path):
    for k in range(4):
        (tmp_path / "d" / f"s{k}").mkdir(parents=True)
        (tmp_path / "d" / f"s{k}" / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="none of the 4 images"):
        write_split_files(scan(tmp_path / "d"), tmp_path / "p")
