"""Static checks of the harness apps, for machines without Xcode or the Android SDK.

What Linux can say about the iOS and Android sources: Swift and Kotlin parse with no error
nodes (tree-sitter), no iOS 13+ API appears outside ``if #available``/``@available``, the
Swift Codable keys are exactly the results schema's, the Xcode project's objects, files,
targets, deployment target and resources are consistent, Info.plist enables file sharing,
and the Gradle build keeps minSdk 21 and ``.tflite`` uncompressed. Each function returns a
list of problems (empty = fine), so a test can show all of them at once. None of this proves
that the apps build: that needs Xcode / the Android Gradle plugin (see the READMEs).
"""

from __future__ import annotations

import plistlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

#: Post-iOS-12 API by how it appears, with the iOS major it needs. Matched on syntax-tree
#: leaves, so comments and strings never count: keywords (the `async` keyword, not `queue.async`),
#: type or free identifiers, and members that only count after a dot (`.label`, not `label:`).
IOS_MIN_KEYWORDS: dict[str, int] = {"async": 13, "await": 13, "actor": 13}
IOS_MIN_IDENTIFIERS: dict[str, int] = {
    "SwiftUI": 13, "Combine": 13, "Task": 13, "MainActor": 13, "UIScene": 13, "UIWindowScene": 13,
    "UISceneConfiguration": 13, "UISceneSession": 13, "UIContextMenuConfiguration": 13, "UIHostingController": 13,
    "Logger": 14, "UIAction": 14, "UIListContentConfiguration": 14,
    "MLShapedArray": 15, "MLModelAsset": 16, "MLComputeDevice": 17,
}
IOS_MIN_MEMBERS: dict[str, int] = {
    "systemBackground": 13, "label": 13, "secondaryLabel": 13, "connectedScenes": 13, "withoutEscapingSlashes": 13,
    "isiOSAppOnMac": 14, "cpuAndNeuralEngine": 16,
}
#: Syntax nodes that need iOS 13+ whatever their name (opaque result types: ``some View``).
IOS_MIN_FOR_NODE: dict[str, int] = {"opaque_type": 13}
SKIP_NODES = {"comment", "multiline_comment", "line_string_literal", "multi_line_string_literal", "raw_string_literal"}


@lru_cache(maxsize=None)
def _parser(language: str):
    from tree_sitter import Language, Parser

    if language == "swift":
        import tree_sitter_swift as grammar
    else:
        import tree_sitter_kotlin as grammar
    return Parser(Language(grammar.language()))


def parse(path: Path, language: str):
    return _parser(language).parse(Path(path).read_bytes())


def _walk(node) -> Iterator[Any]:
    yield node
    for child in node.children:
        yield from _walk(child)


def syntax_errors(path: Path, language: str) -> list[str]:
    """``file:line:col: ERROR/MISSING near '...'`` for every error node tree-sitter finds."""
    tree = parse(path, language)
    out = []
    for n in _walk(tree.root_node):
        if n.type == "ERROR" or n.is_missing:
            line, col = n.start_point
            kind = f"missing {n.type}" if n.is_missing else "syntax error"
            out.append(f"{path}:{line + 1}:{col + 1}: {kind} near {n.text[:40].decode(errors='replace')!r}")
    return out


def _version(tokens: list[bytes]) -> int | None:
    """The iOS major from an availability spec's leaves, e.g. [@, available, (, iOS, 13, ., 0, ...] -> 13."""
    for i, t in enumerate(tokens):
        if t in (b"iOS", b"iOSApplicationExtension") and i + 1 < len(tokens) and tokens[i + 1].isdigit():
            return int(tokens[i + 1])
    return None


def _leaves(node) -> list[bytes]:
    return [n.text for n in _walk(node) if n.child_count == 0]


def _guarded_ios(node) -> int:
    """The highest iOS version that encloses ``node``: ``if #available`` (then-branch only) or ``@available``."""
    best = 12
    child, parent = node, node.parent
    while parent is not None:
        if parent.type == "if_statement":
            cond = next((c for c in parent.children if c.type == "availability_condition"), None)
            else_tok = next((c for c in parent.children if c.type == "else"), None)
            in_then = else_tok is None or child.start_byte < else_tok.start_byte
            if cond is not None and in_then and child.start_byte > cond.end_byte:
                best = max(best, _version(_leaves(cond)) or 12)
        if parent.type in ("function_declaration", "class_declaration", "protocol_declaration", "property_declaration",
                           "init_declaration", "extension_declaration"):
            for mods in (c for c in parent.children if c.type == "modifiers"):
                for attr in (c for c in mods.children if c.type == "attribute"):
                    leaves = _leaves(attr)
                    if b"available" in leaves:
                        best = max(best, _version(leaves) or 12)
        child, parent = parent, parent.parent
    return best


