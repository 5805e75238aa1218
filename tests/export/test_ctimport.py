"""`import_coremltools`: coremltools imported without the packages it only probes (scikit-learn, transformers),
which stay importable afterwards. In a fresh process, since this one may have imported coremltools already."""

import subprocess
import sys

SCRIPT = """
import sys
from toolchain.export.coreml.ctimport import import_coremltools
ct = import_coremltools()
assert ct is sys.modules["coremltools"] and import_coremltools() is ct
from coremltools import _deps
assert "sklearn" not in sys.modules and "transformers" not in sys.modules, "imported anyway"
assert not _deps._HAS_SKLEARN and not _deps._HAS_HF  # coremltools saw them as absent
import sklearn.metrics  # and they import as usual afterwards
print("ok")
"""


def test_coremltools_is_imported_without_the_packages_it_only_probes():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout[-2000:] + r.stderr[-3000:]
