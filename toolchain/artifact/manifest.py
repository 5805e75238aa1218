"""The manifest written beside every artifact (``manifest.json``): a typed :class:`Manifest`, version 2.

It is the contract with the harness apps' plans, the host runner, evaluation and the report: what the file is,
for which devices and OS, how to feed it (input name, shape, layout, dtype, normalisation), what it outputs,
which bundle it came from, and the parity results. Format-specific facts live in the format's own typed block
(``coreml``, ``tflite``, ``onnx``), so nothing a converter reports can overwrite a top-level key.

``docs/manifest-schema.json`` is generated from these dataclasses (``python -m toolchain.artifact.manifest
--write``; a test keeps it current). Every reader goes through :func:`read`, which validates the whole file at
once, migrates version-1 manifests, and refuses a ``file`` that resolves outside the artifact folder.
"""

from __future__ import annotations

import dataclasses
import math
import json
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

from toolchain import jsonio, typed
from toolchain.errors import ManifestError
from toolchain.fsutil import atomic_write_json, atomic_write_text

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 2
#: A manifest is a few KB; anything far larger is not one.
MAX_MANIFEST_BYTES = 4 << 20
FORMULA = "features = model((pixels / 255 - mean) / std)"
SCHEMA_ID = "https://github.com/ocular-deploy/toolchain/docs/manifest-schema.json"
DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "manifest-schema.json"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass
class Quantization:
    """Affine quantisation of a tensor: ``real = (q - zero_point) * scale``."""

    scale: float
    zero_point: int


@dataclass
class Normalization:
    """The per-channel normalisation baked into the graph (the apps pass raw pixels)."""

    mean: list[float]
    std: list[float]
    baked_in: bool = True
    formula: str = FORMULA


@dataclass
class InputSpec:
    """The artifact's input tensor."""

    name: str
    shape: list[int | str]  # "batch" for a dynamic axis
    dtype: str = "float32"
    layout: Literal["nchw", "nhwc"] = "nchw"
    pixel_range: list[float] = field(default_factory=lambda: [0, 255])
    color: str = "rgb"
    normalization: Normalization | None = None
    quantization: Quantization | None = None
    type: str | None = None  # Core ML feature type, "MLMultiArray"


@dataclass
class OutputSpec:
    """The artifact's output tensor (``dim`` features)."""

    name: str = "features"
    dim: int | None = None
    dtype: str | None = None
    shape: list[int] | None = None
    quantization: Quantization | None = None


@dataclass
class SourceBundle:
    """The bundle an artifact was exported from."""

    name: str
    sha256: str
    path: str | None = None


@dataclass
class ParityResult:
    """One runtime's parity with PyTorch, as :func:`toolchain.artifact.compare.compare` gives it and the manifest
    stores it."""

    status: Literal["passed", "failed", "skipped", "unverified"]  # unverified: could not run, --allow-unverified
    reference: str | None = None  # which runtime ran the artifact
    max_abs: float | None = None
    cosine_min: float | None = None  # artifact vs the fp32 PyTorch model, the lowest over the samples
    min_cosine_required: float | None = None
    samples: int | None = None
    reason: str | None = None
    mismatches: list[str] = field(default_factory=list)
    inputs: Literal["seeded", "user"] | None = None  # seeded smooth images, or the user's held-out images
    reduced_cosine: float | None = None  # PyTorch's own reduced-precision model (int8, fp16) vs fp32
    converter_cosine: float | None = None  # artifact vs PyTorch's reduced-precision model: the converter's error
    reduced_model: str | None = None  # what that reduced model is (e.g. "PyTorch PT2E int8 ...")
    reduced_reason: str | None = None  # why reduced_cosine is null

    def to_json(self) -> dict[str, Any]:
        """As stored: a NaN/Inf number (an artifact that outputs NaN) becomes null and the reason says so,
        so the manifest stays JSON this tool can read back (and `bench host` says "parity failed")."""
        d = dataclasses.asdict(self)
        bad = [k for k in ("max_abs", "cosine_min", "min_cosine_required", "reduced_cosine", "converter_cosine")
               if isinstance(d[k], float) and not math.isfinite(d[k])]
        for k in bad:
            d[k] = None
        if bad:
            note = f"{', '.join(bad)} not a finite number (NaN/Inf outputs); stored as null"
            d["reason"] = f"{d['reason']}; {note}" if d["reason"] else note
        return d


@dataclass
class ReferenceFeatures:
    """The fixed input (a PNG in the folder) and the first PyTorch features of it."""

    input: str | None
    sample: list[float]


