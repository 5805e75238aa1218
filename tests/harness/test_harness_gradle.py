"""The Android Gradle scripts, which no build here reads; and that the checks catch breakage.

The Kotlin sources are compiled: :core by android_harness/core/run-tests.sh, :core + :app into an APK by
android_harness/build-apk.sh (test_app_builds.py reports both). Only the instrumentation test (it needs
androidx.test) and the Gradle scripts are parsed here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.harness import _project_checks as hc
from tests.harness._swift_checks import syntax_errors

REPO = Path(__file__).resolve().parents[2]
ANDROID = REPO / "android_harness"
#: Kotlin no compiler here sees: the instrumentation test and the Gradle scripts.
UNCOMPILED = sorted(ANDROID.glob("app/src/androidTest/**/*.kt")) + sorted(ANDROID.rglob("*.gradle.kts"))


def test_gradle_build_is_consistent():
    assert hc.gradle_problems(ANDROID) == []


@pytest.mark.parametrize("path", UNCOMPILED, ids=lambda p: p.name)
def test_uncompiled_kotlin_parses(path):
    assert syntax_errors(path, "kotlin") == []


@pytest.fixture
def copy(tmp_path) -> Path:
    dst = tmp_path / "android_harness"
    shutil.copytree(ANDROID, dst, ignore=shutil.ignore_patterns("build"))
    return dst


def test_wrong_min_sdk_and_compressed_tflite_are_caught(copy):
    app = copy / "app" / "build.gradle.kts"
    text = app.read_text()
    app.write_text(text.replace("minSdk = 21", "minSdk = 24").replace('noCompress += "tflite"', ""))
    problems = hc.gradle_problems(copy)
    assert "app minSdk is 24 somewhere in app/build.gradle.kts, expected 21 everywhere" in problems
    assert any("uncompressed" in p for p in problems)


def test_a_flavor_with_a_lower_min_sdk_is_caught(copy):
    app = copy / "app" / "build.gradle.kts"
    app.write_text(app.read_text().replace("    buildTypes {", """    flavorDimensions += "api"
    productFlavors {
        create("legacy") {
            dimension = "api"
            minSdk = 19
        }
    }

    buildTypes {"""))
    assert hc.gradle_problems(copy) == ["app minSdk is 19 somewhere in app/build.gradle.kts, expected 21 everywhere"]


def test_a_commented_out_no_compress_is_caught(copy):
    app = copy / "app" / "build.gradle.kts"
    app.write_text(app.read_text().replace('noCompress += "tflite"', '// noCompress += "tflite"'))
    problems = hc.gradle_problems(copy)
    assert len(problems) == 1 and "does not keep .tflite uncompressed" in problems[0]
    app.write_text(app.read_text().replace('// noCompress += "tflite"', '/* noCompress += "tflite" */'))
    assert hc.gradle_problems(copy) == problems


def test_kotlin_syntax_error_is_caught(copy):
    f = copy / "core" / "build.gradle.kts"
    f.write_text(f.read_text().replace("dependencies {", "dependencies {{"))
    assert any("core/build.gradle.kts" in p for p in hc.gradle_problems(copy))


def test_a_jvm_toolchain_without_a_resolver_is_caught(copy):
    """The defect: core set jvmToolchain(17) with no resolver; a machine with only JDK 21 could not build it."""
    core = copy / "core" / "build.gradle.kts"
    core.write_text(core.read_text().replace("kotlin {\n", "kotlin {\n    jvmToolchain(17)\n"))
    assert hc.gradle_problems(copy) == ["core/build.gradle.kts sets jvmToolchain(...) but settings.gradle.kts has "
                                        "no toolchain resolver: a machine without that exact JDK cannot build"]
    settings = copy / "settings.gradle.kts"
    settings.write_text(settings.read_text().replace(
        "dependencyResolutionManagement {",
        'plugins {\n    id("org.gradle.toolchains.foojay-resolver-convention") version "0.9.0"\n}\n\n'
        "dependencyResolutionManagement {"))
    assert hc.gradle_problems(copy) == []
