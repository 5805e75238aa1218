"""`deploy pipeline run` and `deploy demo`."""

from __future__ import annotations

from toolchain.cli import app  # noqa: F401
