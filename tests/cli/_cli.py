"""Run `deploy` in this process through its real entry point (``toolchain.cli:main``, what the console script calls).

In-process keeps torch imported once, so a test can try dozens of commands; an exception that is not a
``ToolchainError`` escapes ``main()`` and fails the test with its traceback, exactly as it would print one.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Ran:
    code: int
    out: str
    err: str


def deploy(capsys, *args: str | Path) -> Ran:
    from toolchain.cli import main

    capsys.readouterr()
    old = sys.argv
    sys.argv = ["deploy", *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old
    cap = capsys.readouterr()
    return Ran(code, cap.out, cap.err)


def snapshot(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root`` (and '<dir>' for folders): a byte-for-byte picture."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out
