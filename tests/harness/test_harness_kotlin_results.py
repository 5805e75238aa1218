"""Results written by the Kotlin core validate against the Python schema (the one source).

`make test` runs android_harness/core/run-tests.sh first, whose JUnit tests write one result of
each status into android_harness/core/build/kotlin-results. If those are missing or older than
the Kotlin sources, this test runs the script itself (needs kotlinc); without kotlinc it is
skipped, saying why — never passed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from toolchain.bench.schema import load_result, validate_result
from toolchain.errors import SchemaError

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "android_harness" / "core"
OUT = CORE / "build" / "kotlin-results"


def _kotlinc() -> str | None:
    env = os.environ.get("KOTLINC")
    for cand in (env, str(REPO / ".tools" / "node_modules" / "kotlin-compiler" / "bin" / "kotlinc"), shutil.which("kotlinc")):
        if cand and Path(cand).exists():
            return cand
    return None


def _fresh() -> bool:
    files = list(OUT.glob("*.json"))
    if not files:
        return False
    newest_source = max(p.stat().st_mtime for p in CORE.rglob("*.kt") if "build" not in p.parts)
    return min(p.stat().st_mtime for p in files) >= newest_source


@pytest.fixture(scope="module")
def kotlin_results() -> list[Path]:
    if not _fresh():
        kotlinc = _kotlinc()
        if kotlinc is None:
            pytest.skip("kotlinc not found (KOTLINC, .tools/node_modules/kotlin-compiler, PATH): "
                        "the Kotlin writer could not be run; `make setup` installs it")
        proc = subprocess.run(["bash", str(CORE / "run-tests.sh")], env={**os.environ, "KOTLINC": kotlinc},
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return sorted(OUT.glob("*.json"))


def test_kotlin_results_validate(kotlin_results):
    statuses = {}
    for path in kotlin_results:
        r = load_result(path)
        statuses[r["status"]] = r
    assert set(statuses) == {"ok", "partial", "error"}
    ok = statuses["ok"]
    assert ok["runtime"] == {"name": "litert", "version": "fake-1.0", "compute_units": "cpu", "delegate": "xnnpack",
                             "threads": 4}
    assert ok["latency_ns"] == [1_000_000 + i * 1_000 for i in range(4, 9)]
    assert ok["compile_ns"] == 30_000_000 and ok["load_ns"] == 7_000_000
    assert len(statuses["partial"]["latency_ns"]) == 2
    assert statuses["error"]["first_inference_ns"] is None and "NNAPI" in statuses["error"]["error"]


def test_a_malformed_kotlin_result_is_rejected(kotlin_results, tmp_path):
    r = json.loads(next(p for p in kotlin_results if '"status": "ok"' in p.read_text()).read_text())
    r["latency_ns"] = [float(v) / 1e6 for v in r["latency_ns"]]  # milliseconds as floats: the classic mistake
    del r["device"]["thermal_state_end"]
    with pytest.raises(SchemaError) as e:
        validate_result(r, "kotlin.json")
    assert "latency_ns/0" in str(e.value) and "thermal_state_end" in str(e.value)
