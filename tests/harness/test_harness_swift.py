"""Swift sources of the iOS harness: syntax, iOS 12 API rules, Codable keys = results schema keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.bench import harness_checks as hc
from toolchain.bench.schema import PLAN_SCHEMA, RESULTS_SCHEMA

REPO = Path(__file__).resolve().parents[2]
IOS = REPO / "ios_harness"
SWIFT = sorted(IOS.rglob("*.swift"))


def test_there_is_an_app_core_and_tests():
    names = {p.relative_to(IOS).as_posix() for p in SWIFT}
    assert {"OcularBench/Core/BenchRunner.swift", "OcularBench/CoreML/CoreMLBackend.swift",
            "OcularBenchTests/FixtureDecodingTests.swift"} <= names


@pytest.mark.parametrize("path", SWIFT, ids=lambda p: p.name)
def test_swift_parses_without_error_nodes(path):
    assert hc.syntax_errors(path, "swift") == []


@pytest.mark.parametrize("path", SWIFT, ids=lambda p: p.name)
def test_no_post_ios12_api_outside_availability_checks(path):
    assert hc.ios12_violations(path) == []


def test_core_does_not_import_uikit():
    """The core (plan, timing loop, results) stays UIKit-free, so it could move to a package or macOS."""
    for f in (IOS / "OcularBench" / "Core").glob("*.swift"):
        assert "import UIKit" not in f.read_text(), f


def _sub(schema: dict, *path: str) -> dict:
    node = schema
    for p in path:
        node = node["properties"][p] if p != "items" else node["items"]
    if "anyOf" in node:
        node = next(s for s in node["anyOf"] if s.get("type") == "object")
    return node


def test_codable_keys_match_the_schemas():
    mapping = {
        "BenchResult": RESULTS_SCHEMA, "ArtifactInfo": _sub(RESULTS_SCHEMA, "artifact"),
        "DeviceInfo": _sub(RESULTS_SCHEMA, "device"), "AppInfo": _sub(RESULTS_SCHEMA, "app"),
        "RuntimeInfo": _sub(RESULTS_SCHEMA, "runtime"), "ProtocolInfo": _sub(RESULTS_SCHEMA, "protocol"),
        "BenchPlan": PLAN_SCHEMA, "PlanRun": _sub(PLAN_SCHEMA, "runs", "items"),
        "PlanArtifact": _sub(PLAN_SCHEMA, "runs", "items", "artifact"),
        "TensorSpec": _sub(PLAN_SCHEMA, "runs", "items", "input"),
        "OutputSpec": _sub(PLAN_SCHEMA, "runs", "items", "output"),
        "Quantization": _sub(PLAN_SCHEMA, "runs", "items", "input", "quantization"),
    }
    core = sorted((IOS / "OcularBench" / "Core").glob("*.swift"))
    assert hc.schema_key_problems(core, mapping) == []


def test_every_nullable_result_key_is_encoded_explicitly():
    """Synthesized Encodable drops nil keys; the schema requires them, so encode(to:) must name each key."""
    text = (IOS / "OcularBench" / "Core" / "BenchResult.swift").read_text()
    for key in ("error", "planId", "loadNs", "compileNs", "firstInferenceNs", "featureDim", "featureSample",
                "marketingName", "lowPowerMode", "batteryState", "cpu", "cores", "computeUnits", "delegate", "threads"):
        assert f"try c.encode({key}, forKey: .{key})" in text, key


# ------------------------------------------------------------------ the checks catch what they should

def test_a_broken_swift_file_fails(tmp_path):
    bad = tmp_path / "Broken.swift"
    bad.write_text("final class Broken {\n    func f( -> Int { return 1 }\n")
    problems = hc.syntax_errors(bad, "swift")
    assert problems and "Broken.swift:" in problems[0]


def test_ios13_api_fails_unless_guarded(tmp_path):
    src = tmp_path / "New.swift"
    src.write_text(
        "import UIKit\n"
        "func a() { view.backgroundColor = UIColor.systemBackground }\n"            # line 2: iOS 13
        "func b() async -> Int { return await c() }\n"                             # line 3: async/await
        "func d() { if #available(iOS 16.0, *) { u = MLComputeUnits.cpuAndNeuralEngine }"
        " else { u = MLComputeUnits.cpuAndNeuralEngine } }\n"                      # line 4: else branch only
        "@available(iOS 13.0, *)\nfunc e() { let c = UIColor.label }\n"            # fine
        "func f() { DispatchQueue.main.async { }; _ = DispatchQueue(label: \"l\") } // SwiftUI\n"  # fine
        "func g() { if #available(iOS 13.0, *) { u = MLComputeUnits.cpuAndNeuralEngine } }\n"  # line 8: 13 < 16
    )
    found = [(int(v.split(":")[1]), v.split(": ", 1)[1].split(" ")[0]) for v in hc.ios12_violations(src)]
    assert found == [(2, "systemBackground"), (3, "async"), (3, "await"), (4, "cpuAndNeuralEngine"),
                     (8, "cpuAndNeuralEngine")]
    swiftui = tmp_path / "UI.swift"
    swiftui.write_text("import SwiftUI\nstruct V: View { var body: some View { Text(\"x\") } }\n")
    assert {v.split(": ", 1)[1].split(" ")[0] for v in hc.ios12_violations(swiftui)} == {"SwiftUI", "opaque_type"}


def test_a_renamed_codable_key_fails(tmp_path):
    text = (IOS / "OcularBench" / "Core" / "BenchResult.swift").read_text()
    broken = tmp_path / "BenchResult.swift"
    broken.write_text(text.replace('case latencyNs = "latency_ns"', 'case latencyNs = "latencies_ns"'))
    problems = hc.schema_key_problems([broken], {"BenchResult": RESULTS_SCHEMA})
    assert "BenchResult lacks schema key 'latency_ns'" in problems
    assert "BenchResult writes 'latencies_ns', which the schema does not define" in problems
