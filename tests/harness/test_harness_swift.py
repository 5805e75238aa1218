"""Swift sources of the iOS harness: what the Linux Swift build does not cover.

The core and its XCTests are compiled and run by ios_harness/run-tests.sh (test_app_builds.py reports
it). The UIKit / Core ML files need Apple's SDKs: here they are only parsed. The iOS 12 availability
lint and the Codable keys = results schema check apply to every file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.harness import _swift_checks as sc
from toolchain.bench.schema import PLAN_SCHEMA, RESULTS_SCHEMA

REPO = Path(__file__).resolve().parents[2]
IOS = REPO / "ios_harness"
SWIFT = sorted(p for p in IOS.rglob("*.swift") if ".build" not in p.parts and p.name != "Package.swift")
#: Compiled by the Swift package (Package.swift: the core target and the tests it does not exclude).
SWIFTPM = sorted((IOS / "OcularBench" / "Core").glob("*.swift")) + [
    IOS / "OcularBenchTests" / "BenchRunnerTests.swift", IOS / "OcularBenchTests" / "FixtureDecodingTests.swift"]
XCODE_ONLY = [p for p in SWIFT if p not in SWIFTPM]


def test_there_is_an_app_core_and_tests():
    names = {p.relative_to(IOS).as_posix() for p in SWIFT}
    assert {"OcularBench/Core/BenchRunner.swift", "OcularBench/CoreML/CoreMLBackend.swift",
            "OcularBenchTests/FixtureDecodingTests.swift"} <= names
    assert {p.relative_to(IOS).as_posix() for p in XCODE_ONLY} >= {"OcularBench/App/AppDelegate.swift",
                                                                    "OcularBenchTests/PlanRunTests.swift"}


def test_package_swift_builds_the_files_the_xcode_project_builds():
    """Package.swift's folders, excludes and resource link point at real files: SwiftPM and Xcode share them."""
    text = (IOS / "Package.swift").read_text()
    assert 'path: "OcularBench/Core"' in text and 'path: "OcularBenchTests"' in text
    excluded = re.search(r"exclude: \[([^\]]*)\]", text).group(1)
    assert sorted(re.findall(r'"([^"]+)"', excluded)) == ["Info.plist", "PlanRunTests.swift"]
    link = IOS / "OcularBenchTests" / "Fixtures" / "results"
    assert link.is_symlink() and link.resolve() == (REPO / "tests" / "fixtures" / "results").resolve()
    assert '.copy("Fixtures/results")' in text


@pytest.mark.parametrize("path", XCODE_ONLY, ids=lambda p: p.name)
def test_xcode_only_swift_parses_without_error_nodes(path):
    assert sc.syntax_errors(path, "swift") == []


@pytest.mark.parametrize("path", SWIFT, ids=lambda p: p.name)
def test_no_post_ios12_api_outside_availability_checks(path):
    assert sc.ios12_violations(path, sc.available_declarations(SWIFT)) == []


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
    assert sc.schema_key_problems(core, mapping) == []


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
    problems = sc.syntax_errors(bad, "swift")
    assert problems and "Broken.swift:" in problems[0]


def _found(path: Path, own=None) -> list[tuple[int, str]]:
    return [(int(v.split(":")[1]), v.split(": ", 1)[1].split(" ")[0]) for v in sc.ios12_violations(path, own)]


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
    assert _found(src) == [(2, "systemBackground"), (3, "async"), (3, "await"), (4, "cpuAndNeuralEngine"),
                           (8, "cpuAndNeuralEngine")]
    swiftui = tmp_path / "UI.swift"
    swiftui.write_text("import SwiftUI\nstruct V: View { var body: some View { Text(\"x\") } }\n")
    assert {v.split(": ", 1)[1].split(" ")[0] for v in sc.ios12_violations(swiftui)} == {"SwiftUI", "opaque_type"}


def test_implicit_members_and_listed_apis_fail(tmp_path):
    src = tmp_path / "Listed.swift"
    src.write_text(
        "func a(c: MLModelConfiguration) { c.computeUnits = .cpuAndNeuralEngine }\n"        # 1: implicit member
        "func b() { let u = URL.documentsDirectory; let k = ContinuousClock() }\n"          # 2: 16, 16
        "func c() { let i = UIImage(systemName: \"gear\"); let j = UIImage(named: \"x\") }\n"  # 3: label (13); named: fine
        "func d(u: URL) { MLModel.load(contentsOf: u, configuration: cfg) { r in } }\n"     # 4: iOS 14
        "func e(u: URL) { _ = try MLModel(contentsOf: u); _ = plan.load(from: u) }\n"        # fine: iOS 11, not MLModel
    )
    assert _found(src) == [(1, "cpuAndNeuralEngine"), (2, "documentsDirectory"), (2, "ContinuousClock"),
                           (3, "systemName"), (4, "load")]


def test_own_available_declarations_and_every_guard_form(tmp_path):
    src = tmp_path / "Guards.swift"
    src.write_text(
        "@available(iOS 16.0, *)\n"
        "func newer() -> Int { return 1 }\n"
        "func a() { _ = newer() }\n"                                                         # 3: unguarded own API
        "func b() { if #unavailable(iOS 16) { x = .cpuAndNeuralEngine } else { y = .cpuAndNeuralEngine } }\n"  # 4: then only
        "func c() {\n"
        "    _ = newer()\n"                                                                  # 6: before the guard
        "    guard #available(iOS 16, *) else { _ = newer(); return }\n"                     # 7: in its else body
        "    z = .cpuAndNeuralEngine\n"                                                      # fine: after the guard
        "    _ = newer()\n"                                                                  # fine
        "}\n"
        "func d() { if #available(iOS 16.0, *) { _ = newer() } }\n"                          # fine
    )
    assert _found(src) == [(3, "newer"), (4, "cpuAndNeuralEngine"), (6, "newer"), (7, "newer")]
    # Declared in one file, used in another: the app-wide table finds it.
    user = tmp_path / "User.swift"
    user.write_text("func e() { _ = newer() }\n")
    assert _found(user) == []
    assert _found(user, sc.available_declarations([src, user])) == [(1, "newer")]


def test_a_name_also_declared_without_available_is_not_guessed(tmp_path):
    src = tmp_path / "Overload.swift"
    src.write_text("@available(iOS 16.0, *)\nfunc f(_ x: Int) {}\nfunc f(_ x: String) {}\nfunc g() { f(\"a\") }\n")
    assert sc.available_declarations([src]) == {}


def test_a_renamed_codable_key_fails(tmp_path):
    text = (IOS / "OcularBench" / "Core" / "BenchResult.swift").read_text()
    broken = tmp_path / "BenchResult.swift"
    broken.write_text(text.replace('case latencyNs = "latency_ns"', 'case latencyNs = "latencies_ns"'))
    problems = sc.schema_key_problems([broken], {"BenchResult": RESULTS_SCHEMA})
    assert "BenchResult lacks schema key 'latency_ns'" in problems
    assert "BenchResult writes 'latencies_ns', which the schema does not define" in problems
