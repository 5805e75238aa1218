"""Import coremltools without the optional packages it probes at import time and this exporter never uses.

``coremltools/_deps`` imports scikit-learn, transformers and xgboost (whichever are installed) when coremltools
is first imported, only to set flags: ``_HAS_SKLEARN`` / ``_HAS_XGBOOST`` enable its scikit-learn and XGBoost
model converters, ``_HAS_HF`` nothing outside its own tests. Here scikit-learn (a dependency of this package)
and transformers (pulled in by litert-torch) are installed, and importing them was about half of
``import coremltools`` (measured on the 2-core machine, CPU seconds after torch: 6.9-8.3 plain, 3.4-4.9 with
them blocked). The exporter converts PyTorch models only, so they are hidden for the duration of the import
(coremltools records them as absent) and importable as usual afterwards, by anyone else.
"""

from __future__ import annotations

import sys
from types import ModuleType

#: packages coremltools imports only to enable converters (and checks) this toolchain does not use
NOT_NEEDED = ("sklearn", "transformers", "xgboost")


def import_coremltools() -> ModuleType:
    """``coremltools``, imported (once per process) without :data:`NOT_NEEDED`; the module if already imported."""
    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    hidden = [n for n in NOT_NEEDED if n not in sys.modules]
    for n in hidden:
        sys.modules[n] = None  # type: ignore[assignment]  # `import n` raises ImportError (Python's documented way)
    try:
        import coremltools
    finally:
        for n in hidden:
            if n in sys.modules and sys.modules[n] is None:
                del sys.modules[n]
    return coremltools
