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
