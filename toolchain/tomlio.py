"""The one reader of TOML from outside this process (model cards, pipeline files): bounded, typed errors.

Why: ``tomllib`` parses arrays and inline tables recursively, so a file nested 3,000 deep raised
``RecursionError`` (a traceback); bytes that are not UTF-8, a FIFO named ``*.toml`` or a 1 GB file are
refused the same way, as one :class:`~toolchain.errors.ToolchainError` naming the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from toolchain.errors import ConfigError, ToolchainError
from toolchain.jsonio import read_bytes

#: No card or pipeline file is near this; a larger one is not a configuration.
MAX_TOML_BYTES = 1 << 20


def loads(text: str, source: str, error: type[ToolchainError] = ConfigError, what: str = "TOML file") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error(f"{source} is not a valid {what} (TOML: {e})") from None
    except RecursionError:
        raise error(f"{source}: nested too deep to be a {what}") from None


def read_toml(path: str | Path, error: type[ToolchainError] = ConfigError, what: str = "TOML file") -> dict[str, Any]:
    """Parse ``path`` (a regular UTF-8 file of at most :data:`MAX_TOML_BYTES`); any problem raises ``error``."""
    raw = read_bytes(path, max_bytes=MAX_TOML_BYTES, error=error, what=what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return loads(text, str(path), error, what)
