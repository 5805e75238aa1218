"""The committed Xcode project and Info.plist, checked without Xcode; and that the checks catch breakage."""

from __future__ import annotations

import plistlib
import re
import shutil
from pathlib import Path

import pytest

from tests.harness import _project_checks as hc

REPO = Path(__file__).resolve().parents[2]
IOS = REPO / "ios_harness"
PROJECT = IOS / "OcularBench.xcodeproj"


def test_project_is_consistent():
    assert hc.pbxproj_problems(PROJECT) == []


def test_project_facts():
    from pbxproj import XcodeProject

    proj = XcodeProject.load(str(PROJECT / "project.pbxproj"))
    targets = {t.name for t in proj.objects.get_targets()}
    assert targets == {"OcularBench", "OcularBenchTests"}
    text = (PROJECT / "project.pbxproj").read_text()
    assert set(re.findall(r"IPHONEOS_DEPLOYMENT_TARGET = ([\d.]+);", text)) == {"12.0"}
    assert "TEST_HOST" in text and "path = ../tests/fixtures/results" in text


def test_scheme_points_at_existing_targets():
    scheme = (PROJECT / "xcshareddata" / "xcschemes" / "OcularBench.xcscheme").read_text()
    ids = set(re.findall(r'BlueprintIdentifier = "([0-9A-F]{24})"', scheme))
    text = (PROJECT / "project.pbxproj").read_text()
    assert ids and all(re.search(rf"^\t\t{i} /\* OcularBench\w* \*/ = {{", text, re.M) for i in ids)


def test_info_plist():
    assert hc.info_plist_problems(IOS / "OcularBench" / "Info.plist") == []
    info = plistlib.loads((IOS / "OcularBench" / "Info.plist").read_bytes())
    assert info["UIFileSharingEnabled"] is True and info["LSSupportsOpeningDocumentsInPlace"] is True


@pytest.fixture
def copy(tmp_path) -> Path:
    """ios_harness and the fixtures it references, in a scratch tree."""
    shutil.copytree(IOS, tmp_path / "ios_harness")
    shutil.copytree(REPO / "tests" / "fixtures" / "results", tmp_path / "tests" / "fixtures" / "results")
    assert hc.pbxproj_problems(tmp_path / "ios_harness" / "OcularBench.xcodeproj") == []
    return tmp_path / "ios_harness"


def _edit(copy: Path, old: str, new: str, count: int = 1) -> None:
    pbx = copy / "OcularBench.xcodeproj" / "project.pbxproj"
    text = pbx.read_text()
    assert old in text
    pbx.write_text(text.replace(old, new, count))


def test_missing_file_is_caught(copy):
    (copy / "OcularBench" / "Core" / "Clock.swift").unlink()
    problems = hc.pbxproj_problems(copy / "OcularBench.xcodeproj")
    assert any("OcularBench/Core/Clock.swift, which does not exist" in p for p in problems), problems


def test_swift_file_missing_from_the_project_is_caught(copy):
    (copy / "OcularBench" / "Core" / "Extra.swift").write_text("struct Extra {}\n")
    problems = hc.pbxproj_problems(copy / "OcularBench.xcodeproj")
    assert "OcularBench/Core/Extra.swift is not compiled by target OcularBench" in problems


def test_dangling_reference_is_caught(copy):
    pbx = (copy / "OcularBench.xcodeproj" / "project.pbxproj").read_text()
    line = next(ln for ln in pbx.splitlines() if "Clock.swift */ = {isa = PBXFileReference" in ln)
    _edit(copy, line + "\n", "")
    problems = hc.pbxproj_problems(copy / "OcularBench.xcodeproj")
    assert any("dangling reference" in p for p in problems), problems


def test_missing_semicolon_and_deployment_target_are_caught(copy):
    _edit(copy, "IPHONEOS_DEPLOYMENT_TARGET = 12.0;", "IPHONEOS_DEPLOYMENT_TARGET = 13.0;")
    _edit(copy, "SWIFT_VERSION = 5.0;", "SWIFT_VERSION = 5.0")
    problems = hc.pbxproj_problems(copy / "OcularBench.xcodeproj")
    assert any("IPHONEOS_DEPLOYMENT_TARGET = 13.0" in p for p in problems), problems
    assert any("line without ';'" in p and "SWIFT_VERSION" in p for p in problems), problems


