"""Helpers shared by the command modules: the console and a progress bar factory."""

from __future__ import annotations

import sys

from rich.console import Console

# Wider than rich's 80-column default when piped to a file or CI log, so tables stay readable.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


def progress():
    """A rich progress bar for long work (transient off, so logs keep the final state)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=err_console)
