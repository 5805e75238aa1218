"""Render a :class:`~toolchain.report.model.Report` as Markdown, a self-contained HTML page, CSV and JSON.

The same table builders feed every format, so the Markdown, HTML and CSV never disagree.
Milliseconds in tables are formatted from the nanosecond statistics; CSVs keep full precision.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolchain.fsutil import atomic_write_json, atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from toolchain.report.model import Report
    from toolchain.report.stats import Summary

Table = tuple[list[str], list[list[str]]]


def _ms(ns: float | None) -> str:
    """Milliseconds, 3 significant digits below 1 ms, else 2 decimals: 0.0224, 6.35, 412.88."""
    if ns is None:
        return "–"
    ms = ns / 1e6
    return f"{ms:.3g}" if abs(ms) < 1 else f"{ms:.2f}"


def _cell_text(s: "Summary | None") -> str:
    if s is None:
        return "–"
    return f"{_ms(s.median_ns)} [{_ms(s.ci_low_ns)}, {_ms(s.ci_high_ns)}]"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def paper_table(rep: "Report") -> Table:
    """Rows = device · runtime, columns = the timed variants; footer rows = model facts and accuracy.

    A variant nothing timed is a row of the paper table (report/paper.py), not an empty column here.
    """
    timed = {lab for (_, lab), c in rep.cells.items() if c.summary is not None}
    variants = [v for v in rep.variants if v.label in timed]
    head = ["device · runtime"] + [v.label for v in variants]
    rows = [[row] + [_cell_text(rep.cells[(row, v.label)].summary) if (row, v.label) in rep.cells else "–"
                     for v in variants] for row in rep.rows]
    rows.append(["parameters"] + [f"{v.parameters:,}" if v.parameters else "–" for v in variants])
    if any(v.nonzero_parameters != v.parameters for v in variants):
        rows.append(["non-zero parameters"] + [f"{v.nonzero_parameters:,}" if v.nonzero_parameters else "–"
                                               for v in variants])
    rows.append(["compression ×"] + [f"{v.compression:.2f}" if v.compression else "–" for v in variants])
    rows.append(["compression × ShrinkBench"] + [f"{v.compression_shrinkbench:.2f}" if v.compression_shrinkbench
                                                 else "n/a" for v in variants])
    rows.append(["bundle size (MB)"] + [f"{v.bundle_size_bytes / 1e6:.2f}" if v.bundle_size_bytes else "–"
                                        for v in variants])
    rows.append(["EER (%)"] + [_pct(v.eer) for v in variants])
    for k in rep.far_keys:
        rows.append([f"TAR @ FAR={k} (%)"] + [_pct(v.metrics.tar_at_far.get(k) if v.metrics else None)
                                             for v in variants])
    return head, rows


def _median(values: list[int] | None) -> float | None:
    """The middle warm load (results v2 ``warm_load_ns``); None when there is none."""
    if not values:
        return None
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def _mb(n_bytes: int | None) -> str:
    return "–" if n_bytes is None else f"{n_bytes / 1e6:.1f}"


def runs_table(rep: "Report") -> Table:
    head = ["run", "device", "OS", "runtime", "variant", "status", "n", "median ms", "p90 ms", "mean ± sd ms",
            "min ms", "median 95% CI ms", "first inference ms", "load ms", "cold load ms", "warm load ms", "peak MB",
            "flags"]
    rows = []
    for vw in (vw for vw in rep.runs if vw.trusted):  # the untrusted are shown apart, untimed
        r, s = vw.result, vw.summary
        rt = r["runtime"]
        flags = ", ".join(f.check for f in vw.flags if f.level in ("warn", "fail")) or "–"
        rows.append([
            r["run_id"], vw.device, r["device"]["os_version"],
            " ".join(str(x) for x in (rt["name"], rt["version"], rt.get("compute_units")) if x),
            vw.variant, r["status"], str(len(r["latency_ns"])),
            _ms(s.median_ns if s else None), _ms(s.p90_ns if s else None),
            "–" if s is None else f"{_ms(s.mean_ns)} ± {_ms(s.sd_ns) if s.sd_ns is not None else '–'}",
            _ms(s.min_ns if s else None),
            "–" if s is None else f"[{_ms(s.ci_low_ns)}, {_ms(s.ci_high_ns)}]",
            _ms(r.get("first_inference_ns")), _ms(r.get("load_ns")), _ms(r.get("cold_load_ns")),
            _ms(_median(r.get("warm_load_ns"))), _mb((r.get("memory") or {}).get("peak_bytes")), flags,
        ])
    return head, rows


MAX_RUN_IDS = 3


def checks_table(rep: "Report") -> Table:
    """The problems only (warn, fail), one row per distinct finding with the runs it concerns; the rest in checks.csv."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for vw in rep.runs:
        for f in vw.flags:
            if f.level in ("warn", "fail"):
                groups.setdefault((f.level, f.check, f.message), []).append(vw.run_id)
    head = ["level", "check", "detail", "runs"]
    rows = []
    for (level, check, message), ids in sorted(groups.items(), key=lambda kv: (kv[0][0] != "fail", kv[0][1:])):
        more = f" and {len(ids) - MAX_RUN_IDS} more" if len(ids) > MAX_RUN_IDS else ""
        rows.append([level, check, message, f"{len(ids)}: " + ", ".join(ids[:MAX_RUN_IDS]) + more])
    return head, rows


