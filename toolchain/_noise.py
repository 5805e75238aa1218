"""Third-party log lines a user can do nothing about, filtered at their source loggers.

Each pattern names its upstream cause. What matters in them is said elsewhere in our own words: that Apple's
runtime cannot run off macOS is the `coreml` runtime's skip reason in every manifest; which converter
versions made an artifact is in its manifest (`converter_versions`) and `deploy --version`; and every artifact's
parity check, not a version table, says whether a conversion worked.
"""

from __future__ import annotations

import logging
import re
import sys

#: logger name -> patterns dropped from it
NOISE: dict[str, list[re.Pattern[str]]] = {
    "coremltools": [
        # coremltools/_deps: its sklearn converters support a narrow version range; this tool never uses them
        # (scikit-learn is a test dependency here).
        re.compile(r"scikit-learn version .* is not supported"),
        # coremltools/_deps: a version table of what Apple tested, not a failure; parity checks each artifact.
        re.compile(r"Torch version .* has not been tested with coremltools"),
    ],
    # litert_torch/_convert/core.py logs on the root logger: the GraphModule that torchao's convert_pt2e returns is
    # created in training mode although it was captured from the eval-mode model (and exported graphs refuse .eval()).
    "": [re.compile(r"is converted in training mode")],
    # torchao (imported by litert-torch) registers its KernelPreference enum as a pytree constant, which torch 2.14
    # deprecates for enums: a note to torchao's authors, logged at every import.
    "torch.utils._pytree": [re.compile(r"is an Enum subclass and is now natively supported")],
    # triton: the Makefile uninstalls it (the CUDA torch wheel's triton segfaults when loaded after TensorFlow), and
    # CPU-only torch has none; both libraries say so at import although nothing here runs triton kernels.
    "torch.utils.flop_counter": [re.compile(r"triton not found")],
    "torchao.kernel.intmm": [re.compile(r"Detected no triton")],
}
if sys.platform != "darwin":
    # coremltools/models/model.py, compute_plan.py, compute_device.py: libcoremlpython (Apple's runtime) exists on
    # macOS only, so on Linux this is logged once per module at import. On a Mac it is a real failure: kept there.
    NOISE["coremltools"].append(re.compile(r"Failed to load _ML\w*Proxy"))


class _Drop(logging.Filter):
    def __init__(self, patterns: list[re.Pattern[str]]) -> None:
        super().__init__()
        self.patterns = patterns

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(p.search(msg) for p in self.patterns)


def install() -> None:
    """Attach the filters once (idempotent); cheap: nothing third-party is imported."""
    for name, patterns in NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(patterns))
