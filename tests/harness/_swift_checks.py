"""Checks of the iOS harness's Swift sources that no compiler here makes.

Linux CI compiles the Foundation-only core with a real Swift compiler (``ios_harness/run-tests.sh``);
the UIKit / Core ML files cannot be compiled without Apple's SDKs. What is left to check here:
syntax of those files (tree-sitter error nodes), the Codable keys against the results schema, and a
lint for API newer than the iOS 12 deployment target (Linux Swift ignores ``@available(iOS ...)``).

The availability lint knows only the APIs listed below, plus the sources' own ``@available(iOS N)``
declarations; Xcode's compiler is the real check. It understands ``if #available``, the else
branch of ``if #unavailable``, the statements after ``guard #available ... else``, ``@available``
on a declaration, explicit (``MLComputeUnits.cpuAndNeuralEngine``) and implicit (``.cpuAndNeuralEngine``)
member syntax, and argument labels (``UIImage(systemName:)``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

DEPLOYMENT_IOS = 12

#: Keywords (the `async` keyword, not `queue.async`).
IOS_MIN_KEYWORDS: dict[str, int] = {"async": 13, "await": 13, "actor": 13}
#: Types and free names, wherever they appear outside a member position.
IOS_MIN_IDENTIFIERS: dict[str, int] = {
    "SwiftUI": 13, "Combine": 13, "Task": 13, "MainActor": 13, "AsyncStream": 13, "AsyncThrowingStream": 13,
    "UIScene": 13, "UIWindowScene": 13, "UISceneConfiguration": 13, "UISceneSession": 13, "UIMenu": 13,
    "UIContextMenuConfiguration": 13, "UIHostingController": 13, "UIBarAppearance": 13,
    "Logger": 14, "UIAction": 14, "UIListContentConfiguration": 14, "UIColorWell": 14, "MLModelCollection": 14,
    "MLShapedArray": 15, "UISheetPresentationController": 15,
    "MLModelAsset": 16, "ContinuousClock": 16, "SuspendingClock": 16, "Regex": 16,
    "MLComputeDevice": 17, "MLComputePlan": 17,
}
#: Members, after an explicit (`UIColor.label`) or implicit (`.label`) dot, whatever the receiver.
IOS_MIN_MEMBERS: dict[str, int] = {
    "systemBackground": 13, "secondarySystemBackground": 13, "label": 13, "secondaryLabel": 13,
    "tertiaryLabel": 13, "systemFill": 13, "connectedScenes": 13, "withoutEscapingSlashes": 13,
    "isiOSAppOnMac": 14, "cpuAndNeuralEngine": 16, "documentsDirectory": 16,
}
#: Members of one receiver: (receiver, member) -> iOS major.
IOS_MIN_QUALIFIED: dict[tuple[str, str], int] = {
    ("MLModel", "load"): 14,  # MLModel.load(contentsOf:configuration:completionHandler:)
    ("UIImage", "SymbolConfiguration"): 13,
    ("Task", "sleep"): 13,
}
#: Argument labels of one callee: (callee as written, label) -> iOS major.
IOS_MIN_LABELS: dict[tuple[str, str], int] = {
    ("UIImage", "systemName"): 13,
    ("MLModel.compileModel", "completionHandler"): 16,
}
#: Syntax nodes that need iOS 13+ whatever their name (opaque result types: ``some View``).
IOS_MIN_FOR_NODE: dict[str, int] = {"opaque_type": 13}
SKIP_NODES = {"comment", "multiline_comment", "line_string_literal", "multi_line_string_literal", "raw_string_literal"}
DECLARATIONS = {"function_declaration", "class_declaration", "protocol_declaration", "property_declaration",
                "init_declaration", "extension_declaration", "typealias_declaration", "subscript_declaration"}


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


# ---------------------------------------------------------------- availability

def _leaves(node) -> list[bytes]:
    return [n.text for n in _walk(node) if n.child_count == 0]


def _version(tokens: list[bytes]) -> int | None:
    """The iOS major of an availability spec's leaves.

    ``@available(iOS 13.0, *)`` -> 13, ``#available(iOS 16, *)`` -> 16,
    ``@available(iOS, introduced: 14)`` -> 14, ``@available(iOS, deprecated: 13)`` -> None.
    """
    for i, t in enumerate(tokens):
        if t not in (b"iOS", b"iOSApplicationExtension"):
            continue
        if i + 1 < len(tokens) and tokens[i + 1].isdigit():
            return int(tokens[i + 1])
        rest = tokens[i + 1:]
        for j in range(len(rest) - 2):
            if rest[j] == b"introduced" and rest[j + 1] == b":" and rest[j + 2].isdigit():
                return int(rest[j + 2])
    return None


def _availability(node) -> tuple[str, int] | None:
    """("available" | "unavailable", iOS major) of an if/guard statement's ``#available`` condition."""
    cond = next((c for c in node.children if c.type == "availability_condition"), None)
    if cond is None:
        return None
    kind = "unavailable" if any(c.type == "unavailable" for c in cond.children) else "available"
    version = _version(_leaves(cond))
    return (kind, version) if version is not None else None


def _attribute_version(decl) -> int | None:
    """The iOS major of a declaration's ``@available(iOS N, *)``, if it has one."""
    for mods in (c for c in decl.children if c.type == "modifiers"):
        for attr in (c for c in mods.children if c.type == "attribute"):
            leaves = _leaves(attr)
            if b"available" in leaves:
                v = _version(leaves)
                if v is not None:
                    return v
    return None