@dataclass
class ToolCheck:
    """A check by an outside tool (Apple's compiler): passed, or skipped with the reason."""

    status: Literal["passed", "failed", "skipped"]
    reason: str | None = None
    tool: str | None = None


@dataclass
class CoreMLDetails:
    """Core ML facts read back from the saved model."""

    spec_version: int
    min_ios: int
    coreml_format: Literal["mlprogram", "neuralnetwork"] | None = None
    weights: str | None = None  # "fp16", "fp32", "compressed (constexpr_...)"
    compute_precision: str | None = None
    coreml_ops: dict[str, int] | None = None  # ML Program op counts
    nn_layers: dict[str, int] | None = None  # NeuralNetwork layer counts
    compressed_weight_ops: list[str] = field(default_factory=list)
    apple_compiler: ToolCheck | None = None


@dataclass
class TFLiteDetails:
    int8_mode: Literal["static", "dynamic"] | None = None


@dataclass
class OnnxDetails:
    opset: int | None = None


@dataclass
class Manifest:
    """An exported artifact: what it is, how to run it, where it came from, how well it matches PyTorch."""

    format: str
    file: str  # the artifact's file (or .mlpackage folder) name, inside the artifact folder
    sha256: str
    input: InputSpec
    output: OutputSpec
    manifest_version: int = MANIFEST_VERSION
    name: str = ""
    precision: str | None = None
    size_bytes: int | None = None
    devices: list[str] = field(default_factory=list)
    min_os: str | None = None
    compress: str | None = None
    choice_reasons: list[str] = field(default_factory=list)
    source_bundle: SourceBundle | None = None
    source_bundle_sha256: str | None = None
    parity: ParityResult = field(default_factory=lambda: ParityResult("skipped", reason="not recorded"))
    #: every runtime that checked parity (the first one is ``parity``), or why it could not here
    parity_by_runtime: dict[str, ParityResult] = field(default_factory=dict)
    reference_features: ReferenceFeatures | None = None
    converter_versions: dict[str, str] = field(default_factory=dict)
    convert_seconds: float | None = None
    created: str | None = None
    # Format blocks: one per format, named after it; a manifest carries its own format's only.
    coreml: CoreMLDetails | None = field(default=None, metadata={"format_block": CoreMLDetails})
    tflite: TFLiteDetails | None = field(default=None, metadata={"format_block": TFLiteDetails})
    onnx: OnnxDetails | None = field(default=None, metadata={"format_block": OnnxDetails})

    def to_json(self) -> dict[str, Any]:
        """The JSON form (format blocks of other formats left out)."""
        data = typed.to_data(self)
        # through ParityResult.to_json: a NaN cosine (an artifact that outputs NaN) is stored as null with the reason
        data["parity"] = self.parity.to_json()
        data["parity_by_runtime"] = {name: r.to_json() for name, r in self.parity_by_runtime.items()}
        return {k: v for k, v in data.items() if not (k in FORMAT_BLOCKS and v is None)}

    @property
    def details(self) -> Any:
        """This format's own block (None when the manifest has none)."""
        return getattr(self, self.format, None) if self.format in FORMAT_BLOCKS else None


#: The typed per-format blocks of a manifest: field name -> its dataclass.
FORMAT_BLOCKS: dict[str, type] = {f.name: f.metadata["format_block"] for f in dataclasses.fields(Manifest)
                                  if "format_block" in f.metadata}


def write(folder: Path, manifest: Manifest) -> None:
    atomic_write_json(Path(folder) / MANIFEST_FILE, manifest.to_json())


# --- reading ---------------------------------------------------------------------------------

_V1_DROPPED = ("apple_runtime", "rewritten")


def _migrate_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A version-1 manifest (or one without a version) in the version-2 layout; unknown extra keys dropped.

    Version 1 kept each format block's fields at the top level; they move into the manifest's own block
    (when its required fields are there: otherwise consumers say "re-export it" where they need them).
    """
    data = dict(raw)
    data["manifest_version"] = MANIFEST_VERSION
    for block, cls in FORMAT_BLOCKS.items():
        moved = {f.name: data.pop(f.name) for f in dataclasses.fields(cls) if f.name in data}
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if block == data.get("format") and any(v is not None for v in moved.values()) \
                and all(moved.get(k) is not None for k in required):
            data[block] = {k: v for k, v in moved.items() if v is not None}
    apple = data.pop("apple_runtime", None)
    if isinstance(apple, dict) and "status" in apple:
        data.setdefault("parity_by_runtime", {})["coreml"] = apple
    for k in _V1_DROPPED:
        data.pop(k, None)
    known = set(Manifest.__dataclass_fields__)
    return {k: v for k, v in data.items() if k in known}


def _read_json(path: Path) -> Any:
    """The manifest's JSON through the one bounded reader (size, depth, finite numbers; a FIFO is refused)."""
    return jsonio.read(path, max_bytes=MAX_MANIFEST_BYTES, error=ManifestError, what="manifest")


