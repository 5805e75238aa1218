"""The one JSON reader: no content crashes a caller; every problem is one typed error naming the source."""

from __future__ import annotations

import os

import pytest

from toolchain import jsonio
from toolchain.errors import JsonInputError, SchemaError


@pytest.mark.parametrize("data, problem", [
    (b"[" * 5000 + b"]" * 5000, "nested deeper than 64"),
    (b'{"a": ' + b"[" * 65 + b"]" * 65 + b"}", "nested deeper than 64"),
    (b'{"latency_ns": [1, 10' + b"0" * 400 + b"]}", r"out of range \(at most 64-bit\)"),
    (b'{"n": 9223372036854775808}', r"out of range \(at most 64-bit\)"),
    (b'{"n": -9223372036854775808}', r"out of range \(at most 64-bit\)"),
    (b'{"x": 1e400}', "not a finite double"),
    (b'{"x": [0.5, -1e999]}', "not a finite double"),
    (b'{"x": NaN}', "NaN is not a JSON number"),
    (b'{"x": [Infinity]}', "Infinity is not a JSON number"),
    (b'{"n": ' + b"7" * 5000 + b"}", "4300"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"a": 1', "truncated?"),
    (b"   ", "empty file"),
])
def test_bad_content_is_one_typed_error(data, problem):
    with pytest.raises(JsonInputError, match=problem) as e:
        jsonio.loads(data, "dev/r.json")
    assert str(e.value).startswith("dev/r.json: ")


def test_good_content_and_limits_at_the_edge():
    assert jsonio.loads(b'{"n": 9223372036854775807, "s": "[[[[", "b": [true, 1]}', "x") == \
        {"n": 9223372036854775807, "s": "[[[[", "b": [True, 1]}
    assert jsonio.loads(b"[" * 64 + b"]" * 64, "x") is not None
    assert jsonio.nesting_depth(b'["\\"[[", {"a": [[]]}]') == 4
    with pytest.raises(SchemaError, match="too large"):
        jsonio.loads(b"{}" + b" " * 100, "x", max_bytes=50, error=SchemaError)


def test_files_that_are_not_regular_are_refused_without_opening(tmp_path):
    fifo = tmp_path / "results.json"
    os.mkfifo(fifo)
    with pytest.raises(JsonInputError, match="not a regular file"):  # opening it would block forever
        jsonio.read(fifo)
    with pytest.raises(JsonInputError, match="a folder"):
        jsonio.read(tmp_path)
    with pytest.raises(JsonInputError, match="cannot read"):
        jsonio.read(tmp_path / "missing.json")
    (tmp_path / "big.json").write_bytes(b" " * 101)
    with pytest.raises(JsonInputError, match="too large"):
        jsonio.read(tmp_path / "big.json", max_bytes=100)
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(JsonInputError, match="expected a JSON object"):
        jsonio.read_object(tmp_path / "list.json")