def skipped_line(rep: "Report") -> str:
    """Checks that could not run, counted per check in one sentence (not one line per run)."""
    counts: dict[str, int] = {}
    for vw in rep.runs:
        for f in vw.flags:
            if f.level == "skipped":
                counts[f.check] = counts.get(f.check, 0) + 1
    if not counts:
        return ""
    return " Not checked (reasons in checks.csv): " + ", ".join(f"{c} in {n} runs" for c, n in sorted(counts.items())) + "."


def untrusted_table(rep: "Report") -> Table:
    """Artifacts whose export parity did not pass: which, where they ran, their cosine; never their timings."""
    from toolchain.report.checks import parity_text

    head = ["variant", "artifact", "format", "parity", "cosine and reason", "runs (not timed)"]
    seen: dict[str, list[str]] = {}
    info: dict[str, list[str]] = {}
    for vw in rep.untrusted:
        sha = vw.result["artifact"]["sha256"]
        man = rep.catalog.manifests.get(sha) or {}
        p = man.get("parity") or {}
        info.setdefault(sha, [vw.variant, str(man.get("name") or sha[:12]), str(man.get("format") or "–"),
                              str(p.get("status") or "not recorded"), parity_text(p) or "–"])
        seen.setdefault(sha, []).append(f"{vw.run_id} ({vw.row})")
    return head, [info[sha] + ["; ".join(runs)] for sha, runs in seen.items()]


def models_table(rep: "Report") -> Table:
    head = ["variant", "bundle sha256", "parameters", "non-zero", "compression ×", "compression × ShrinkBench",
            "bundle MB", "artifact sizes MB", "EER (%)", "metrics from"]
    rows = []
    for v in rep.variants:
        sizes = ", ".join(f"{fmt} {s / 1e6:.2f}" for fmt, s in sorted(v.artifact_sizes.items())) or "–"
        rows.append([v.label, (v.bundle_sha256 or "–")[:12], f"{v.parameters:,}" if v.parameters else "–",
                     f"{v.nonzero_parameters:,}" if v.nonzero_parameters else "–",
                     f"{v.compression:.2f}" if v.compression else "–",
                     f"{v.compression_shrinkbench:.2f}" if v.compression_shrinkbench else "n/a",
                     f"{v.bundle_size_bytes / 1e6:.2f}" if v.bundle_size_bytes else "–", sizes, _pct(v.eer),
                     str(v.metrics.source) if v.metrics else "no metrics.json matched"])
    return head, rows


def _md_table(t: Table) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    head, rows = t
    lines = ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)


