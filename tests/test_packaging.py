"""How the tool is installed: `make demo` without root, `pip install ocular-deploy`, every import declared.

The wheel is built from a copy of the tracked sources with the venv's setuptools (no network, no build isolation)
and read back: package data (model cards, pipeline TOMLs, the schema modules) and metadata (name, Python range,
the `deploy` command, extras, runtime dependencies without test-only packages).
"""

from __future__ import annotations

import ast
import email
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
TEST_ONLY = {"pytest", "hypothesis", "check-jsonschema", "pbxproj", "tree-sitter"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


# ------------------------------------------------------------------ make demo: Python and pip only

def test_make_demo_needs_no_root_apt_npm_or_chroot():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "-B", "demo"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "deploy demo" in out and "pip install" in out  # -B: the whole setup is printed, not only what is stale
    for tool in ("apt-get", "npm", "debootstrap", "sudo", "chroot", "dpkg"):
        assert not re.search(rf"(^|[\s;&|(]){tool}\b", out, re.M), f"`make demo` runs {tool}:\n{out}"


def test_make_installs_through_the_constraints_file():
    out = subprocess.run(["make", "-n", "-B", "demo"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    installs = [line for line in out.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all("-c constraints.txt" in line for line in installs), installs
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    for req in PYPROJECT["project"]["dependencies"]:  # an exact pin in pyproject.toml agrees with the constraints
        if "==" in req:
            assert pins[_name(req)] == req.split("==")[1].strip(), req


# ------------------------------------------------------------------ declared dependencies

def _imports_of_toolchain() -> set[str]:
    found = set()
    for path in (REPO / "toolchain").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "toolchain"}


def test_every_imported_package_is_declared_and_test_packages_are_not_runtime():
    runtime = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = {k: {_name(r) for r in v} for k, v in PYPROJECT["project"]["optional-dependencies"].items()}
    optional = set().union(*(v for k, v in extras.items() if k != "dev"))
    dists = importlib.metadata.packages_distributions()
    undeclared = {}
    for module in sorted(_imports_of_toolchain()):
        # a module of an extra not installed here (pymobiledevice3) is looked up by its own name
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not names & (runtime | optional):
            undeclared[module] = sorted(names)
    assert not undeclared, f"imported by toolchain, declared nowhere (pyproject.toml dependencies or an extra): {undeclared}"
    assert not runtime & TEST_ONLY, f"test-only packages among the runtime dependencies: {sorted(runtime & TEST_ONLY)}"
    assert {"ios", "farm", "onnx-import", "dev"} <= set(extras)


# ------------------------------------------------------------------ the wheel

@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    tracked = subprocess.run(["git", "ls-files", "toolchain", "pyproject.toml", "README.md"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    dist = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src),
                           "-w", str(dist)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = dist.glob("*.whl")
    return whl


def test_wheel_holds_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    cards = {p.name for p in (REPO / "toolchain" / "models" / "cards").glob("*.toml")}
    assert cards and {f"toolchain/models/cards/{c}" for c in cards} <= names
    pipelines = {p.name for p in (REPO / "toolchain" / "pipeline").glob("*.toml")}
    assert {"demo.toml", "demo_quick.toml"} <= pipelines
    assert {f"toolchain/pipeline/{p}" for p in pipelines} <= names
    # the schemas live in code (docs/*.json are generated from these)
    assert {"toolchain/bench/schema.py", "toolchain/artifact/manifest.py", "toolchain/cli/__init__.py"} <= names
    assert not any(n.startswith(("tests/", "benchmarks/", "docs/")) for n in names)


def test_wheel_metadata(wheel):
    zf = zipfile.ZipFile(wheel)
    info = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    meta = email.message_from_bytes(zf.read(info))
    assert meta["Name"] == "ocular-deploy" and wheel.name.startswith("ocular_deploy-")
    assert meta["Requires-Python"] in (">=3.10,<3.14", "<3.14,>=3.10")
    runtime = {_name(r) for r in meta.get_all("Requires-Dist") if "extra ==" not in r}
    assert {"torch", "scipy", "coremltools", "litert-torch", "onnxruntime", "ai-edge-litert"} <= runtime
    assert not runtime & TEST_ONLY
    assert {"ios", "farm", "onnx-import"} <= set(meta.get_all("Provides-Extra"))
    entry = zf.read(next(n for n in zf.namelist() if n.endswith("entry_points.txt"))).decode()
    assert "deploy = toolchain.cli:main" in entry
