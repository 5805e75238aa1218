"""`deploy export`: bundle -> ONNX / Core ML / TFLite, parity-checked."""

from __future__ import annotations

from toolchain.cli import app  # noqa: F401
