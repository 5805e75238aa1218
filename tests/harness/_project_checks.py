"""Checks of the harness apps' project files that no build here makes.

Linux CI builds the Swift core with SwiftPM and an APK with Debian's tools (``ios_harness/run-tests.sh``,
``android_harness/build-apk.sh``), but neither reads ``project.pbxproj`` or the Gradle scripts: Xcode
and the Android Gradle plugin do. These checks cover what those files must say for the apps to build
and behave as designed: the Xcode project's objects, files, targets, test host, deployment target and
resources; Info.plist's file sharing; Gradle's modules, minSdk everywhere (flavors and build types
too) and uncompressed ``.tflite``. Each returns a list of problems (empty = fine).
"""

from __future__ import annotations

import plistlib
import re
from pathlib import Path

from tests.harness._swift_checks import parse, syntax_errors

# ---------------------------------------------------------------- Xcode project

_ID = re.compile(r"\b([0-9A-F]{24})\b")


def pbxproj_problems(xcodeproj: Path, app_target: str = "OcularBench", test_target: str = "OcularBenchTests",
                     deployment_target: str = "12.0") -> list[str]:
    """Everything checkable in ``project.pbxproj`` without Xcode (the pbxproj package + raw-text checks)."""
    from pbxproj import XcodeProject

    pbx = Path(xcodeproj) / "project.pbxproj"
    root = Path(xcodeproj).parent
    text = pbx.read_text()
    problems: list[str] = []
    # The pbxproj parser accepts a missing ';' and dangling ids, so check the raw text too.
    defined = re.findall(r"^\t\t([0-9A-F]{24})(?: /\*.*?\*/)? = \{", text, flags=re.M)
    dupes = sorted({i for i in defined if defined.count(i) > 1})
    if dupes:
        problems.append(f"object ids defined twice: {', '.join(dupes)}")
    for ref in sorted(set(_ID.findall(text)) - set(defined)):
        problems.append(f"id {ref} is referenced but no object defines it (dangling reference)")
    if text.count("{") != text.count("}") or text.count("(") != text.count(")"):
        problems.append("unbalanced braces or parentheses")
    for m in re.finditer(r"^\t\t\t\t?\w+ = [^;{(\n]*$", text, flags=re.M):
        problems.append(f"line without ';': {m.group(0).strip()!r}")
    try:
        proj = XcodeProject.load(str(pbx))
    except Exception as e:  # the package raises its own parse errors
        return problems + [f"pbxproj cannot parse {pbx}: {e}"]
    objs = proj.objects
    targets = {t.name: t for t in objs.get_targets()}
    for name, ptype in ((app_target, "com.apple.product-type.application"),
                        (test_target, "com.apple.product-type.bundle.unit-test")):
        if name not in targets:
            problems.append(f"target {name} is missing")
        elif targets[name].productType != ptype:
            problems.append(f"target {name} is {targets[name].productType}, expected {ptype}")
    for cfg in objs.get_objects_in_section("XCBuildConfiguration"):
        got = cfg.buildSettings["IPHONEOS_DEPLOYMENT_TARGET"] if "IPHONEOS_DEPLOYMENT_TARGET" in cfg.buildSettings else None
        if got is not None and str(got) != deployment_target:
            problems.append(f"build configuration {cfg.get_id()} sets IPHONEOS_DEPLOYMENT_TARGET = {got}")
        if "SWIFT_UI" in str(cfg.buildSettings):
            problems.append("SwiftUI settings in a build configuration")
    if f"IPHONEOS_DEPLOYMENT_TARGET = {deployment_target};" not in text:
        problems.append(f"IPHONEOS_DEPLOYMENT_TARGET = {deployment_target} is set nowhere")
    paths = _file_paths(objs, root)
    for fid, path in paths.items():
        if not path.exists():
            problems.append(f"file reference {fid} points to {path.relative_to(root) if path.is_relative_to(root) else path}, "
                            "which does not exist")
    problems += _phase_problems(objs, targets, paths, root, app_target, test_target)
    problems += _test_host_problems(objs, targets, app_target, test_target)
    return problems


