"""No user-controlled text is ever read as rich markup: the consoles run with markup off, so a markup tag in
the CLI's own strings would print literally — style goes through ``styled()`` instead."""

from __future__ import annotations

import re
from pathlib import Path

from toolchain.cli._common import console, err_console, styled

CLI = Path(__file__).resolve().parents[2] / "toolchain" / "cli"
TAG = re.compile(r"\[/?(?:bold|dim|italic|red|green|yellow|blue|cyan|magenta|white)\b[^\]]*\]|\[/\]")


def test_consoles_print_markup_as_text(capsys):
    console.print("[/bold] [teacher] [b]x[/b]")
    err_console.print(styled(("error:", "bold red"), " [teacher] has unknown keys"))
    cap = capsys.readouterr()
    assert "[/bold] [teacher] [b]x[/b]" in cap.out and "error: [teacher] has unknown keys" in cap.err


def test_cli_sources_hold_no_markup_tags():
    found = [f"{p.name}:{i}: {line.strip()}" for p in sorted(CLI.glob("*.py")) if p.name != "_common.py"  # (its docs show tags)
             for i, line in enumerate(p.read_text().splitlines(), 1) if TAG.search(line) and "TAG" not in line]
    assert not found, "markup tags print literally (consoles have markup off); use styled():\n" + "\n".join(found)
