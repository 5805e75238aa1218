"""`deploy evaluate`."""

from __future__ import annotations

from toolchain.cli import app  # noqa: F401