def _test_host_problems(objs, targets, app_target: str, test_target: str) -> list[str]:
    """The unit-test bundle is injected into the app: TEST_HOST must name the app target's executable."""
    if app_target not in targets or test_target not in targets:
        return []
    app = targets[app_target]
    product = objs[app.productReference]["path"] if app.productReference in objs else None
    if product is None or not str(product).endswith(".app"):
        return [f"target {app_target} has no .app product"]
    expected = f"$(BUILT_PRODUCTS_DIR)/{product}/{str(product)[:-4]}"
    problems = []
    for cid in objs[targets[test_target].buildConfigurationList].buildConfigurations:
        cfg = objs[cid]
        settings = cfg.buildSettings
        host = str(settings["TEST_HOST"]) if "TEST_HOST" in settings else None
        if host != expected:
            problems.append(f"{test_target} {cfg.name}: TEST_HOST is {host!r}; the app target builds {expected!r}")
        loader = str(settings["BUNDLE_LOADER"]) if "BUNDLE_LOADER" in settings else None
        if loader not in ("$(TEST_HOST)", expected):
            problems.append(f"{test_target} {cfg.name}: BUNDLE_LOADER is {loader!r}, expected $(TEST_HOST)")
    deps = [objs[d] for d in targets[test_target].dependencies if d in objs]
    if not any("target" in d and d["target"] == app.get_id() for d in deps):
        problems.append(f"{test_target} does not depend on {app_target}: Xcode would not build the host app first")
    return problems


def _file_paths(objs, root: Path) -> dict[str, Path]:
    """Resolve every PBXFileReference to a path on disk by walking the group tree from the main group."""
    parent_of: dict[str, str] = {}
    for g in objs.get_objects_in_section("PBXGroup", "PBXVariantGroup"):
        for child in g.children:
            parent_of[child] = g.get_id()

    def base(obj_id: str) -> Path:
        obj = objs[obj_id]
        tree = obj["sourceTree"] if "sourceTree" in obj else "<group>"
        own = obj["path"] if "path" in obj else None
        if tree == "<group>":
            start = base(parent_of[obj_id]) if obj_id in parent_of else root
        elif tree == "SOURCE_ROOT":
            start = root
        else:
            return Path("/nonexistent-build-product")  # BUILT_PRODUCTS_DIR etc.: not on disk
        return (start / own) if own else start

    out = {}
    for f in objs.get_objects_in_section("PBXFileReference"):
        if f["sourceTree"] == "BUILT_PRODUCTS_DIR":
            continue
        out[f.get_id()] = base(f.get_id()).resolve()
    return out


def _phase_problems(objs, targets, paths, root, app_target, test_target) -> list[str]:
    problems = []

    def phase_files(target, isa) -> set[Path]:
        files: set[Path] = set()
        for pid in target.buildPhases:
            phase = objs[pid]
            if phase.isa != isa:
                continue
            for bid in phase.files:
                ref = objs[bid]["fileRef"] if bid in objs and "fileRef" in objs[bid] else None
                if ref is None or ref not in paths:
                    problems.append(f"build file {bid} in {target.name} has no file reference")
                else:
                    files.add(paths[ref])
        return files

    compiled_by: dict[str, set[Path]] = {}
    for name, folder in ((app_target, root / app_target), (test_target, root / test_target)):
        if name not in targets:
            continue
        compiled = compiled_by[name] = phase_files(targets[name], "PBXSourcesBuildPhase")
        for swift in sorted(folder.rglob("*.swift")):
            if swift.resolve() not in compiled:
                problems.append(f"{swift.relative_to(root)} is not compiled by target {name}")
    # The tests reach the app's code through `@testable import`; a second copy compiled into the
    # test bundle makes two distinct types of the same name (casts and `is` checks fail at run time).
    for f in sorted(compiled_by.get(app_target, set()) & compiled_by.get(test_target, set())):
        problems.append(f"{f.relative_to(root) if f.is_relative_to(root) else f} is compiled by both {app_target} "
                        f"and {test_target}: keep it in {app_target} only")
    wanted = {app_target: [root / "BenchPlan"], test_target: [root.parent / "tests" / "fixtures" / "results"]}
    for name, folders in wanted.items():
        if name not in targets:
            continue
        resources = phase_files(targets[name], "PBXResourcesBuildPhase")
        for f in folders:
            if f.resolve() not in resources:
                problems.append(f"{f.name} is not a resource of target {name}")
    return problems


