"""Mobile deployment toolchain for ocular (periocular/iris) recognition models."""

__version__ = "0.1.0"