def test_missing_resource_is_caught(copy):
    pbx = (copy / "OcularBench.xcodeproj" / "project.pbxproj").read_text()
    line = next(ln for ln in pbx.splitlines() if ln.endswith("/* BenchPlan in Resources */,"))
    _edit(copy, line + "\n", "")
    problems = hc.pbxproj_problems(copy / "OcularBench.xcodeproj")
    assert "BenchPlan is not a resource of target OcularBench" in problems


def test_info_plist_without_file_sharing_fails(tmp_path):
    info = plistlib.loads((IOS / "OcularBench" / "Info.plist").read_bytes())
    del info["UIFileSharingEnabled"]
    info["UIApplicationSceneManifest"] = {}
    p = tmp_path / "Info.plist"
    p.write_bytes(plistlib.dumps(info))
    problems = hc.info_plist_problems(p)
    assert len(problems) == 2 and "UIFileSharingEnabled" in problems[0] and "iOS 13" in problems[1]


def test_a_file_in_both_targets_is_caught(copy):
    """Plan.swift compiled into the test bundle too: two distinct `BenchPlan` types at run time."""
    # What Xcode writes when Plan.swift's target membership box is ticked for the tests too.
    build_file = "\t\t0A0A0A0A0A0A0A0A0A0A0A0A /* Plan.swift in Sources */ = {isa = PBXBuildFile; " \
                 "fileRef = 59330AB0E7293B7117234CEE /* Plan.swift */; };\n"
    _edit(copy, "/* Begin PBXBuildFile section */\n", "/* Begin PBXBuildFile section */\n" + build_file)
    _edit(copy, "\t\t\t\tCA6D6E412B2DF2EFA235EB1D /* PlanRunTests.swift in Sources */,\n",
          "\t\t\t\tCA6D6E412B2DF2EFA235EB1D /* PlanRunTests.swift in Sources */,\n"
          "\t\t\t\t0A0A0A0A0A0A0A0A0A0A0A0A /* Plan.swift in Sources */,\n")
    problems = hc.pbxproj_problems(copy / "OcularBench.xcodeproj")
    assert problems == ["OcularBench/Core/Plan.swift is compiled by both OcularBench and OcularBenchTests: "
                        "keep it in OcularBench only"]


def test_a_test_host_that_names_no_built_app_is_caught(copy):
    _edit(copy, 'TEST_HOST = "$(BUILT_PRODUCTS_DIR)/OcularBench.app/OcularBench";',
          'TEST_HOST = "$(BUILT_PRODUCTS_DIR)/Ocular.app/Ocular";')
    problems = hc.pbxproj_problems(copy / "OcularBench.xcodeproj")
    assert problems == ["OcularBenchTests Debug: TEST_HOST is '$(BUILT_PRODUCTS_DIR)/Ocular.app/Ocular'; "
                        "the app target builds '$(BUILT_PRODUCTS_DIR)/OcularBench.app/OcularBench'"]


def test_a_test_target_without_its_host_dependency_is_caught(copy):
    _edit(copy, "\t\t\t\tE54DEBD65D8142E7785275AA /* PBXTargetDependency */,\n", "")
    problems = hc.pbxproj_problems(copy / "OcularBench.xcodeproj")
    assert any("does not depend on OcularBench" in p for p in problems), problems


def test_the_core_ml_comment_says_the_bundled_plan_is_compiled_on_the_device():
    """The defect: the comment said Xcode compiles the bundled model; BenchPlan is a folder reference, so
    Xcode copies it verbatim and every run compiles on the device (kept out of latency as compile_ns)."""
    pbx = (IOS / "OcularBench.xcodeproj" / "project.pbxproj").read_text()
    assert re.search(r"/\* BenchPlan \*/ = \{isa = PBXFileReference; lastKnownFileType = folder;", pbx)
    doc = (IOS / "OcularBench" / "CoreML" / "CoreMLBackend.swift").read_text().split("final class")[0]
    assert "Xcode compiled" not in doc and "folder reference" in doc and "on the device" in doc
