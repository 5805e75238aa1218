"""Results schema v1 and v2: the shared fixtures validate, malformed results fail with every problem named."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from toolchain.bench import schema
from toolchain.errors import SchemaError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "results"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.mark.parametrize("name", ["ok", "error", "partial"])
def test_fixtures_validate(name):
    r = schema.load_result(FIXTURES / f"{name}.json")
    assert r["status"] == name
    assert r["schema_version"] == 1  # v1 files written before v2 still read


def test_v2_fixtures_validate_and_v2_rules_hold():
    from toolchain.bench.measures import partly_delegated

    ios, android = schema.load_result(FIXTURES / "v2_ios.json"), schema.load_result(FIXTURES / "v2_android.json")
    assert ios["schema_version"] == android["schema_version"] == schema.SCHEMA_VERSION == 2
    assert partly_delegated(android) is True and partly_delegated(ios) is True  # 3 Core ML ops left on the CPU
    assert partly_delegated(fixture("ok")) is None  # v1: not recorded
    bad = copy.deepcopy(android)
    bad["native_latency_ns"] = bad["native_latency_ns"][:-1]
    with pytest.raises(SchemaError, match="native_latency_ns: 36 values for 37 latency samples"):
        schema.validate_result(bad)
    del bad["memory"]
    with pytest.raises(SchemaError, match="'memory' is a required property"):
        schema.validate_result(bad)
    v1 = fixture("ok")
    v1["warm_load_ns"] = [1]
    with pytest.raises(SchemaError, match="warm_load_ns: schema v2 fields in a schema_version 1 file"):
        schema.validate_result(v1)
    wrong = copy.deepcopy(ios)
    wrong["placement"]["ops_by_device"] = {"tpu": 3}
    with pytest.raises(SchemaError, match="placement/ops_by_device"):
        schema.validate_result(wrong)


def test_fixture_contents_are_what_other_sides_test_against():
    ok, err, part = fixture("ok"), fixture("error"), fixture("partial")
    assert ok["device"]["identifier"] == "iPhone11,8" and ok["runtime"]["name"] == "coreml"
    assert len(ok["latency_ns"]) == ok["protocol"]["iterations"] == 30
    assert err["latency_ns"] == [] and err["error"]
    assert part["device"]["platform"] == "android" and 0 < len(part["latency_ns"]) < part["protocol"]["iterations"]


def test_committed_json_schema_is_up_to_date():
    assert schema.DOC_PATH.read_text() == schema.schema_text(), (
        "docs/results-schema.json is stale: run python -m toolchain.bench.schema --write")
    assert schema._main(["--check"]) == 0


def test_committed_json_schema_is_valid_under_its_meta_schema():
    """A user's ``jsonschema.validate(x, schema)`` first checks the schema itself (issue 16: "$id" with a fragment
    made every call raise SchemaError); the shared fixtures validate with the plain library too."""
    import jsonschema

    doc = json.loads(schema.DOC_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(doc)
    jsonschema.Draft202012Validator.check_schema(schema.PLAN_SCHEMA)
    assert "#" not in doc["$id"] and doc["$anchor"] == "result-v2"
    for name in ("ok", "error", "partial", "v2_ios", "v2_android"):
        jsonschema.validate(fixture(name), doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**fixture("ok"), "schema_version": 2}, doc)


def _broken(mutate) -> dict:
    r = copy.deepcopy(fixture("ok"))
    mutate(r)
    return r


BROKEN = {
    "float nanoseconds": (lambda r: r["latency_ns"].__setitem__(0, 6.5e6), "latency_ns/0"),
    "negative nanoseconds": (lambda r: r.__setitem__("load_ns", -1), "load_ns"),
    "missing key": (lambda r: r.pop("first_inference_ns"), "first_inference_ns"),
    "unknown key": (lambda r: r.__setitem__("latency_ms", [1]), "latency_ms"),
    "bad run id": (lambda r: r.__setitem__("run_id", "a/b"), "run_id"),
    "bad sha": (lambda r: r["artifact"].__setitem__("sha256", "xyz"), "artifact/sha256"),
    "bad thermal": (lambda r: r["device"].__setitem__("thermal_state_end", "hot"), "thermal_state_end"),
    "not utc": (lambda r: r.__setitem__("created_at", "2025-03-01T14:22:05+02:00"), "created_at"),
    "impossible date": (lambda r: r.__setitem__("created_at", "2025-02-30T14:22:05Z"), "created_at"),
    "ok with too few samples": (lambda r: r["latency_ns"].pop(), "exactly protocol.iterations=30"),
    "ok with an error": (lambda r: r.__setitem__("error", "boom"), "must be null when status is ok"),
    "error without message": (lambda r: r.update(status="error", latency_ns=[]), "needs a message"),
    "error with samples": (lambda r: r.update(status="error", error="x"), "must have no samples"),
    "partial with all samples": (lambda r: r.update(status="partial", error="x"), "fewer than 30"),
    "stats instead of samples": (lambda r: r.update(median_ns=6_000_000), "median_ns"),
    "wrong compute unit": (lambda r: r["runtime"].__setitem__("compute_units", "gpu"), "not a coreml compute unit"),
    "sample longer than dim": (lambda r: r.update(feature_dim=4), "feature_dim is 4"),
    "zero iterations": (lambda r: r["protocol"].__setitem__("iterations", 0), "protocol/iterations"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_malformed_results_are_rejected(case):
    mutate, expected = BROKEN[case]
    with pytest.raises(SchemaError) as e:
        schema.validate_result(_broken(mutate), source="phone.json")
    assert "phone.json" in str(e.value)
    assert expected in str(e.value)


def test_every_problem_is_named_at_once():
    r = _broken(lambda r: r.update(run_id="", load_ns="12"))
    r["device"]["cores"] = 0
    with pytest.raises(SchemaError) as e:
        schema.validate_result(r, "x.json")
    msg = str(e.value)
    assert "3 problems" in msg and "run_id" in msg and "load_ns" in msg and "device/cores" in msg


def test_newer_schema_version_says_upgrade():
    with pytest.raises(SchemaError, match="upgrade the toolchain"):
        schema.validate_result(_broken(lambda r: r.update(schema_version=3)), "x.json")


def test_load_result_errors_name_the_file(tmp_path):
    bad = tmp_path / "trunc.json"
    bad.write_text(json.dumps(fixture("ok"))[:-20])
    with pytest.raises(SchemaError, match="trunc.json: not valid JSON"):
        schema.load_result(bad)
    with pytest.raises(SchemaError, match="cannot read"):
        schema.load_result(tmp_path / "missing.json")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (schema.MAX_RESULT_BYTES + 1))
    with pytest.raises(SchemaError, match="too large"):
        schema.load_result(big)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe{}")
    with pytest.raises(SchemaError, match="not UTF-8"):
        schema.load_result(binary)


def _plan() -> dict:
    return {
        "plan_version": 1, "plan_id": "p1", "created_at": "2025-03-01T00:00:00Z", "device": "iphone6",
        "platform": "ios",
        "protocol": {"warmup": 1, "iterations": 2, "input_source": "image", "input_seed": None, "cooldown_ms": 0},
        "inputs": ["inputs/fixed_input.png"],
        "runs": [{"key": "a-all", "artifact": {"name": "a", "format": "coreml", "path": "artifacts/a/a.mlmodel",
                                               "sha256": "0" * 64, "precision": "fp16", "size_bytes": 10},
                  "compute_units": "all", "delegate": None, "threads": None,
                  "input": {"name": "pixels", "shape": [3, 8, 8], "layout": "chw", "dtype": "float32"},
                  "output": {"name": "features", "dim": 4}, "fixed_input": "inputs/fixed_input.png",
                  "reference_sample": [0.5, 0.25]}],
    }


def test_plan_validates_and_semantic_rules_fire():
    schema.validate_plan(_plan(), "plan.json")
    p = _plan()
    p["runs"].append(copy.deepcopy(p["runs"][0]))
    p["runs"][1]["artifact"]["path"] = "../../etc/passwd"
    p["runs"][1]["compute_units"] = "nnapi"
    with pytest.raises(SchemaError) as e:
        schema.validate_plan(p, "plan.json")
    msg = str(e.value)
    assert "duplicate keys a-all" in msg and "relative to the plan folder" in msg and "'nnapi'" in msg
