"""The paper table: one row per model variant (method × ratio), accuracy, size, FLOPs and latency side by side.

This is the table the three studies print (Almadan & Rattani 2021 Table II/III; Hong et al. 2022 Table 4): a row
is a compressed variant, its columns what a reader compares. Every variant an evaluation measured is a row even
when no device timed it (its latency cells stay empty), and a timing of an artifact whose export parity did not
pass never appears here (``Report.untrusted``; the page shows those apart with their cosine).

Columns: variant, method and target ratio (from model.json's ``provenance.recipe``), EER and TAR at each FAR (the
evaluation's ``metrics.json``), top-1 when the evaluation has a closed-set part (``closed_set.top1``), both
compression ratios (see ``report/build.py``), size, dense and effective FLOPs, then the median feature-extraction
time per device · runtime. The same rows are written as HTML/Markdown, ``paper.csv`` (full precision) and
``paper.tex`` (booktabs, for ``\\input``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from toolchain.report.model import Report, Variant

log = logging.getLogger(__name__)

#: the method column's order: the uncompressed model first, KD students after the pruned ones
METHOD_ORDER = {"baseline": 0, "KD": 2, "structured": 3, "unknown": 4}


def describe_recipe(meta: dict[str, Any] | None) -> tuple[str, float | None, str | None]:
    """(method, target ratio, ratio definition) of a bundle, from its ``provenance.recipe``.

    >>> describe_recipe({"provenance": {"recipe": {"kind": "unstructured", "method": "layer-magnitude", "ratio": 8.0,
    ...                                            "ratio_of": "shrinkbench"}}})
    ('layer-magnitude', 8.0, 'shrinkbench')
    >>> describe_recipe({"provenance": {"recipe": {"kind": "distill"}}})
    ('KD', None, None)
    >>> describe_recipe({"provenance": {}})
    ('baseline', None, None)
    >>> describe_recipe(None)
    ('unknown', None, None)
    """
    if meta is None:
        return "unknown", None, None
    recipe = (meta.get("provenance") or {}).get("recipe") or {}
    kind = recipe.get("kind")
    if kind == "unstructured":
        ratio = recipe.get("ratio")
        return str(recipe.get("method")), float(ratio) if isinstance(ratio, (int, float)) else None, recipe.get("ratio_of")
    if kind == "distill":
        return "KD", None, None
    if kind == "structured" or kind:
        return "structured", None, None
    return "baseline", None, None


def bundle_flops(meta: dict[str, Any]) -> tuple[int | None, int | None, str | None]:
    """(dense, effective) FLOPs of one image through the bundle's deployed network, or why not (third item).

    Counted by :func:`toolchain.compress.measure.count_flops` on the bundle's own weights (torch imported only
    here, only when a bundle folder is there): model.json does not store FLOPs.
    """
    folder = meta.get("_folder")
    wfile = Path(folder) / (meta.get("weights") or {}).get("file", "weights.safetensors") if folder else None
    if wfile is None or not wfile.is_file():
        return None, None, "weights not in the bundle folder"
    try:
        from toolchain.compress.measure import count_flops
        from toolchain.models.bundle import load_bundle

        bundle = load_bundle(folder)
        dense, eff = count_flops(bundle.model, bundle.input_chw)  # its own channels and H x W
    except Exception as e:  # noqa: BLE001 - any failure is a missing number with its reason, not a lost report
        return None, None, f"FLOPs not counted: {e}"
    return dense, eff, None


def _ratio_text(v: "Variant") -> str:
    if v.ratio is None:
        return "–"
    return f"{v.ratio:g}×" + (" (SB)" if v.ratio_of == "shrinkbench" else "")


def borrows_metrics(v: "Variant") -> bool:
    """An fp16/int8 variant shown with its bundle's (fp32) evaluation: no evaluation of its own was given."""
    return (v.metrics is not None and v.precision not in (None, "fp32")
            and v.metrics.model.get("kind") != "artifact" and "artifact_sha256" not in v.metrics.ids)


def sort_key(v: "Variant") -> tuple[Any, ...]:
    return (METHOD_ORDER.get(v.method, 1), v.method, v.ratio or 0.0, v.precision or "", v.label)


def has_top1(rep: "Report") -> bool:
    """A top-1 column only when some evaluation has a closed-set part."""
    return any(v.top1 is not None for v in rep.variants)


