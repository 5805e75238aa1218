"""Mobile deployment toolchain for ocular (periocular/iris) recognition models."""

__version__ = "0.1.0"

from toolchain import _noise as _noise

_noise.install()  # before coremltools or litert-torch is imported anywhere
