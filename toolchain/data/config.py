"""Defaults of data preparation, one home each: ``deploy data synth`` / ``deploy data split``, the pipeline's
``[data]`` section and the library functions all read these dataclasses' fields (imports nothing heavy, so the
CLI can show them in ``--help``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SynthConfig:
    """The synthetic periocular data set: subjects, images per subject, image side (pixels), seed."""

    subjects: int = 100
    images_per_subject: int = 12
    size: int = 224
    seed: int = 0


@dataclass(frozen=True)
class SplitConfig:
    """Subject-disjoint splits and verification protocols.

    ``fractions``: train/val/test shares of subjects; ``max_impostors``: the most impostor pairs a protocol
    keeps (all of them when there are fewer, else a seeded uniform sample).
    """

    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    max_impostors: int = 200_000
    seed: int = 0