def _sections(rep: "Report") -> list[tuple[str, str, Table | None]]:
    from toolchain.report import paper

    untrusted = ([("Not timed: export parity did not pass", "These artifacts ran, but their export parity with "
                   "PyTorch is not \"passed\" (failed, skipped or unverified): their timings are left out of every "
                   "table and figure above and below.", untrusted_table(rep))] if rep.untrusted else [])
    return [
        ("Paper table", "One row per variant (every evaluated one, timed or not). EER, TAR at each FAR and top-1 "
         "(closed-set, when the evaluation has it) in %; comp. × = compression over the deployed network, SB = over "
         "ShrinkBench's whole model; MB = the fp32 weights (reduced precision: the artifact); FLOPs of one image in "
         "millions, eff. = non-zero weights only (ShrinkBench's); median feature-extraction time per device · runtime "
         "in ms (the next table has its 95 % CI). †: an fp16/int8 variant with no evaluation of its own, shown with "
         "its fp32 bundle's accuracy. Also paper.csv and paper.tex.", paper.table(rep)),
        *untrusted,
        ("Feature extraction time", "Median over every timed iteration of the runs in each cell, in ms, with the "
         "percentile-bootstrap 95 % CI of the median in brackets (2000 resamples, seed 0). Footer: model facts "
         "and accuracy joined from bundles and the evaluation's metrics.", paper_table(rep)),
        ("Runs", "One line per results file; statistics from its raw samples only. First inference and load "
         "times are reported separately and never mixed into the latency samples.", runs_table(rep)),
        ("Checks", f"Problems only, each once with the runs it concerns (numerics vs the manifest's PyTorch "
         f"reference, export parity, thermal state, fewer than {rep.min_iterations} iterations, unknown artifact hash, "
         "failed runs). Every check of every run is in checks.csv/report.json." + skipped_line(rep),
         checks_table(rep)),
        ("Models", "Compression × (compression_deployed) = deployed (trunk) parameters of the largest variant shown / "
         "deployed non-zero parameters of this one: unstructured pruning keeps the shapes and zeroes weights. "
         "Compression × ShrinkBench (compression_shrinkbench) = the same over the whole model, classification head "
         "included, as ShrinkBench's model_size counts; the head is counted dense unless the bundle records its "
         "non-zeros. A paper quoting ShrinkBench ratios compares with the second.",
         models_table(rep)),
    ]


def protocol_line(rep: "Report") -> str | None:
    """Which verification protocol the accuracy numbers come from (EERs of different protocols do not compare)."""
    labels = {v.metrics.protocol or "not recorded" for v in rep.variants if v.metrics}
    if not labels:
        return None
    if len(labels) == 1:
        return f"Verification protocol of the accuracy columns: {labels.pop()}."
    return (f"Verification protocols differ between variants ({'; '.join(sorted(labels))}): their EERs are not "
            "comparable.")


def markdown(rep: "Report", figures: dict[str, dict[str, Any]]) -> str:
    out = ["# Benchmark report", "", f"{len(rep.runs)} runs, {len(rep.rows)} device · runtime rows, "
           f"{len(rep.variants)} variants. Generated {rep.created_at}.", ""]
    if line := protocol_line(rep):
        out += [line, ""]
    for title, note, table in _sections(rep):
        out += [f"## {title}", "", note, ""]
        out += [_md_table(table) if table and table[1] else "_none_", ""]
    out += ["## Figures", ""]
    for name, f in figures.items():
        if "skipped" in f:
            out += [f"- {f['title']}: skipped ({f['skipped']})"]
        else:
            out += [f"### {f['title']}", "", f"![{f['title']}]({f['png']})", ""]
            out += [f"[SVG]({f['svg']})", ""] if f.get("svg") else []
    if rep.problems:
        out += ["", "## Files not used", ""] + [_md_problem(p) for p in rep.problems]
    return "\n".join(out) + "\n"


def _md_problem(problem: str) -> str:
    """One list item per file, its reason's later lines (one per schema problem) as a nested list."""
    head, *rest = [line.strip() for line in problem.strip().splitlines() if line.strip()] or [""]
    return "\n".join([f"- {head}"] + [f"  - {line}" for line in rest])


# Wide tables scroll inside their own box (.scroll), never the page: the page fits 1280 px (tests/report).
CSS = """body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;color:#222;max-width:1400px;
overflow-wrap:anywhere}.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:1em 0;font-size:13px;overflow-wrap:normal}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
td.num,table.paper td{text-align:right;white-space:nowrap}table.paper td:nth-child(-n+3){text-align:left}th{background:#eef2f7}tr:nth-child(even) td{background:#fafafa}
.fail{color:#b00020;font-weight:bold}.warn{color:#a86400}.note{color:#555;font-size:13px}
figure{margin:1.5em 0}figure img{max-width:100%;height:auto}figcaption{font-weight:bold;font-size:14px}"""