def columns(rep: "Report") -> list[str]:
    """Short headers (the page must fit 1280 px); the section's note and paper.csv spell them out."""
    return (["variant", "method", "ratio", "EER %"] + [f"TAR@{k} %" for k in rep.far_keys]
            + (["top-1 %"] if has_top1(rep) else [])
            + ["comp. ×", "comp. × SB", "MB", "MFLOPs", "eff. MFLOPs"]
            + [f"{row} (ms)" for row in rep.rows])


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _x(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _mb(n_bytes: int | None) -> str:
    """MB, 2 decimals, 3 significant digits below 0.1 MB (a tiny model is not "0.00")."""
    if n_bytes is None:
        return "–"
    mb = n_bytes / 1e6
    return f"{mb:.2f}" if mb >= 0.1 else f"{mb:.3g}"


def _mflops(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e6:,.1f}"


def _ms(ns: float | None) -> str:
    if ns is None:
        return "–"
    ms = ns / 1e6
    return f"{ms:.3g}" if abs(ms) < 1 else f"{ms:.2f}"


def table(rep: "Report") -> tuple[list[str], list[list[str]]]:
    """The paper table as text cells (HTML, Markdown and LaTeX read this)."""
    head = columns(rep)
    top1 = has_top1(rep)
    rows = []
    for v in sorted(rep.variants, key=sort_key):
        tar = v.metrics.tar_at_far if v.metrics else {}
        mark = " †" if borrows_metrics(v) else ""  # the note under the table says what † means
        cells = [v.label, v.method, _ratio_text(v), _pct(v.eer) + mark] + [_pct(tar.get(k)) for k in rep.far_keys]
        cells += [_pct(v.top1)] if top1 else []
        cells += [_x(v.compression), _x(v.compression_shrinkbench), _mb(v.size_bytes), _mflops(v.flops),
                  _mflops(v.effective_flops)]
        for row in rep.rows:
            c = rep.cells.get((row, v.label))
            cells.append(_ms(c.summary.median_ns) if c is not None and c.summary is not None else "–")
        rows.append(cells)
    return head, rows


def csv_rows(rep: "Report") -> tuple[list[str], list[list[Any]]]:
    """Full precision, machine-readable names; latency as median and its 95 % CI per device · runtime."""
    head = ["variant", "method", "ratio", "ratio_of", "precision", "bundle_sha256", "eer",
            *[f"tar_at_far_{k}" for k in rep.far_keys], "top1", "top5", "metrics_of", "compression_deployed",
            "compression_shrinkbench", "size_bytes", "flops", "effective_flops"]
    for row in rep.rows:
        head += [f"{row} median_ms", f"{row} ci_low_ms", f"{row} ci_high_ms"]
    out = []
    blank = lambda x: "" if x is None else x  # noqa: E731
    for v in sorted(rep.variants, key=sort_key):
        cs = (v.metrics.closed_set if v.metrics else None) or {}
        line = [v.label, v.method, blank(v.ratio), blank(v.ratio_of), blank(v.precision), blank(v.bundle_sha256),
                blank(v.eer), *[blank((v.metrics.tar_at_far if v.metrics else {}).get(k)) for k in rep.far_keys],
                blank(v.top1), blank(cs.get("top5")),
                "" if v.metrics is None else "bundle fp32" if borrows_metrics(v) else "own",
                blank(v.compression), blank(v.compression_shrinkbench),
                blank(v.size_bytes), blank(v.flops), blank(v.effective_flops)]
        for row in rep.rows:
            c = rep.cells.get((row, v.label))
            s = c.summary if c is not None else None
            line += ["", "", ""] if s is None else [s.median_ns / 1e6, s.ci_low_ns / 1e6, s.ci_high_ns / 1e6]
        out.append(line)
    return head, out


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "×": r"$\times$", "–": "--",
        "·": r"$\cdot$", "†": r"$\dagger$"}


def tex_escape(text: str) -> str:
    r"""LaTeX-safe text.

    >>> tex_escape("layer_magnitude 8× (SB) 5%")
    'layer\\_magnitude 8$\\times$ (SB) 5\\%'
    """
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def latex(rep: "Report") -> str:
    """A booktabs ``table*`` of the paper table (needs ``\\usepackage{booktabs}``)."""
    head, rows = table(rep)
    spec = "ll" + "l" + "r" * (len(head) - 3)
    lines = ["% written by `deploy report` (toolchain/report/paper.py); needs \\usepackage{booktabs}",
             "\\begin{table*}[t]", "\\centering", "\\scriptsize", f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
             " & ".join(tex_escape(h) for h in head) + r" \\", "\\midrule"]
    lines += [" & ".join(tex_escape(c) for c in r) + r" \\" for r in rows]
    lines += ["\\bottomrule", "\\end{tabular}",
              "\\caption{EER, TAR at fixed FAR and top-1 in \\%; compression $\\times$ over the deployed network and "
              "ShrinkBench's whole model (SB); FLOPs per image (effective: non-zero weights only); median "
              "feature-extraction time per device $\\cdot$ runtime in ms. $\\dagger$: accuracy of the fp32 "
              "bundle (this precision was not evaluated). Artifacts whose export parity did not pass are not timed "
              "here.}", "\\label{tab:compression}", "\\end{table*}", ""]
    return "\n".join(lines)
