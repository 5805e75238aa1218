"""`deploy data check|synth|split`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from toolchain.cli import app
from toolchain.cli._common import ForceOpt, console, progress, styled
from toolchain.data.config import SplitConfig, SynthConfig

data_app = typer.Typer(help="Data sets: check a folder, generate the synthetic set, write subject-disjoint splits "
                            "and verification protocols.", no_args_is_help=True)
app.add_typer(data_app, name="data")

LayoutOpt = Annotated[Optional[str], typer.Option("--layout", help="per-subject, ufpr, visob or csv (default: detected).")]
RegexOpt = Annotated[Optional[str], typer.Option("--subject-regex", help="Regex searched in each path relative to DIR, "
                                                 "with a (?P<subject>...) group; optional (?P<session>...), (?P<eye>...).")]
IndexOpt = Annotated[Optional[Path], typer.Option("--index", help="CSV index path,subject[,session,eye] (csv layout).")]


@data_app.command("check")
def check(
    data: Annotated[Path, typer.Argument(help="Data set folder.")],
    layout: LayoutOpt = None,
    subject_regex: RegexOpt = None,
    index: IndexOpt = None,
    size: Annotated[int, typer.Option(help="Decode every image at this size to find unreadable files (pixels).", min=8, max=4096)] = 32,
) -> None:
    """Print the layout, subjects, images, sessions, eyes and unreadable files of a data set folder."""
    from toolchain.data.images import check_images
    from toolchain.data.layouts import scan

    ds = scan(data, layout, subject_regex, index)
    per = ds.images_per_subject()
    with progress() as bar:
        task = bar.add_task("decoding", total=len(ds.samples), status="")
        bad = check_images([s.path for s in ds.samples], size, lambda n, _: bar.update(task, completed=n))
    counts = sorted(per.values())
    rows = [("folder", str(ds.root)), ("layout", ds.layout + (" (--subject-regex)" if subject_regex else "")),
            ("subjects", str(len(per))), ("identities", f"{len(ds.identities())} (subject x eye side)"),
            ("images", str(len(ds.samples))),
            ("per subject", f"min {counts[0]}, median {counts[len(counts) // 2]}, max {counts[-1]}"),
            ("sessions", f"{len(ds.sessions())}" + (f": {', '.join(ds.sessions()[:6])}"
                                                     + (" ..." if len(ds.sessions()) > 6 else "") if ds.sessions() else "")),
            ("eye sides", ", ".join(ds.eyes()) or "unknown"),
            ("unmatched", f"{len(ds.unmatched)} image file(s) the layout names no subject for"
                          + (f", e.g. {ds.unmatched[0]}" if ds.unmatched else "")),
            ("unreadable", str(len(bad))),
            ("protocols", _protocols_row(ds))]
    for k, v in rows:
        console.print(f"{k:>12}  {v}")
    for p, reason in bad[:20]:
        console.print(styled("  ", ("unreadable", "red"), f" {reason}"))
    if len(bad) > 20:
        console.print(f"  ... {len(bad) - 20} more")


def _protocols_row(ds) -> str:
    """Which verification protocols this data set supports (``deploy data split --protocol``)."""
    from toolchain.data.protocols import resolve_rules
    from toolchain.errors import DataError

    if not ds.sessions():
        return "all-pairs (no sessions: cross-session needs a layout, regex or CSV that names them)"
    try:
        return f"all-pairs, {resolve_rules(ds.layout, 'cross-session').label()} by default"
    except DataError:
        return "all-pairs, cross-session with --enrol-sessions/--verify-sessions (no layout default)"


@data_app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (per-subject layout).")],
    subjects: Annotated[int, typer.Option(help="Number of subjects.", min=1, max=100_000)] = SynthConfig.subjects,
    images_per_subject: Annotated[int, typer.Option("--images-per-subject", help="Images per subject.", min=1, max=10_000)] = SynthConfig.images_per_subject,
    size: Annotated[int, typer.Option(help="Image side in pixels.", min=32, max=4096)] = SynthConfig.size,
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same images.")] = SynthConfig.seed,
    layout: Annotated[str, typer.Option("--layout", help="per-subject (one eye, no sessions), or ufpr / visob: both "
                                        "eyes over sessions, named like those data sets (--images-per-subject is "
                                        "then per eye).")] = SynthConfig.layout,
    channels: Annotated[int, typer.Option("--channels", help="3: RGB; 1: NIR-like 8-bit grayscale (iris cameras).")] = SynthConfig.channels,
    force: ForceOpt = False,
) -> None:
    """Generate the synthetic periocular data set (deterministic per seed)."""
    import time

    from toolchain.data.synth import generate
    from toolchain.fsutil import check_output_dir

    from toolchain.data.config import SYNTH_LAYOUTS
    from toolchain.errors import DataError

    if layout not in SYNTH_LAYOUTS:
        raise DataError(f"--layout {layout!r} is not a synthetic layout; known: {', '.join(SYNTH_LAYOUTS)}")
    SynthConfig(subjects, images_per_subject, size, seed, layout, channels)  # every value in range, before any work
    check_output_dir(out, "synth", force)  # before the progress bar: a refusal is the only output
    total = subjects * images_per_subject * (1 if layout == "per-subject" else 2)
    t0 = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("rendering", total=total, status="")
        generate(out, subjects, images_per_subject, size, seed, lambda n, _: bar.update(task, completed=n), force=force,
                 layout=layout, channels=channels)
    console.print(f"wrote {total} images of {subjects} subjects ({size}x{size}{', NIR-like gray' if channels == 1 else ''}, {layout} layout) to "
                  f"{out} in {time.perf_counter() - t0:.1f} s")


def _sessions(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


@data_app.command("split")
def split(
    data: Annotated[Path, typer.Argument(help="Data set folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for splits.json, protocol-val.json, protocol-test.json, "
                                      "excluded.json.")],
    seed: Annotated[int, typer.Option(help="Seed of the subject assignment and the impostor sample.")] = SplitConfig.seed,
    fractions: Annotated[str, typer.Option(help="train,val,test shares of subjects.")] = ",".join(
        f"{f:g}" for f in SplitConfig.fractions),
    max_impostors: Annotated[int, typer.Option("--max-impostors", help="Most impostor pairs per protocol "
                                               "(all of them when fewer; else a seeded sample).")] = SplitConfig.max_impostors,
    protocol: Annotated[str, typer.Option("--protocol", help="all-pairs: every pair of a split's images; cross-session: "
                                          "enrolment-session images vs verification-session images only (our "
                                          "reading of the ufpr and visob protocols; docs/datasets.md).")] = SplitConfig.protocol,
    enrol_sessions: Annotated[Optional[str], typer.Option("--enrol-sessions", help="Cross-session: enrolment "
                              "visits, comma-separated, matched to the session's last part by number (1 = Visit1 = S1); "
                              "default: the layout's (ufpr 1, visob 1).")] = None,
    verify_sessions: Annotated[Optional[str], typer.Option("--verify-sessions", help="Cross-session: verification "
                               "visits; default: the layout's (ufpr 2,3, visob 2).")] = None,
    other_eye: Annotated[str, typer.Option("--other-eye", help="A pair of one subject's left and right eye: exclude "
                                           "(neither genuine nor impostor), impostor, or genuine (either-eye "
                                           "genuines).")] = SplitConfig.other_eye,
    condition: Annotated[str, typer.Option("--condition", help="Cross-session: pair images of the same capture "
                                           "condition only (same: the session minus its last part, VISOB's phone "
                                           "and lighting) or any.")] = SplitConfig.condition,
    check_images: Annotated[bool, typer.Option("--check-images/--no-check-images", help="Decode every image first "
                                               "and leave unreadable ones out (listed in excluded.json).")] = SplitConfig.check_images,
    closed_set: Annotated[int, typer.Option("--closed-set", help="Also hold out this many images of every training "
                                            "identity (closed-set.json) for top-1/top-5 accuracy in `deploy evaluate`; "
                                            "training leaves them out. 0: none.", min=0)] = SplitConfig.closed_set,
    layout: LayoutOpt = None,
    subject_regex: RegexOpt = None,
    index: IndexOpt = None,
    force: ForceOpt = False,
) -> None:
    """Write subject-disjoint splits and the val/test verification protocols (genuine + impostor pairs)."""
    import json

    from toolchain.data.layouts import scan
    from toolchain.data.protocols import resolve_rules
    from toolchain.data.splits import load_protocol, load_splits, write_split_files
    from toolchain.errors import DataError
    from toolchain.fsutil import check_output_dir

    try:
        fr = tuple(float(v) for v in fractions.split(","))
    except ValueError:
        raise DataError(f"--fractions {fractions!r} must be three numbers like 0.7,0.1,0.2") from None
    SplitConfig(fractions=fr, max_impostors=max_impostors, seed=seed, closed_set=closed_set)  # every value in range, before any work
    ds = scan(data, layout, subject_regex, index)
    rules = resolve_rules(ds.layout, protocol, _sessions(enrol_sessions),
                          _sessions(verify_sessions), other_eye, condition)
    check_output_dir(out, "splits", force)  # before the progress bar: a refusal is the only output
    if check_images:
        with progress() as bar:
            task = bar.add_task("decoding", total=len(ds.samples), status="")
            written = write_split_files(ds, out, seed, fr, max_impostors, force=force, rules=rules,
                                        progress=lambda n, _: bar.update(task, completed=n), closed_set=closed_set)
    else:
        written = write_split_files(ds, out, seed, fr, max_impostors, force=force, rules=rules, check_images=False,
                                    closed_set=closed_set)
    excluded = json.loads(written["excluded"].read_text())
    if excluded["count"]:
        shown = ", ".join(im["path"] for im in excluded["images"][:3])
        console.print(styled(("excluded", "yellow"), f" {excluded['count']} unreadable image(s), e.g. {shown}; "
                             f"full list with reasons: {written['excluded']}"))
    console.print(f"protocol: {rules.label()}" + (f" [{rules.source}]" if rules.source else ""))
    if rules.name == "all-pairs" and ds.sessions():
        console.print(f"note: this {ds.layout} data set has {len(ds.sessions())} sessions; numbers from all-pairs "
                      "protocols are not comparable with published cross-session ones (--protocol cross-session)")
    assignment = load_splits(written["splits"])
    for k in ("train", "val", "test"):
        n = sum(1 for v in assignment.values() if v == k)
        line = f"{k:>5}  {n} subjects"
        if k in written:
            p = load_protocol(written[k])
            line += (f", {len(p.images)} images, {len(p.genuine)} genuine + {len(p.impostor)} impostor pairs "
                     f"({p.impostor_sampling}) -> {written[k]}")
        console.print(line)
    if "closed_set" in written:
        cs = json.loads(written["closed_set"].read_text())["counts"]
        console.print(f"closed set: {cs['probes']} held-out images of {cs['classes']} training identities "
                      f"({closed_set} each; {cs['identities_without_probes']} with too few images keep all) -> "
                      f"{written['closed_set']}")
    console.print(f"splits: {written['splits']}")


@data_app.command("sheet")
def sheet(
    data: Annotated[Path, typer.Argument(help="Data set folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")],
    subjects: Annotated[int, typer.Option(help="Rows: the first N subjects.", min=1, max=1000)] = 8,
    per_subject: Annotated[int, typer.Option("--per-subject", help="Columns: images per subject.", min=1, max=100)] = 6,
    tile: Annotated[int, typer.Option(help="Tile side in pixels.", min=8, max=1024)] = 96,
    layout: LayoutOpt = None,
    subject_regex: RegexOpt = None,
    index: IndexOpt = None,
) -> None:
    """Write a contact sheet PNG (one row per subject) of a data set folder."""
    from toolchain.data.layouts import scan
    from toolchain.data.sheet import contact_sheet

    path = contact_sheet(scan(data, layout, subject_regex, index), out, subjects, per_subject, tile)
    console.print(f"wrote {path} ({path.stat().st_size:,} bytes)")