_NUMERIC = re.compile(r"^[-–\d.,\[\] ±]+$")
_NUM_ATTR = ' class="num"'


def _html_table(t: Table, level_col: int | None = None, css_class: str | None = None) -> str:
    head, rows = t
    if not rows:
        return "<p><em>none</em></p>"
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    body = []
    for r in rows:
        cls = f' class="{html.escape(r[level_col])}"' if level_col is not None else ""
        tds = "".join(f"<td{_NUM_ATTR if _NUMERIC.match(str(c)) else ''}>{html.escape(str(c))}</td>" for c in r)
        body.append(f"<tr{cls}>{tds}</tr>")
    cls_attr = f' class="{css_class}"' if css_class else ""
    return f"<div class=\"scroll\"><table{cls_attr}><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def html_page(rep: "Report", figures: dict[str, dict[str, Any]], folder: Path) -> str:
    """One file, no external references: CSS inline, figures as PNG data URLs (their SVGs are linked)."""
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Benchmark report</title>"
             f"<style>{CSS}</style></head><body><h1>Benchmark report</h1>",
             f"<p class=\"note\">{len(rep.runs)} runs, {len(rep.rows)} device · runtime rows, {len(rep.variants)} "
             f"variants. Generated {html.escape(rep.created_at)}.</p>"]
    if line := protocol_line(rep):
        parts.append(f"<p class=\"note\">{html.escape(line)}</p>")
    for title, note, table in _sections(rep):
        parts.append(f"<h2>{html.escape(title)}</h2><p class=\"note\">{html.escape(note)}</p>")
        parts.append(_html_table(table, level_col=0 if title == "Checks" else None,
                                 css_class="paper" if title == "Paper table" else None))
    parts.append("<h2>Figures</h2>")
    for f in figures.values():
        if "skipped" in f:
            parts.append(f"<p class=\"note\">{html.escape(f['title'])}: skipped ({html.escape(f['skipped'])})</p>")
            continue
        # the PNG inline as a data: URL (the page stays one file); the title once, as the caption (not in the image)
        png = base64.b64encode((folder / f["png"]).read_bytes()).decode("ascii")
        link = f" <a href=\"{html.escape(f['svg'])}\">SVG</a>" if f.get("svg") else ""
        parts.append(f"<figure><figcaption>{html.escape(f['title'])}{link}</figcaption>"
                     f"<img src=\"data:image/png;base64,{png}\" alt=\"{html.escape(f['title'])}\"></figure>")
    if rep.problems:
        parts.append("<h2>Files not used</h2><ul>" + "".join(
            f"<li style=\"white-space:pre-wrap\">{html.escape(p.strip())}</li>" for p in rep.problems)
                     + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _csv(head: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    w.writerows(rows)
    return buf.getvalue()


def _num(x: float | None, scale: float = 1e-6) -> Any:
    return "" if x is None else round(x * scale, 6)


def csv_files(rep: "Report") -> dict[str, str]:
    stat_cols = ["n", "median_ms", "p90_ms", "mean_ms", "sd_ms", "min_ms", "max_ms", "ci_low_ms", "ci_high_ms"]

    def stats(s: "Summary | None") -> list[Any]:
        if s is None:
            return [0] + [""] * 8
        return [s.n] + [_num(getattr(s, f)) for f in ("median_ns", "p90_ns", "mean_ns", "sd_ns", "min_ns", "max_ns",
                                                      "ci_low_ns", "ci_high_ns")]

    runs = [[vw.run_id, vw.device, vw.result["device"]["identifier"], vw.result["device"]["os_version"],
             vw.result["runtime"]["name"], vw.result["runtime"].get("compute_units") or "", vw.variant,
             vw.result["artifact"]["sha256"], vw.result["status"], *stats(vw.summary),
             _num(vw.result.get("first_inference_ns")), _num(vw.result.get("load_ns")),
             _num(vw.result.get("cold_load_ns")), _num(_median(vw.result.get("warm_load_ns"))),
             (vw.result.get("memory") or {}).get("peak_bytes") or "",
             ";".join(f.check for f in vw.flags if f.level in ("warn", "fail")),
             "yes" if vw.trusted else "no"] for vw in rep.runs]
    table = [[c.row, c.variant, len(c.runs), *stats(c.summary)] for c in rep.cells.values()]
    models = [[v.label, v.bundle_sha256 or "", v.parameters or "", v.nonzero_parameters or "",
               round(v.compression, 6) if v.compression else "",
               round(v.compression, 6) if v.compression else "",
               round(v.compression_shrinkbench, 6) if v.compression_shrinkbench else "",
               v.bundle_size_bytes or "", v.eer if v.eer is not None else "",
               *[(v.metrics.tar_at_far.get(k, "") if v.metrics else "") for k in rep.far_keys]] for v in rep.variants]
    checks = [[vw.run_id, f.check, f.level, f.message] for vw in rep.runs for f in vw.flags]
    from toolchain.report import paper

    return {
        "paper.csv": _csv(*paper.csv_rows(rep)),
        "runs.csv": _csv(["run_id", "device", "identifier", "os_version", "runtime", "compute_units", "variant",
                          "artifact_sha256", "status", *stat_cols, "first_inference_ms", "load_ms", "cold_load_ms",
                          "warm_load_ms", "peak_memory_bytes", "flags", "timed_in_report"], runs),
        "table.csv": _csv(["device_runtime", "variant", "runs", *stat_cols], table),
        "models.csv": _csv(["variant", "bundle_sha256", "parameters", "nonzero_parameters", "compression",
                            "compression_deployed", "compression_shrinkbench", "bundle_size_bytes", "eer",
                            *[f"tar_at_far_{k}" for k in rep.far_keys]], models),
        "checks.csv": _csv(["run_id", "check", "level", "detail"], checks),
    }


def report_json(rep: "Report", figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "created_at": rep.created_at,
        "rows": rep.rows,
        "variants": [{"label": v.label, "bundle_sha256": v.bundle_sha256, "parameters": v.parameters,
                      "nonzero_parameters": v.nonzero_parameters, "compression": v.compression,
                      "compression_deployed": v.compression,
                      "shrinkbench_parameters": v.shrinkbench_parameters,
                      "shrinkbench_nonzero_parameters": v.shrinkbench_nonzero_parameters,
                      "compression_shrinkbench": v.compression_shrinkbench,
                      "bundle_size_bytes": v.bundle_size_bytes,
                      "artifact_sizes": v.artifact_sizes, "eer": v.eer,
                      "tar_at_far": v.metrics.tar_at_far if v.metrics else None,
                      "metrics_source": str(v.metrics.source) if v.metrics else None,
                      "verification_protocol": v.metrics.protocol if v.metrics else None,
                      "closed_set": v.metrics.closed_set if v.metrics else None, "method": v.method,
                      "ratio": v.ratio, "ratio_of": v.ratio_of, "flops": v.flops,
                      "effective_flops": v.effective_flops} for v in rep.variants],
        "not_timed": [{"run_id": vw.run_id, "variant": vw.variant, "artifact_sha256": vw.result["artifact"]["sha256"],
                       "parity": (rep.catalog.manifests.get(vw.result["artifact"]["sha256"]) or {}).get("parity")}
                      for vw in rep.untrusted],
        "cells": [{"row": c.row, "variant": c.variant, "runs": [vw.run_id for vw in c.runs],
                   "summary": c.summary.to_json() if c.summary else None} for c in rep.cells.values()],
        "runs": [{"run_id": vw.run_id, "row": vw.row, "variant": vw.variant, "status": vw.result["status"],
                  "summary": vw.summary.to_json() if vw.summary else None,
                  "first_inference_ns": vw.result.get("first_inference_ns"), "load_ns": vw.result.get("load_ns"),
                  "flags": [{"check": f.check, "level": f.level, "message": f.message} for f in vw.flags]}
                 for vw in rep.runs],
        "figures": figures,
        "problems": rep.problems,
    }


def write_all(rep: "Report", folder: Path, figures: dict[str, dict[str, Any]]) -> None:
    atomic_write_text(folder / "report.md", markdown(rep, figures))
    atomic_write_text(folder / "report.html", html_page(rep, figures, folder))
    for name, text in csv_files(rep).items():
        atomic_write_text(folder / name, text)
    from toolchain.report import paper

    atomic_write_text(folder / "paper.tex", paper.latex(rep))
    atomic_write_json(folder / "report.json", report_json(rep, figures))