def _leaf_need(n) -> int | None:
    text = n.text.decode(errors="replace")
    if n.type == text and n.parent is not None and n.parent.type == "simple_identifier":
        n = n.parent  # a keyword used as a name, e.g. DispatchQueue's `.async`
    elif n.type == text:  # an anonymous keyword token such as `async`
        return IOS_MIN_KEYWORDS.get(text)
    if n.type in ("simple_identifier", "type_identifier"):
        if n.parent is not None and n.parent.type == "navigation_suffix":
            return IOS_MIN_MEMBERS.get(text) or IOS_MIN_IDENTIFIERS.get(text)
        return IOS_MIN_IDENTIFIERS.get(text)
    return None


def ios12_violations(path: Path) -> list[str]:
    """Uses of post-iOS-12 API not enclosed by a matching ``if #available`` / ``@available``."""
    tree = parse(path, "swift")
    out = []
    stack = [tree.root_node]
    while stack:
        n = stack.pop()
        if n.type in SKIP_NODES:
            continue
        need = IOS_MIN_FOR_NODE.get(n.type)
        if need is None and n.child_count == 0:
            need = _leaf_need(n)
        if need is not None and _guarded_ios(n) < need:
            line, col = n.start_point
            what = n.type if n.type in IOS_MIN_FOR_NODE else n.text.decode()
            out.append(f"{path}:{line + 1}:{col + 1}: {what} needs iOS {need}; the app targets iOS 12: "
                       f"wrap it in `if #available(iOS {need}.0, *)` or remove it")
        stack.extend(reversed(n.children))
    return out


def codable_keys(path: Path) -> dict[str, list[str]]:
    """JSON keys per Swift type: the raw values of each type's ``CodingKeys`` enum (case name if none)."""
    tree = parse(path, "swift")
    out: dict[str, list[str]] = {}
    for n in _walk(tree.root_node):
        if n.type != "class_declaration":
            continue
        name = next((c.text.decode() for c in n.children if c.type == "type_identifier"), None)
        body = next((c for c in n.children if c.type in ("class_body", "enum_class_body")), None)
        if name is None or body is None:
            continue
        props = [_stored_property(c) for c in body.children if c.type == "property_declaration"]
        out[name] = [p for p in props if p]  # replaced below when the type has CodingKeys
        for enum in (c for c in body.children if c.type == "class_declaration"):
            ename = next((c.text.decode() for c in enum.children if c.type == "type_identifier"), None)
            ebody = next((c for c in enum.children if c.type == "enum_class_body"), None)
            if ename != "CodingKeys" or ebody is None:
                continue
            keys = []
            for entry in (c for c in ebody.children if c.type == "enum_entry"):
                # children: case, name, [= raw value], [, name [= raw]]...
                current = None
                for c in entry.children:
                    if c.type == "simple_identifier":
                        if current is not None:
                            keys.append(current)
                        current = c.text.decode()
                    elif c.type == "line_string_literal" or c.type.endswith("string_literal"):
                        current = re.sub(r'^"|"$', "", c.text.decode())
                if current is not None:
                    keys.append(current)
            out[name] = keys
    return out


def _stored_property(node) -> str | None:
    """The name of an instance stored property (``var x: T``), None for static or computed ones."""
    if any(c.type == "computed_property" for c in node.children):
        return None
    mods = next((c for c in node.children if c.type == "modifiers"), None)
    if mods is not None and b"static" in _leaves(mods):
        return None
    pattern = next((c for c in node.children if c.type == "pattern"), None)
    ident = next((c for c in pattern.children if c.type == "simple_identifier"), None) if pattern else None
    return ident.text.decode() if ident is not None else None


def schema_key_problems(swift_files: list[Path], mapping: dict[str, dict[str, Any]]) -> list[str]:
    """Each Swift type's JSON keys must cover the schema object's required keys and stay within its properties."""
    keys: dict[str, list[str]] = {}
    for f in swift_files:
        keys.update(codable_keys(f))
    problems = []
    for type_name, obj in mapping.items():
        if type_name not in keys:
            problems.append(f"Swift type {type_name} not found")
            continue
        got, props, required = set(keys[type_name]), set(obj["properties"]), set(obj.get("required", []))
        for k in sorted(required - got):
            problems.append(f"{type_name} lacks schema key {k!r}")
        for k in sorted(got - props):
            problems.append(f"{type_name} writes {k!r}, which the schema does not define")
    return problems


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

    for name, folder in ((app_target, root / app_target), (test_target, root / test_target)):
        if name not in targets:
            continue
        compiled = phase_files(targets[name], "PBXSourcesBuildPhase")
        for swift in sorted(folder.rglob("*.swift")):
            if swift.resolve() not in compiled:
                problems.append(f"{swift.relative_to(root)} is not compiled by target {name}")
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
    text = app.read_text() if app.is_file() else ""
    m = re.search(r"\bminSdk\s*=\s*(\d+)", text)
    if not m:
        problems.append("app/build.gradle.kts sets no minSdk")
    elif int(m.group(1)) != min_sdk:
        problems.append(f"app minSdk is {m.group(1)}, expected {min_sdk}")
    if not re.search(r'noCompress\s*(\+=|\.add\(|=)\s*[^\n]*"tflite"', text):
        problems.append("app/build.gradle.kts does not keep .tflite uncompressed (androidResources { noCompress += \"tflite\" })")
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