def info_plist_problems(path: Path) -> list[str]:
    """The app's Info.plist: file sharing for USB pulls, no iOS 13 scene manifest, the usual keys."""
    try:
        info = plistlib.loads(Path(path).read_bytes())
    except Exception as e:
        return [f"{path} is not a property list: {e}"]
    problems = []
    for key in ("UIFileSharingEnabled", "LSSupportsOpeningDocumentsInPlace"):
        if info.get(key) is not True:
            problems.append(f"{path}: {key} must be true, so results can be pulled over USB")
    for key in ("CFBundleIdentifier", "CFBundleExecutable", "CFBundleShortVersionString", "CFBundleVersion"):
        if key not in info:
            problems.append(f"{path}: {key} is missing")
    if "UIApplicationSceneManifest" in info:
        problems.append(f"{path}: UIApplicationSceneManifest needs iOS 13; the app uses an app-delegate window")
    return problems


# ---------------------------------------------------------------- Gradle

def gradle_problems(project: Path, min_sdk: int = 21) -> list[str]:
    """The Android Gradle build: parses, includes app + core, minSdk, uncompressed .tflite, wrapper, catalog."""
    import tomllib

    project = Path(project)
    problems = []
    kts = sorted(project.rglob("*.gradle.kts"))
    for f in kts:
        problems += syntax_errors(f, "kotlin")
    settings = (project / "settings.gradle.kts").read_text() if (project / "settings.gradle.kts").is_file() else ""
    for module in (":app", ":core"):
        if f'"{module}"' not in settings:
            problems.append(f"settings.gradle.kts does not include {module}")
    app = project / "app" / "build.gradle.kts"
    text = _without_comments(app) if app.is_file() else ""
    # Every minSdk counts: defaultConfig's, and any a product flavor or build type sets over it.
    found = [int(v) for v in re.findall(r"\bminSdk(?:Version)?\s*(?:=|\()\s*(\d+)", text)]
    if not found:
        problems.append("app/build.gradle.kts sets no minSdk")
    for v in sorted(set(found) - {min_sdk}):
        problems.append(f"app minSdk is {v} somewhere in app/build.gradle.kts, expected {min_sdk} everywhere")
    if re.search(r"\bminSdkPreview\b", text):
        problems.append("app/build.gradle.kts sets minSdkPreview: a preview SDK installs on no released Android")
    if not re.search(r'noCompress\s*(\+=|\.add\(|=|\()\s*[^\n]*"tflite"', text):
        problems.append("app/build.gradle.kts does not keep .tflite uncompressed (androidResources { noCompress += \"tflite\" })")
    # jvmToolchain(N) makes Gradle find exactly JDK N; with no toolchain resolver in settings, a machine
    # that has only another JDK (current Android Studio bundles JDK 21) fails "No matching toolchains found"
    # (Gradle user guide, "Toolchains for JVM projects": auto-provisioning needs a resolver plugin).
    resolver = "toolchains.foojay-resolver" in _strip_line_comments(settings)
    for f in kts:
        if re.search(r"\bjvmToolchain\s*\(", _without_comments(f)) and not resolver:
            problems.append(f"{f.relative_to(project)} sets jvmToolchain(...) but settings.gradle.kts has no "
                            "toolchain resolver: a machine without that exact JDK cannot build")
    wrapper = project / "gradle" / "wrapper" / "gradle-wrapper.properties"
    if not wrapper.is_file() or "distributionUrl=" not in wrapper.read_text():
        problems.append("gradle/wrapper/gradle-wrapper.properties with distributionUrl is missing")
    catalog = project / "gradle" / "libs.versions.toml"
    try:
        libs = tomllib.loads(catalog.read_text())
        for needed in ("litert", "litert-gpu", "junit", "json"):
            if needed not in libs.get("libraries", {}):
                problems.append(f"version catalog has no library {needed!r}")
    except (OSError, tomllib.TOMLDecodeError) as e:
        problems.append(f"{catalog}: {e}")
    return problems


def _strip_line_comments(text: str) -> str:
    return "\n".join(ln.split("//", 1)[0] for ln in text.splitlines())


def _without_comments(path: Path) -> str:
    """A Kotlin script's text with its comments blanked out (tree-sitter: strings stay intact)."""
    data = bytearray(Path(path).read_bytes())
    stack = [parse(path, "kotlin").root_node]
    while stack:
        n = stack.pop()
        if n.type in ("line_comment", "multiline_comment", "comment", "block_comment"):
            data[n.start_byte:n.end_byte] = b" " * (n.end_byte - n.start_byte)
            continue
        stack.extend(n.children)
    return data.decode()
