"""Third-party log lines that read like failures are filtered at their loggers (toolchain/_noise.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_importing_the_converters_through_toolchain_prints_no_third_party_noise():
    code = ("import logging, toolchain, coremltools, torchao\n"
            "logging.warning('Your model is converted in training mode. Please set the module in evaluation mode')\n"
            "logging.getLogger('coremltools').warning('a real coremltools warning')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    for noise in ("not supported. Minimum required", "has not been tested with coremltools", "converted in training mode",
                  "is an Enum subclass"):
        assert noise not in proc.stderr, proc.stderr
    if sys.platform != "darwin":
        assert "_MLModelProxy" not in proc.stderr, proc.stderr
    assert "a real coremltools warning" in proc.stderr  # only the listed lines go
