"""Assemble a report from results, manifests, bundles and metrics, and write every output.

Rows of the paper-style table are *device · runtime* (a phone's Core ML, a host's ONNX
Runtime...), columns are *model variants* (a source bundle, plus its precision when not fp32),
so the teacher and its pruned and distilled students sit side by side as in the seed paper.
A cell pools the raw samples of every run of that variant on that row and shows the median
with its bootstrap 95 % CI. Footer rows join the variant's parameters, compression ratios and
bundle size (from model.json) and EER / TAR@FAR (from the evaluation's metrics.json).

Two compression ratios, both against the variant with the most deployed parameters (the teacher):

* ``compression_deployed`` (the ``compression ×`` row): the reference's deployed (trunk)
  parameters / this variant's deployed non-zeros, from ``weights.deployed_parameters`` and
  ``weights.deployed_nonzero``.
* ``compression_shrinkbench``: the same over the whole model, classification head included, as
  ShrinkBench's ``metrics/size.py`` ``model_size`` counts (``weights.num_parameters``). model.json
  does not store the head's non-zeros, so the head counts as dense (ShrinkBench's own assumption in
  ``pruning/utils.py`` ``fraction_to_keep``), unless the bundle's ``provenance.compression`` (written by
  ``deploy prune`` for these very weights: its trunk count matches) records the exact count. A margin head's
  zeroed bias makes the dense assumption off by at most the class count. Bundles without
  ``num_parameters``: n/a.
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from typing import Any, Iterable

from toolchain.bench.store import load_results_dirs
from toolchain.errors import ToolchainError
from toolchain.fsutil import atomic_dir
from toolchain.report import paper
from toolchain.report.catalog import Catalog
from toolchain.report.checks import DEFAULT_MIN_ITERATIONS, CheckContext, run_checks
from toolchain.report.model import Cell, Report, RunView, Variant
from toolchain.report.stats import summarize

log = logging.getLogger(__name__)


def device_label(r: dict[str, Any]) -> str:
    d = r["device"]
    return d["marketing_name"] or d["identifier"]


def row_label(r: dict[str, Any]) -> str:
    """``iPhone XR · coreml all``; ``Intel Xeon · onnxruntime cpu x2``."""
    rt = r["runtime"]
    bits = [rt["name"]]
    if rt.get("compute_units"):
        bits.append(str(rt["compute_units"]))
    if rt.get("threads"):
        bits[-1] += f" x{rt['threads']}"
    return f"{device_label(r)} · {' '.join(bits)}"


def _variant_key(r: dict[str, Any], cat: Catalog) -> tuple[str, str | None, str | None, str | None]:
    precision = r["artifact"].get("precision")
    man = cat.manifest_for(r)
    if man is not None and man.get("precision"):
        precision = man["precision"]
    bundle_sha = cat.bundle_sha_for(r)
    name = cat.bundle_name_for(r)
    if name is None:
        return f"{r['artifact']['name']} (unknown)", None, None, precision
    label = name if precision in (None, "fp32") else f"{name} {precision}"
    return label, bundle_sha, name, precision


def shrinkbench_counts(meta: dict[str, Any]) -> tuple[int | None, int | None]:
    """(total, non-zero) parameters of the whole model, head included, from a model.json (module docstring).

    >>> shrinkbench_counts({"weights": {"num_parameters": 260, "deployed_parameters": 250, "deployed_nonzero": 125}})
    (260, 135)
    >>> shrinkbench_counts({"weights": {"size_bytes": 4}})
    (None, None)
    """
    w = meta.get("weights") or {}
    total = w.get("num_parameters")
    if total is None:
        return None, None
    deployed = w.get("deployed_parameters", total)
    nonzero = w.get("deployed_nonzero", deployed)
    comp = (meta.get("provenance") or {}).get("compression") or {}
    if comp.get("shrinkbench_parameters") == total and comp.get("nonzero_parameters") == nonzero \
            and comp.get("shrinkbench_nonzero_parameters") is not None:
        return total, int(comp["shrinkbench_nonzero_parameters"])
    return total, nonzero + (total - deployed)


def parity_status(r: dict[str, Any], cat: Catalog) -> str | None:
    """The export parity status of the run's artifact (manifest ``parity.status``); None without a manifest.

    >>> parity_status({"artifact": {"sha256": "a"}}, Catalog(manifests={"a": {"parity": {"status": "failed"}}}))
    'failed'
    """
    man = cat.manifest_for(r)
    if man is None:
        return None
    return str((man.get("parity") or {}).get("status") or "not recorded")


def _evaluated_only(cat: Catalog, variants: dict[str, Variant]) -> None:
    """Add a variant for every metrics.json that no timed variant took: evaluated models are never dropped."""
    used = {id(v.metrics) for v in variants.values() if v.metrics is not None}
    taken = {(v.bundle_sha256, v.precision or "fp32") for v in variants.values()}
    for m in cat.metrics:
        man = cat.manifests.get(m.ids.get("artifact_sha256") or "")
        bsha = m.ids.get("bundle_sha256") or (man or {}).get("source_bundle_sha256")
        precision = (man or {}).get("precision") or m.model.get("precision") or "fp32"
        # Shown already: the same bundle at the same precision (e.g. the fp32 artifact's own evaluation beside its
        # bundle's), or, with no bundle to key on, joined to some variant. An int8 variant borrowing its bundle's
        # fp32 evaluation does not hide the fp32 model itself.
        if (bsha, precision) in taken or (bsha is None and id(m) in used):
            continue
        name = (cat.bundles.get(bsha or "") or {}).get("name") or m.ids.get("name") or m.source.parent.name
        label = name if precision == "fp32" else f"{name} {precision}"
        while label in variants:
            label += "'"
        variants[label] = Variant(label, bsha, name, precision, metrics=m)
        taken.add((bsha, precision))


def build_report(results: Iterable[str | Path], artifacts: Iterable[str | Path] = (), bundles: Iterable[str | Path] = (),
                 metrics: Iterable[str | Path] = (), min_iterations: int = DEFAULT_MIN_ITERATIONS,
                 with_flops: bool = True) -> Report:
    """Load everything and compute the statistics, checks and joins (no files written).

    ``with_flops``: count FLOPs on every bundle whose weights are in its folder (loads torch; seconds per model).
    """
    loaded, problems = load_results_dirs(results)
    cat = Catalog.discover(artifacts, bundles, metrics)
    problems += cat.problems
    if not loaded:
        raise ToolchainError("no valid results files found in " + ", ".join(map(str, results))
                             + (": " + "; ".join(problems[:3]) if problems else ""))
    ctx = CheckContext(cat, min_iterations)
    views: list[RunView] = []
    variants: dict[str, Variant] = {}
    flops: dict[str, tuple[int | None, int | None, str | None]] = {}
    for r in sorted(loaded, key=lambda r: (row_label(r), r["created_at"], r["run_id"])):
        label, bsha, bname, prec = _variant_key(r, cat)
        if label in variants and variants[label].bundle_sha256 != bsha:
            label = f"{label} @{(bsha or r['artifact']['sha256'])[:6]}"
        v = variants.setdefault(label, Variant(label, bsha, bname, prec))
        man = cat.manifest_for(r)
        size = (man or {}).get("size_bytes") or r["artifact"].get("size_bytes")
        if size:
            v.artifact_sizes.setdefault(r["artifact"]["format"], int(size))
        lat = r["latency_ns"] if r["status"] in ("ok", "partial") else []
        trusted = parity_status(r, cat) in (None, "passed")
        views.append(RunView(r, device_label(r), row_label(r), label, summarize(lat) if lat else None,
                             run_checks(r, ctx), trusted))
    for v in variants.values():
        art_sha = next((vw.result["artifact"]["sha256"] for vw in views if vw.variant == v.label), None)
        v.metrics = cat.metrics_for(art_sha, v.bundle_sha256, v.bundle_name,
                                    prefer_bundle=v.precision in (None, "fp32"))
    _evaluated_only(cat, variants)
    for v in variants.values():
        meta = cat.bundles.get(v.bundle_sha256 or "")
        if meta is not None:
            w = meta.get("weights", {})
            # The deployed network (no training head); bundles written before these counts existed: all, dense.
            v.parameters = w.get("deployed_parameters", w.get("num_parameters"))
            v.nonzero_parameters = w.get("deployed_nonzero", v.parameters)
            v.shrinkbench_parameters, v.shrinkbench_nonzero_parameters = shrinkbench_counts(meta)
            v.bundle_size_bytes = meta.get("weights", {}).get("size_bytes")
            if with_flops:
                if meta["weights"]["sha256"] not in flops:
                    flops[meta["weights"]["sha256"]] = paper.bundle_flops(meta)
                    why = flops[meta["weights"]["sha256"]][2]
                    if why and why != "weights not in the bundle folder":
                        problems.append(f"{meta.get('name')}: {why}")
                v.flops, v.effective_flops, _ = flops[meta["weights"]["sha256"]]
        v.method, v.ratio, v.ratio_of = paper.describe_recipe(meta)
    ref = max((v for v in variants.values() if v.parameters), key=lambda v: v.parameters, default=None)
    for v in variants.values():
        if ref is not None and v.nonzero_parameters:
            v.compression = ref.parameters / v.nonzero_parameters
        if ref is not None and ref.shrinkbench_parameters and v.shrinkbench_nonzero_parameters:
            v.compression_shrinkbench = ref.shrinkbench_parameters / v.shrinkbench_nonzero_parameters
    ordered = sorted(variants.values(), key=lambda v: (-(v.parameters or 0), v.label))
    rows = sorted({vw.row for vw in views if vw.trusted})
    cells: dict[tuple[str, str], Cell] = {}
    for vw in (vw for vw in views if vw.trusted):
        cells.setdefault((vw.row, vw.variant), Cell(vw.row, vw.variant, [], None)).runs.append(vw)
    for c in cells.values():
        pooled = [x for vw in c.runs if vw.summary is not None for x in vw.result["latency_ns"]]
        c.summary = summarize(pooled) if pooled else None
    return Report(views, rows, ordered, cells, cat, problems,
                  _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), min_iterations,
                  [vw for vw in views if not vw.trusted])


def write_report(report: Report, out: str | Path, plots: bool = True, force: bool = False) -> list[Path]:
    """Write report.md, report.html, the CSVs, report.json and plots/ atomically into ``out``.

    ``out`` is replaced only if it is new, empty or an earlier report (``force``: anything).
    """
    from toolchain.report import render

    out = Path(out)
    with atomic_dir(out, "report", force) as tmp:
        figures: dict[str, Any] = {}
        if plots:
            from toolchain.report import plots as plots_mod

            figures = plots_mod.write_all(report, tmp / "plots")
        render.write_all(report, tmp, figures)
    return sorted(p for p in out.rglob("*") if p.is_file())
