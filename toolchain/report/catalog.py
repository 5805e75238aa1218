"""What the report knows besides the results: artifact manifests, model bundles, accuracy metrics.

A result names its artifact only by sha256. The catalog maps that hash to the manifest that
describes the artifact (format, precision, size, the PyTorch reference features, the source
bundle), the bundle to its ``model.json`` (parameters, size, parent), and the bundle or
artifact to its evaluation metrics (EER, TAR at FAR).

Metrics join (``metrics.json`` from ``deploy evaluate``): ``model`` {kind, sha256, name,
source_bundle_sha256} says what was measured (``kind`` "bundle": ``sha256`` is the bundle's
weights hash; "artifact": the artifact's hash, its bundle in ``source_bundle_sha256``); other
files may use the keys in :data:`METRIC_ID_KEYS`. For an fp32 variant (the bundle's own
numbers) the bundle's evaluation is used first, then the artifact's; for fp16/int8 variants the
artifact's own first; the bundle name last. EER and TAR are read from the top level or from
a ``metrics`` object.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from toolchain import jsonio
from toolchain.errors import ToolchainError

log = logging.getLogger(__name__)

#: Paths (dotted) inside metrics.json tried, in order, to learn what was evaluated.
METRIC_ID_KEYS = {
    "artifact_sha256": ("artifact_sha256", "artifact.sha256"),
    "bundle_sha256": ("bundle_sha256", "bundle.sha256", "model.source_bundle_sha256", "source_bundle_sha256"),
    "name": ("bundle.name", "bundle_name", "model.name", "name"),
}
MAX_JSON_BYTES = 16 << 20


def _dig(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        return jsonio.read(path, max_bytes=MAX_JSON_BYTES)
    except ToolchainError as e:
        problems.append(f"{e} (skipped)")
        return None


def _files(paths: Iterable[str | Path], name: str, problems: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += sorted(f for f in p.rglob(name) if not any(s.startswith(".") for s in f.relative_to(p).parts))
        else:
            problems.append(f"{p}: no such file or folder")
    return out


@dataclass
class Metrics:
    source: Path
    eer: float | None
    tar_at_far: dict[str, float]
    ids: dict[str, str]
    #: the verification protocol's one-line label (``data.verification_protocol.label``), None when not recorded
    protocol: str | None = None
    #: closed-set identification (``closed_set`` {top1, top5, images, method}, top level or under ``metrics``)
    closed_set: dict[str, Any] | None = None
    #: ``model`` as evaluate records it (kind, name, sha256, format, precision...): an evaluated variant with no run
    model: dict[str, Any] = field(default_factory=dict)
    #: the genuine/impostor scores beside this metrics.json (``files.scores``), None when absent: ROC/DET need them
    scores: Path | None = None

    @property
    def top1(self) -> float | None:
        v = (self.closed_set or {}).get("top1")
        return float(v) if isinstance(v, (int, float)) else None


@dataclass
class Catalog:
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # artifact sha256 -> manifest
    bundles: dict[str, dict[str, Any]] = field(default_factory=dict)  # weights sha256 -> model.json
    metrics: list[Metrics] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def discover(cls, artifacts: Iterable[str | Path] = (), bundles: Iterable[str | Path] = (),
                 metrics: Iterable[str | Path] = ()) -> "Catalog":
        cat = cls()
        from toolchain.errors import ManifestError
        from toolchain.artifact import manifest as manifest_mod

        for f in _files(artifacts, "manifest.json", cat.problems):
            try:  # the one manifest reader (validated, version 1 migrated); the artifact file need not be here
                man = manifest_mod.read(f, require_file=False).to_json()
            except ManifestError as e:
                cat.problems.append(f"{e} (skipped)")
                continue
            cat.manifests[man["sha256"]] = {**man, "_folder": str(f.parent)}
        for f in _files(bundles, "model.json", cat.problems):
            meta = _read_json(f, cat.problems)
            sha = _dig(meta, "weights.sha256")
            if isinstance(meta, dict) and isinstance(sha, str):
                cat.bundles[sha] = {**meta, "_folder": str(f.parent)}
            elif meta is not None:
                cat.problems.append(f"{f}: not a model bundle's model.json (no weights.sha256), skipped")
        for f in _files(metrics, "metrics.json", cat.problems):
            obj = _read_json(f, cat.problems)
            if isinstance(obj, dict):
                m = _parse_metrics(f, obj)
                if m is None:
                    cat.problems.append(f"{f}: no 'eer' or 'tar_at_far' found, skipped")
                elif not m.ids:
                    cat.problems.append(f"{f}: says nothing about which model it measured "
                                        f"(none of {sorted(k for v in METRIC_ID_KEYS.values() for k in v)}), skipped")
                else:
                    cat.metrics.append(m)
        return cat

    def manifest_for(self, result: dict[str, Any]) -> dict[str, Any] | None:
        return self.manifests.get(result["artifact"]["sha256"])

    def bundle_sha_for(self, result: dict[str, Any]) -> str | None:
        man = self.manifest_for(result)
        if man is not None:
            return man.get("source_bundle_sha256") or _dig(man, "source_bundle.sha256")
        if result["artifact"]["format"] == "pytorch":
            return result["artifact"]["sha256"]
        return None

    def bundle_name_for(self, result: dict[str, Any]) -> str | None:
        sha = self.bundle_sha_for(result)
        if sha in self.bundles:
            return self.bundles[sha].get("name")
        man = self.manifest_for(result)
        if man is not None:
            return _dig(man, "source_bundle.name")
        return None

    def is_known(self, result: dict[str, Any]) -> bool:
        sha = result["artifact"]["sha256"]
        return sha in self.manifests or (result["artifact"]["format"] == "pytorch" and sha in self.bundles)

    def reference_for(self, result: dict[str, Any]) -> tuple[list[float] | None, str]:
        """(the PyTorch features of the fixed input kept in a manifest, where from)."""
        man = self.manifest_for(result)
        if man is None and result["artifact"]["format"] == "pytorch":
            sha = result["artifact"]["sha256"]
            man = next((m for m in self.manifests.values() if m.get("source_bundle_sha256") == sha), None)
        if man is None:
            return None, "no manifest for this artifact"
        sample = _dig(man, "reference_features.sample")
        if not sample:
            return None, f"manifest {man.get('name')} keeps no reference features"
        return [float(v) for v in sample], f"manifest {man.get('name')}"

    def metrics_for(self, artifact_sha: str | None, bundle_sha: str | None, name: str | None,
                    prefer_bundle: bool = False) -> Metrics | None:
        """The metrics of an artifact (first, or after its bundle's with ``prefer_bundle``), else by name."""
        order = [("artifact_sha256", artifact_sha), ("bundle_sha256", bundle_sha)]
        if prefer_bundle:
            order.reverse()
        for kind, value in [*order, ("name", name)]:
            if value is None:
                continue
            for m in self.metrics:
                if m.ids.get(kind) == value:
                    return m
        return None


def _parse_metrics(path: Path, obj: dict[str, Any]) -> Metrics | None:
    body = obj["metrics"] if isinstance(obj.get("metrics"), dict) else obj
    eer = body.get("eer")
    tar = body.get("tar_at_far") if isinstance(body.get("tar_at_far"), dict) else {}
    if not isinstance(eer, (int, float)) and not tar:
        return None
    ids: dict[str, str] = {}
    model = obj.get("model") if isinstance(obj.get("model"), dict) else {}
    if isinstance(model.get("sha256"), str):
        ids["artifact_sha256" if model.get("kind") == "artifact" else "bundle_sha256"] = model["sha256"]
    for kind, keys in METRIC_ID_KEYS.items():
        if kind in ids:
            continue
        for k in keys:
            v = _dig(obj, k)
            if isinstance(v, str) and v:
                ids[kind] = v
                break
    clean_tar = {str(k): float(v) for k, v in tar.items() if isinstance(v, (int, float))}
    label = _dig(obj, "data.verification_protocol.label")
    closed = obj.get("closed_set") if isinstance(obj.get("closed_set"), dict) else body.get("closed_set")
    scores_name = _dig(obj, "files.scores")
    scores = path.parent / (Path(scores_name).name if isinstance(scores_name, str) and scores_name else "scores.npz")
    return Metrics(path, float(eer) if isinstance(eer, (int, float)) else None, clean_tar, ids,
                   label if isinstance(label, str) and label else None,
                   closed if isinstance(closed, dict) else None, model, scores if scores.is_file() else None)
