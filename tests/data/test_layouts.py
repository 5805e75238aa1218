from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from toolchain.data.layouts import LAYOUTS, detect_layout, scan
from toolchain.errors import DataLayoutError


def _img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 4), (10, 20, 30)).save(path)


# one example tree per layout: files, then the (subject, session, eye) expected for the first file in path order
EXAMPLES = {
    "per-subject": (["alice/a.png", "alice/b.jpg", "bob/x/1.png"], ("alice", None, None)),
    "ufpr": (["C12/C12_S2_I3_L.jpg", "C12/C12_S1_I1_R.jpg", "C7/C7_S3_I5_L.png"], ("12", "1", "R")),
    "visob": (["iPhone/Office/Visit1/1023_1_L_03.jpg", "Oppo/Dim_light/Visit2/77_right.png"], ("77", "Oppo/Dim_light/Visit2", "R")),
}


@pytest.mark.parametrize("layout", sorted(EXAMPLES))
def test_detect_and_scan_each_layout(tmp_path, layout):
    files, first = EXAMPLES[layout]
    for f in files:
        _img(tmp_path / f)
    assert detect_layout(tmp_path) == layout
    ds = scan(tmp_path)
    assert ds.layout == layout and len(ds.samples) == len(files) and not ds.unmatched
    s = ds.samples[0]
    assert (s.subject, s.session, s.eye) == first


def test_every_registered_layout_has_an_example_or_is_csv():
    assert set(LAYOUTS.names()) == set(EXAMPLES) | {"csv"}


def test_csv_index(tmp_path):
    _img(tmp_path / "imgs" / "1.png")
    _img(tmp_path / "imgs" / "2.png")
    (tmp_path / "index.csv").write_text("path,subject,session,eye\nimgs/1.png,s1,a,left\nimgs/2.png,s2,,R\n")
    assert detect_layout(tmp_path) == "csv"
    ds = scan(tmp_path)
    assert [(s.subject, s.session, s.eye) for s in ds.samples] == [("s1", "a", "L"), ("s2", None, "R")]


def test_non_utf8_csv_index_names_the_file_and_the_byte(tmp_path):
    _img(tmp_path / "1.png")
    (tmp_path / "index.csv").write_bytes("path,subject\n1.png,Jos\u00e9\n".encode("latin-1"))
    with pytest.raises(DataLayoutError, match=r"index.csv is not UTF-8 text: byte 22 \(line 2, 0xe9\)"):
        scan(tmp_path)


def test_csv_index_with_a_utf8_bom_reads_its_header(tmp_path):
    _img(tmp_path / "1.png")
    (tmp_path / "index.csv").write_bytes("path,subject\n1.png,Jos\u00e9\n".encode("utf-8-sig"))
    assert [s.subject for s in scan(tmp_path).samples] == ["Jos\u00e9"]


def test_csv_index_with_missing_file_names_it(tmp_path):
    (tmp_path / "index.csv").write_text("path,subject\nnope.png,s1\n")
    with pytest.raises(DataLayoutError, match="nope.png"):
        scan(tmp_path)


def test_wrong_layout_names_the_layout_expected_and_the_one_detected(tmp_path):
    for f in EXAMPLES["per-subject"][0]:
        _img(tmp_path / f)
    with pytest.raises(DataLayoutError, match=r"does not follow the 'ufpr' layout.*C<subject>_S<session>.*--layout per-subject"):
        scan(tmp_path, layout="ufpr")


def test_subject_regex_overrides_the_layout(tmp_path):
    _img(tmp_path / "all" / "id7_L_1.png")
    _img(tmp_path / "all" / "id8_R_1.png")
    ds = scan(tmp_path, subject_regex=r"id(?P<subject>\d+)_(?P<eye>[LR])")
    assert [(s.subject, s.eye) for s in ds.samples] == [("7", "L"), ("8", "R")]
    assert ds.samples[0].identity == "7/L"


def test_regex_without_subject_group_is_refused(tmp_path):
    _img(tmp_path / "a" / "1.png")
    with pytest.raises(DataLayoutError, match="subject"):
        scan(tmp_path, subject_regex=r"(\d+)")


def test_loose_images_have_no_layout(tmp_path):
    _img(tmp_path / "1.png")
    with pytest.raises(DataLayoutError, match="no subject folders"):
        detect_layout(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DataLayoutError, match="does not exist"):
        scan(tmp_path / "nope")
