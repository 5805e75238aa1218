"""The manifest written beside every artifact (``manifest.json``).

It is the contract with the harness apps, the host runner and the report: what the file
is, for which devices and OS, how to feed it (input name, shape, layout, dtype,
normalisation), what it outputs, which bundle it came from, and the parity result.
"""

from __future__ import annotations

import datetime as _dt
import json
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolchain import __version__
from toolchain.errors import ToolchainError
from toolchain.fsutil import atomic_write_json, sha256_file, size_bytes

if TYPE_CHECKING:  # pragma: no cover
    from toolchain.export.base import Exporter, ExportJob
    from toolchain.export.parity import ParityResult

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def build(job: "ExportJob", exporter: "Exporter", artifact: Path, desc: dict[str, Any], parity: "ParityResult",
          convert_s: float, reference_sample: np.ndarray, fixed_input: str) -> dict[str, Any]:
    b = job.bundle
    c = job.choice
    inp = {"layout": c.layout, "pixel_range": [0, 255], "color": "rgb",
           "normalization": {"mean": b.mean, "std": b.std, "baked_in": True,
                             "formula": "features = model((pixels / 255 - mean) / std)"}}
    inp.update(desc.get("input", {}))
    out = {"name": "features", "dim": b.feature_dim}
    out.update(desc.get("output", {}))
    extra = {k: v for k, v in desc.items() if k not in ("input", "output")}
    return {
        "manifest_version": MANIFEST_VERSION,
        "name": job.artifact_name,
        "format": c.target,
        "precision": c.precision,
        "file": artifact.name,
        "sha256": sha256_file(artifact),
        "size_bytes": size_bytes(artifact),
        "devices": [d.key for d in job.devices],
        "min_os": (f"iOS {c.min_ios}" if c.min_ios else ("Android 5.0 (API 21)" if c.target == "tflite" else None)),
        "min_ios": c.min_ios,
        "spec_version": c.spec_version,
        "coreml_format": c.coreml_format,
        "compress": job.compress,
        "choice_reasons": list(c.reasons),
        "input": inp,
        "output": out,
        "source_bundle": {"name": b.name, "sha256": b.sha256, "path": str(b.path)},
        "source_bundle_sha256": b.sha256,
        "parity": parity.to_json(),
        "reference_features": {"input": fixed_input, "sample": [float(v) for v in reference_sample]},
        "converter_versions": {"toolchain": __version__, "torch": package_version("torch"), **exporter.versions()},
        "convert_seconds": round(convert_s, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def write(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(Path(folder) / MANIFEST_FILE, manifest)


def read(folder: str | Path) -> dict[str, Any]:
    """Read and sanity-check an artifact folder's manifest (clear errors, no guessing)."""
    folder = Path(folder)
    if folder.is_file() and folder.name == MANIFEST_FILE:
        folder = folder.parent
    elif folder.is_file():
        folder = folder.parent
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ToolchainError(f"{folder} has no {MANIFEST_FILE}: not an exported artifact folder (see `deploy export`)")
    try:
        man = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ToolchainError(f"{path} is not valid JSON ({e})") from None
    for key in ("format", "file", "sha256", "input", "output"):
        if key not in man:
            raise ToolchainError(f"{path} lacks {key!r}; re-export the artifact")
    if not (folder / man["file"]).exists():
        raise ToolchainError(f"{path} names {man['file']}, which is not in {folder}")
    return man


def save_fixed_input(path: Path, pixels_chw: np.ndarray) -> None:
    """Save the fixed input as a lossless PNG (raw pixels, so the apps can feed exactly it)."""
    from PIL import Image

    img = np.clip(np.round(pixels_chw.transpose(1, 2, 0)), 0, 255).astype(np.uint8)
    Image.fromarray(img, "RGB").save(path, format="PNG")
