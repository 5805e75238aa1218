"""`deploy export`: bundle -> ONNX / Core ML / TFLite, parity-checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.text import Text

from toolchain.cli import app
from toolchain.artifact.formats import PRECISIONS
from toolchain.cli._common import DEVICE_KEYS, ForceOpt, console, err_console, styled
from toolchain.policy import LOSSY_COMPRESSION_MIN_COSINE, MIN_COSINE_BY_PRECISION

_MIN_COSINE_HELP = ("Parity threshold per sample (default, toolchain.policy: "
                    + ", ".join(f"{k} {v}" for k, v in MIN_COSINE_BY_PRECISION.items())
                    + f"; k-means palettes {min(LOSSY_COMPRESSION_MIN_COSINE.values())}).")


def parity_table(outcomes, title: str = "Exports"):
    """One row per artifact: what it is, where it runs, its size and its parity numbers."""
    from rich.table import Table

    from toolchain.artifact.formats import get_format

    t = Table(title=title, title_justify="left")
    for col in ("artifact", "format", "precision", "devices", "size MB", "parity", "cosine min", "max abs", "checked with"):
        t.add_column(col, justify="right" if col in ("size MB", "cosine min", "max abs") else "left")
    for o in outcomes:
        m, p = o.manifest, o.manifest.parity
        colour = {"passed": "green", "failed": "red", "skipped": "yellow", "unverified": "yellow"}[p.status]
        t.add_row(m.name, get_format(m.format).label(m), m.precision, ",".join(m.devices) or "-",
                  f"{(m.size_bytes or 0) / 1e6:.1f}", Text(p.status, style=colour),
                  "-" if p.cosine_min is None else f"{p.cosine_min:.6f}",
                  "-" if p.max_abs is None else f"{p.max_abs:.2e}",
                  p.reference or (p.reason or ""))
    return t


@app.command("export")
def export(
    bundle: Annotated[Path, typer.Argument(help="Model bundle folder (model.json + model.safetensors).")],
    target: Annotated[list[str], typer.Option("--target", "-t", help="onnx, coreml or tflite (repeatable).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder; one sub-folder (artifact + manifest.json) per artifact.")],
    device: Annotated[Optional[list[str]], typer.Option("--device", "-d", help=f"{DEVICE_KEYS} (repeatable, comma-separated, or 'all'). Picks format, spec version, precision and minimum OS.")] = None,
    precision: Annotated[Optional[Literal[PRECISIONS]], typer.Option(help="fp32, fp16 or int8 (default per target: Core ML fp16, ONNX/TFLite fp32).")] = None,
    min_ios: Annotated[Optional[int], typer.Option("--min-ios", help="Override the minimum iOS (12..18): 12 = NeuralNetwork spec 3, 13-14 NeuralNetwork, 15+ ML Program.")] = None,
    layout: Annotated[Optional[Literal["nchw", "nhwc"]], typer.Option(help="Input layout nchw or nhwc (default: TFLite nhwc, others nchw).")] = None,
    calibration: Annotated[Optional[Path], typer.Option(help="Folder of images for int8 calibration and parity inputs' calibration (default: seeded synthetic images).")] = None,
    compress: Annotated[Optional[str], typer.Option(
        help="Core ML weight compression: sparse (exact zeros, lossless), palettize4/6/8 (iOS 16+); "
             "sparse-palettize4/6/8: both at once, for pruned models (iOS 18+).")] = None,
    int8: Annotated[Literal["static", "dynamic"], typer.Option("--int8", help="TFLite int8 kind: static (calibrated activations) or dynamic (dynamic range).")] = "static",
    min_cosine: Annotated[Optional[float], typer.Option("--min-cosine", help=_MIN_COSINE_HELP)] = None,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the parity check (recorded as skipped in the manifest).")] = False,
    data: Annotated[Optional[Path], typer.Option("--data", help="Folder of your own images: parity runs on up to 8 of them, never on calibration images (default: held out from --calibration, else seeded images).")] = None,
    allow_unverified: Annotated[bool, typer.Option("--allow-unverified", help="Keep an artifact whose parity cannot run here (an op the executor lacks), recorded as 'unverified'; without it the export exits non-zero.")] = False,
    force: ForceOpt = False,
) -> None:
    """Export a bundle for target devices, and check each artifact against PyTorch.

    Example: deploy export b --target coreml --device iphone6 --out exports
    """
    from toolchain.errors import ParityError
    from toolchain.export.base import ExportRequest, export_bundle

    outcomes = []
    failure: ParityError | None = None
    for tgt in target:
        req = ExportRequest(bundle_dir=bundle, target=tgt, out=out, devices=device or [], precision=precision,
                            min_ios=min_ios, layout=layout, calibration_dir=calibration, verify=not no_verify,
                            min_cosine=min_cosine, compress=compress, int8_mode=int8, force=force,
                            data_dir=data, allow_unverified=allow_unverified)
        with err_console.status(f"exporting {bundle} to {tgt}...") as status:
            def say(msg: str) -> None:
                status.update(msg)
                err_console.log(msg)
            try:
                outcomes += export_bundle(req, progress=say)
            except ParityError as e:  # this run's artifacts, the failed ones included (nothing else in --out)
                failure = e
                outcomes += e.outcomes
    for o in outcomes:
        for r in o.reasons:
            console.print(f"  {o.manifest.name}: {r}")
    console.print(parity_table(outcomes))
    from toolchain.export.verdict import hints, summary

    for o in outcomes:
        m, p = o.manifest, o.manifest.parity
        if p.status in ("skipped", "unverified"):
            console.print(styled((f"parity {p.status}", "yellow"), f" for {m.name}: {p.reason}"))
            continue
        colour = "green" if p.status == "passed" else "red"
        console.print(styled((f"{m.name}: ", colour), summary(p, m.precision)), soft_wrap=True)
        for hint in hints(p, m.precision, p.inputs == "user", m.compress):
            console.print(f"  try: {hint}", soft_wrap=True)
    console.print(f"artifacts and manifests in {out}:")
    for o in outcomes:  # whole paths, for the next command (the table may shorten names)
        console.print(f"  {out / o.manifest.name}")
    if failure is not None:
        raise failure
