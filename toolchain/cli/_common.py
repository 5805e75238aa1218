"""Helpers shared by the command modules: the console and a progress bar factory.

The consoles never interpret markup: file names, run ids, device output and error messages are the user's
text, and rich would treat ``[b]x[/b]`` in them as styling (or crash on ``[/bold]``). Style goes through
:func:`styled` instead, which takes plain text and a style name per part.
"""

from __future__ import annotations

import sys

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from toolchain.devices import CATALOG

#: The catalog's device keys, for help texts (the catalog is their one home).
DEVICE_KEYS = ", ".join(CATALOG)
# Wider than rich's 80-column default when piped to a file or CI log, so tables stay readable.
console = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, markup=False, width=None if sys.stderr.isatty() else 160)


def styled(*parts: str | tuple[str, str]) -> Text:
    """A line from plain parts and ``(text, style)`` parts; no text is ever read as markup.

    >>> styled(("error:", "bold red"), " run [/bold] is not stored").plain
    'error: run [/bold] is not stored'
    """
    return Text.assemble(*parts)


#: ``--force`` of every command with ``--out``: the one way past :func:`toolchain.fsutil.check_output_dir`.
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Replace --out even if it is not an output of this kind that deploy wrote "
                    "(default: refuse, so a folder of yours is never deleted).")]


# How train, prune and distill find the data set's subjects and split (the same options, one wording).
LayoutOpt = Annotated[Optional[str], typer.Option(help="Data layout (default: detected).")]
SubjectRegexOpt = Annotated[Optional[str], typer.Option(
    "--subject-regex", help="Regex on each image path with a (?P<subject>...) group (and optional session/eye groups) "
                            "when no layout fits (default: the layout's own rules).")]
IndexOpt = Annotated[Optional[Path], typer.Option(
    "--index", help="CSV index path,subject[,session,eye] for the csv layout (default: none).")]
SplitsOpt = Annotated[Optional[Path], typer.Option(
    "--splits", help="splits.json from deploy data split (default: assigned with --split-seed).")]
SplitSeedOpt = Annotated[int, typer.Option(
    "--split-seed", help="Seed of the subject-disjoint split when no --splits file is given.")]

def progress():
    """A rich progress bar for long work (transient off, so logs keep the final state)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}", markup=False), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=err_console)


def epoch_reporter(bar, task):
    """The training loop's progress callback, drawn on a rich bar: epoch, loss, accuracy (and lr when known)."""
    def report(stage: str, done: int, total: int, info: dict) -> None:
        if stage == "train":
            lr = f" lr {info['lr']:.3g}" if "lr" in info else ""
            bar.update(task, completed=done, total=total, description=f"epoch {info['epoch']}/{info['epochs']}",
                       status=f"loss {info['loss']:.3f} acc {info['accuracy']:.1%}{lr}")
        else:
            bar.update(task, status="validating")
    return report


#: command words -> options that take several values at once, as a shell glob gives them: ``--bundles runs/*/bundle``.
#: Click options take one value each; :func:`expand_multi_value` turns ``--bundles a b`` into ``--bundles a --bundles b``.
MULTI_VALUE: dict[tuple[str, ...], frozenset[str]] = {}


def expand_multi_value(argv: list[str], table: dict[tuple[str, ...], frozenset[str]] = MULTI_VALUE) -> list[str]:
    """``argv`` with every registered several-value option repeated once per value (values run to the next ``-``).

    >>> table = {("cmd",): frozenset({"--in", "-i"})}
    >>> expand_multi_value(["cmd", "--in", "a", "b", "-i", "c", "--out", "o"], table)
    ['cmd', '--in', 'a', '--in', 'b', '-i', 'c', '--out', 'o']
    >>> expand_multi_value(["other", "--in", "a", "b"], table)
    ['other', '--in', 'a', 'b']
    """
    words = tuple(a for a in argv[:3] if not a.startswith("-"))
    opts = next((table[words[:n]] for n in range(len(words), 0, -1) if words[:n] in table), None)
    if not opts:
        return list(argv)
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        out.append(a)
        i += 1
        if a in opts:
            first = True
            while i < len(argv) and not argv[i].startswith("-"):
                out += [argv[i]] if first else [a, argv[i]]
                first = False
                i += 1
    return out
