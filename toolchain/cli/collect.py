"""`deploy collect ios|android|farm|dir` and `deploy results list|show|rm`."""

from __future__ import annotations

from toolchain.cli import app  # noqa: F401