def folder_of(path: str | Path) -> Path:
    """The artifact folder a path names (the folder itself, its manifest.json, or a file inside it)."""
    path = Path(path)
    return path.parent if path.is_file() else path


def parse(raw: Any, source: str) -> Manifest:
    """Validate parsed JSON as a manifest (every problem in one ManifestError)."""
    if not isinstance(raw, dict):
        raise ManifestError(f"{source}: expected a JSON object, got {type(raw).__name__}")
    version = raw.get("manifest_version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > MANIFEST_VERSION:
        raise ManifestError(f"{source} is manifest version {version}; this toolchain reads up to {MANIFEST_VERSION}: "
                            "upgrade the toolchain")
    data = _migrate_v1(raw) if version == 1 else raw
    for key in ("format", "file", "sha256", "input", "output"):
        if key not in data:
            raise ManifestError(f"{source} lacks {key!r}; re-export the artifact")
    return typed.build(Manifest, data, error=ManifestError, source=source)


def read(folder: str | Path, *, require_file: bool = True) -> Manifest:
    """Read and check an artifact folder's manifest: valid, its ``file`` inside the folder (and present there,
    unless ``require_file`` is False: the report reads manifests of artifacts that live elsewhere).

    ``folder``: the artifact folder, a file inside it, or the manifest (``*.json``) itself.
    """
    given = Path(folder)
    if given.is_file() and given.suffix == ".json":
        folder, path = given.parent, given
    else:
        folder = folder_of(given)
        path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{folder} has no {MANIFEST_FILE}: not an exported artifact folder (see `deploy export`)")
    man = parse(_read_json(path), str(path))
    if not man.name:
        man.name = folder.name
    root = folder.resolve()
    target = (folder / man.file).resolve()
    if target == root or root not in target.parents:
        raise ManifestError(f"{path} names {man.file!r}, which resolves outside {folder}: refused "
                            "(an artifact's file must sit in its own folder)")
    if require_file and not target.exists():
        raise ManifestError(f"{path} names {man.file}, which is not in {folder}")
    return man


def save_fixed_input(path: Path, pixels_chw: np.ndarray) -> None:
    """Save the fixed input as a lossless PNG (raw pixels, so the apps can feed exactly it)."""
    from PIL import Image

    img = np.clip(np.round(pixels_chw.transpose(1, 2, 0)), 0, 255).astype(np.uint8)
    if img.shape[2] == 1:  # a 1-channel model's fixed input: an 8-bit gray PNG
        Image.fromarray(img[:, :, 0], "L").save(path, format="PNG")
    else:
        Image.fromarray(img, "RGB").save(path, format="PNG")


# --- the committed JSON Schema ---------------------------------------------------------------


def schema_document() -> dict[str, Any]:
    """``docs/manifest-schema.json``: the JSON Schema (draft 2020-12) derived from :class:`Manifest`."""
    defs: dict[str, Any] = {}
    typed.json_schema(Manifest, defs)
    top = defs.pop("Manifest")
    top["properties"]["manifest_version"] = {"const": MANIFEST_VERSION}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": f"Artifact manifest v{MANIFEST_VERSION} (manifest.json beside every exported artifact)",
            **top, "$defs": dict(sorted(defs.items()))}


def schema_text() -> str:
    return json.dumps(schema_document(), indent=2) + "\n"


def _main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m toolchain.artifact.manifest",
                                 description="Print, write or check docs/manifest-schema.json.")
    ap.add_argument("--write", action="store_true", help=f"write {DOC_PATH}")
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed schema is stale")
    args = ap.parse_args(argv)
    if args.check:
        current = DOC_PATH.read_text() if DOC_PATH.is_file() else ""
        if current != schema_text():
            print(f"{DOC_PATH} is stale: run python -m toolchain.artifact.manifest --write", file=sys.stderr)
            return 1
        return 0
    if args.write:
        atomic_write_text(DOC_PATH, schema_text())
        return 0
    sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
