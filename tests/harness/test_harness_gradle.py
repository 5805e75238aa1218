"""The Android Gradle build and Kotlin sources, checked without the Android SDK; and that the checks catch breakage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from toolchain.bench import harness_checks as hc

REPO = Path(__file__).resolve().parents[2]
ANDROID = REPO / "android_harness"
KOTLIN = sorted(p for p in ANDROID.rglob("*.kt") if "build" not in p.relative_to(ANDROID).parts)


def test_gradle_build_is_consistent():
    assert hc.gradle_problems(ANDROID) == []


@pytest.mark.parametrize("path", KOTLIN, ids=lambda p: p.name)
def test_kotlin_parses(path):
    assert hc.syntax_errors(path, "kotlin") == []


def test_core_stays_pure_kotlin():
    """The core compiles on the JVM here: nothing from android.* or LiteRT may leak into it."""
    core = list((ANDROID / "core" / "src" / "main").rglob("*.kt"))
    assert core
    for f in core:
        text = f.read_text()
        assert "import android." not in text and "org.tensorflow" not in text, f


def test_app_avoids_api_above_min_sdk_without_a_check():
    """java.time and java.nio.file need API 26; minSdk is 21."""
    for f in KOTLIN:
        text = f.read_text()
        assert "java.time." not in text and "java.nio.file." not in text, f


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
    assert "app minSdk is 24, expected 21" in problems
    assert any("uncompressed" in p for p in problems)


def test_kotlin_syntax_error_is_caught(copy):
    f = copy / "core" / "build.gradle.kts"
    f.write_text(f.read_text().replace("dependencies {", "dependencies {{"))
    assert any("core/build.gradle.kts" in p for p in hc.gradle_problems(copy))
    kt = copy / "core" / "src" / "main" / "kotlin" / "org" / "oculardeploy" / "bench" / "core" / "Plan.kt"
    kt.write_text(kt.read_text().replace("data class Protocol(", "data class Protocol(("))
    assert hc.syntax_errors(kt, "kotlin")
