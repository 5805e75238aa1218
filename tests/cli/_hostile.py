"""Shared checks of the hostile-input tests: a clean refusal is exit 2, one line, no traceback, in bounded time."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.cli._cli import Ran, deploy, snapshot


def refused(r: Ran, *needles: str) -> None:
    """Exit 2 with one ``error:`` message (problem lines indented under it) mentioning every needle."""
    assert "Traceback" not in r.err and "Traceback" not in r.out, r.err[-2000:]
    assert r.code == 2, (r.code, r.out[-800:], r.err[-800:])
    lines = [ln for ln in r.err.splitlines() if ln.strip()]  # progress lines may come first
    errors = [i for i, ln in enumerate(lines) if ln.startswith("error:")]
    assert len(errors) == 1, r.err
    # one error; a file with several problems lists them indented under it (pipeline files), nothing else after
    assert all(ln.startswith(" ") for ln in lines[errors[0] + 1:]), r.err
    text = "\n".join(lines[errors[0]:]).lower()
    for n in needles:
        assert n.lower() in text, (n, text[:600])


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """The body must finish in ``seconds`` (a hang or a quadratic path fails the test, not CI's timeout)."""
    t0 = time.perf_counter()
    yield
    took = time.perf_counter() - t0
    assert took < seconds, f"took {took:.1f} s, bound {seconds} s"


def run_refused(capsys, root: Path, *args, needles: tuple[str, ...] = (), out: Path | None = None,
                seconds: float = 60) -> Ran:
    """Run, expect a clean refusal, nothing under ``root`` changed and no ``out`` left behind."""
    before = snapshot(root)
    with within(seconds):
        r = deploy(capsys, *args)
    refused(r, *needles)
    assert snapshot(root) == before
    if out is not None:
        assert not out.exists(), sorted(p.name for p in out.parent.iterdir())
    return r
