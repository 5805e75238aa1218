"""What the harness apps must do on real devices, checked in their sources (no Xcode or Android SDK here).

The behaviour itself is unit-tested where it lives: the Kotlin core's JUnit tests (timed region, progress
throttle, launch id, GPU options, LaunchGuard; run by android_harness/core/run-tests.sh) and the XCTests in
ios_harness/OcularBenchTests (same, plus plan precedence; compiled and run by ios_harness/run-tests.sh). These checks cover the parts
only the app modules can do, which nothing here compiles: each fails on the sources before the fixes.
"""

from __future__ import annotations

import plistlib
import re
from pathlib import Path

from tests.harness import _project_checks as pc
from tests.harness import _swift_checks as sc
from toolchain.bench.schema import TIMED_REGIONS

REPO = Path(__file__).resolve().parents[2]
IOS = REPO / "ios_harness" / "OcularBench"
APP = REPO / "android_harness" / "app" / "src" / "main"
CORE = REPO / "android_harness" / "core" / "src" / "main" / "kotlin" / "org" / "oculardeploy" / "bench" / "core"


def _function(path: Path, language: str, name: str) -> str:
    """The source text of the function ``name`` (tree-sitter, so comments and strings elsewhere do not count)."""
    tree = sc.parse(path, language)
    src = path.read_bytes()
    for node in sc._walk(tree.root_node):
        if node.type == "function_declaration" and name.encode() in src[node.start_byte:node.end_byte].split(b"(")[0]:
            return src[node.start_byte:node.end_byte].decode()
    raise AssertionError(f"no function {name} in {path}")


def test_ios_launch_storyboard_is_named_in_info_plist_and_in_the_app_target():
    """UILaunchScreen needs iOS 14: iOS 12/13 need a launch storyboard to run full screen."""
    info = plistlib.loads((IOS / "Info.plist").read_bytes())
    assert "UILaunchScreen" not in info
    name = info["UILaunchStoryboardName"]
    board = IOS / f"{name}.storyboard"
    assert board.is_file() and 'launchScreen="YES"' in board.read_text()
    from pbxproj import XcodeProject

    proj = XcodeProject.load(str(REPO / "ios_harness" / "OcularBench.xcodeproj" / "project.pbxproj"))
    objs = proj.objects
    target = next(t for t in objs.get_targets() if t.name == "OcularBench")
    resources = [objs[f]["fileRef"] for p in target.buildPhases if objs[p].isa == "PBXResourcesBuildPhase"
                 for f in objs[p].files]
    assert any(objs[r]["path"] == board.name for r in resources)
    assert pc.pbxproj_problems(REPO / "ios_harness" / "OcularBench.xcodeproj") == []


def test_ios_timing_loop_drains_an_autorelease_pool_per_sample_and_reads_the_features():
    body = _function(IOS / "Core" / "BenchRunner.swift", "swift", "timeOne")
    assert "drainingAutoreleasePool" in body and "b.run()" in body and "b.output()" in body
    helper = _function(IOS / "Core" / "BenchRunner.swift", "swift", "drainingAutoreleasePool")
    assert re.search(r"#if canImport\(ObjectiveC\)\s+return try autoreleasepool", helper)


def test_both_apps_record_the_same_timed_region():
    swift = re.search(r'timedRegionValue = "([^"]+)"', (IOS / "Core" / "BenchResult.swift").read_text())
    kotlin = re.search(r'TIMED_REGION = "([^"]+)"', (CORE / "BenchResult.kt").read_text())
    assert swift and kotlin and swift.group(1) == kotlin.group(1) == "inference+read_features"
    assert swift.group(1) in TIMED_REGIONS
    kt = _function(CORE / "BenchRunner.kt", "kotlin", "timeOne")
    assert "b.run()" in kt and "b.output()" in kt


def test_android_activity_does_not_start_a_second_benchmark_on_recreation():
    manifest = (APP / "AndroidManifest.xml").read_text()
    changes = re.search(r'android:configChanges="([^"]+)"', manifest)
    assert changes, "MainActivity declares no configChanges"
    for c in ("uiMode", "fontScale", "locale", "screenSize", "smallestScreenSize", "screenLayout", "orientation"):
        assert c in changes.group(1).split("|"), c
    activity = (APP / "kotlin" / "org" / "oculardeploy" / "bench" / "MainActivity.kt").read_text()
    assert "LaunchGuard.shouldAutoStart(savedInstanceState != null" in activity
    assert 'if (intent.hasExtra("plan")) start(' not in activity


def test_android_gpu_delegate_settings_are_explicit_and_the_compatibility_list_is_closed():
    backend = (APP / "kotlin" / "org" / "oculardeploy" / "bench" / "LiteRtBackend.kt").read_text()
    assert "CompatibilityList().use" in backend
    assert "setPrecisionLossAllowed(g.precisionLossAllowed)" in backend
    assert "setInferencePreference(" in backend
    assert "GpuDelegate()" not in backend  # the no-argument constructor takes the silent defaults
    assert "run.effectiveGpuOptions" in backend
