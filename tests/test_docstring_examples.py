"""The worked examples in the docstrings of the policy, validation and runtime modules hold."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["toolchain.policy", "toolchain.typed", "toolchain.progress", "toolchain.compress.config",
                                    "toolchain.artifact.compare", "toolchain.export.parity", "toolchain.export.coreml.exporter",
                                    "toolchain.runtimes.litert", "toolchain.runtimes.coreml.kernels",
                                    "toolchain.runtimes.coreml.mlprogram", "toolchain.export.verdict",
                                    "toolchain.export.calibration", "toolchain.export.coreml.spec3"])
def test_docstring_examples_hold(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