def _branch(if_node, child) -> str | None:
    """Whether ``child`` (a child of ``if_node``) lies in its "then" or "else" branch (None: the condition)."""
    cond = next(c for c in if_node.children if c.type == "availability_condition")
    else_tok = next((c for c in if_node.children if c.type == "else"), None)
    if child.start_byte < cond.end_byte:
        return None
    if else_tok is not None and child.start_byte > else_tok.start_byte:
        return "else"
    return "then"


def _guarded_ios(node) -> int:
    """The highest iOS version the code at ``node`` is known to run on."""
    best = DEPLOYMENT_IOS
    child, parent = node, node.parent
    while parent is not None:
        if parent.type == "if_statement" and (av := _availability(parent)):
            kind, version = av
            branch = _branch(parent, child)
            if (kind, branch) in (("available", "then"), ("unavailable", "else")):
                best = max(best, version)
        elif parent.type == "guard_statement" and (av := _availability(parent)):
            kind, version = av  # inside a guard's else body: reached when the condition is false
            if kind == "unavailable" and _branch(parent, child) == "then":
                best = max(best, version)
        elif parent.type == "statements":
            for sibling in parent.children:  # a `guard #available ... else` earlier in the same block
                if sibling.start_byte >= child.start_byte:
                    break
                if sibling.type == "guard_statement" and (av := _availability(sibling)) and av[0] == "available":
                    best = max(best, av[1])
        if parent.type in DECLARATIONS:
            best = max(best, _attribute_version(parent) or DEPLOYMENT_IOS)
        child, parent = parent, parent.parent
    return best


def _declared_name(decl) -> str | None:
    if decl.type == "property_declaration":
        pattern = next((c for c in decl.children if c.type == "pattern"), None)
        ident = next((c for c in pattern.children if c.type == "simple_identifier"), None) if pattern else None
        return ident.text.decode() if ident is not None else None
    ident = next((c for c in decl.children if c.type in ("simple_identifier", "type_identifier")), None)
    return ident.text.decode() if ident is not None else None


def available_declarations(paths: Iterable[Path]) -> dict[str, int]:
    """Names the sources declare with ``@available(iOS N)`` -> N.

    A name also declared without ``@available`` (an overload or a same-named member) is left out:
    which one a use means needs type checking.
    """
    annotated: dict[str, int] = {}
    plain: set[str] = set()
    for path in paths:
        for n in _walk(parse(path, "swift").root_node):
            if n.type not in DECLARATIONS or n.type == "extension_declaration":
                continue
            name = _declared_name(n)
            if name is None:
                continue
            v = _attribute_version(n)
            if v is None:
                plain.add(name)
            elif v > DEPLOYMENT_IOS:
                annotated[name] = min(v, annotated.get(name, v))
    return {k: v for k, v in annotated.items() if k not in plain}


def _callee(label_leaf) -> str | None:
    """``UIImage`` for the label in ``UIImage(systemName: ...)``; ``MLModel.compileModel`` for a member call."""
    node = label_leaf
    while node is not None and node.type != "call_expression":
        node = node.parent
    return node.children[0].text.decode() if node is not None else None


def _is_declared_name(n) -> bool:
    p = n.parent
    if p is None:
        return False
    if p.type in DECLARATIONS and p.type != "property_declaration":
        return True
    return p.type == "pattern" and p.parent is not None and p.parent.type == "property_declaration"


def _leaf_need(n, own: dict[str, int]) -> int | None:
    text = n.text.decode(errors="replace")
    if n.type == text and n.parent is not None and n.parent.type == "simple_identifier":
        n = n.parent  # a keyword used as a name, e.g. DispatchQueue's `.async`
    elif n.type == text:  # an anonymous keyword token such as `async`
        return IOS_MIN_KEYWORDS.get(text)
    if n.type not in ("simple_identifier", "type_identifier") or _is_declared_name(n):
        return None
    parent = n.parent
    if parent.type == "navigation_suffix":  # receiver.member
        receiver = parent.parent.children[0].text.decode() if parent.parent is not None else ""
        return (IOS_MIN_QUALIFIED.get((receiver, text)) or IOS_MIN_MEMBERS.get(text)
                or IOS_MIN_IDENTIFIERS.get(text) or own.get(text))
    if parent.type == "prefix_expression" and parent.children[0].type == ".":  # implicit member: .member
        return IOS_MIN_MEMBERS.get(text) or own.get(text)
    if parent.type == "value_argument_label":
        return IOS_MIN_LABELS.get((_callee(n) or "", text))
    return IOS_MIN_IDENTIFIERS.get(text) or own.get(text)


def ios12_violations(path: Path, own: dict[str, int] | None = None) -> list[str]:
    """Uses of post-iOS-12 API (the lists above, ``own`` declarations) outside a matching guard.

    Args:
        own: names declared ``@available(iOS N)`` anywhere in the app (``available_declarations``);
            default: those of ``path`` itself.
    """
    own = available_declarations([path]) if own is None else own
    tree = parse(path, "swift")
    out = []
    stack = [tree.root_node]
    while stack:
        n = stack.pop()
        if n.type in SKIP_NODES:
            continue
        need = IOS_MIN_FOR_NODE.get(n.type)
        if need is None and n.child_count == 0:
            need = _leaf_need(n, own)
        if need is not None and need > DEPLOYMENT_IOS and _guarded_ios(n) < need:
            line, col = n.start_point
            what = n.type if n.type in IOS_MIN_FOR_NODE else n.text.decode()
            out.append(f"{path}:{line + 1}:{col + 1}: {what} needs iOS {need}; the app targets iOS {DEPLOYMENT_IOS}: "
                       f"wrap it in `if #available(iOS {need}.0, *)` or remove it")
        stack.extend(reversed(n.children))
    return out


# ---------------------------------------------------------------- Codable keys = results schema

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


