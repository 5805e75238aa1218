"""Facts the apps' sources cannot import from Python, pinned to their one home there.

The Swift device names (``DeviceEnvironment.swift``), the Kotlin format -> runtime choice (``BenchRunner.kt``)
and the apps' identifiers (Xcode project, Gradle) are copies; each test fails as soon as a copy drifts from
``toolchain.devices.CATALOG``, the format plugins / runtimes, or ``toolchain.bench.apps.APP_ID``.
"""

from __future__ import annotations

import re
from pathlib import Path

from toolchain.artifact.formats import app_format, format_names
from toolchain.bench import schema
from toolchain.bench.apps import APP_ID
from toolchain.devices import CATALOG
from toolchain.runtimes import RUNTIMES, get_runtime, runtimes_for

REPO = Path(__file__).resolve().parents[2]
SWIFT_DEVICES = REPO / "ios_harness" / "OcularBench" / "App" / "DeviceEnvironment.swift"
KOTLIN_RUNNER = REPO / "android_harness" / "core" / "src" / "main" / "kotlin" / "org" / "oculardeploy" / "bench" / \
    "core" / "BenchRunner.kt"


def test_swift_device_names_are_the_catalogs():
    pairs = dict(re.findall(r'"((?:iPhone|iPad)\d+,\d+)":\s*"([^"]+)"', SWIFT_DEVICES.read_text()))
    want = {ident: d.name for d in CATALOG.values() if d.platform == "ios" for ident in d.identifiers}
    assert pairs == want


def test_kotlin_runtime_choice_is_the_timing_runtime_of_each_app_format():
    m = re.search(r'run\.artifact\.format == "(\w+)"\) "(\w+)" else "(\w+)"', KOTLIN_RUNNER.read_text())
    assert m, "BenchRunner.kt no longer names its runtime by format: update this test"
    fmt, runtime, otherwise = m.groups()
    assert fmt in format_names() and fmt == app_format("ios").name
    assert runtime == schema.app_runtime(fmt) and otherwise == schema.app_runtime(app_format("android").name)


def test_results_runtime_names_are_the_timing_runtimes():
    assert set(schema.RUNTIMES) == {n for n in RUNTIMES if get_runtime(n).timing}
    assert all(runtimes_for(f, timing=True) for f in schema.FORMATS)


def test_app_identifiers_are_app_id():
    pbx = (REPO / "ios_harness" / "OcularBench.xcodeproj" / "project.pbxproj").read_text()
    ids = set(re.findall(r"PRODUCT_BUNDLE_IDENTIFIER = ([^;]+);", pbx))
    assert ids == {APP_ID, f"{APP_ID}.tests"}
    gradle = (REPO / "android_harness" / "app" / "build.gradle.kts").read_text()
    assert re.findall(r'(?:namespace|applicationId) = "([^"]+)"', gradle) == [APP_ID, APP_ID]
