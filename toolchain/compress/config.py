"""Compression settings' defaults and choices, in a module that imports nothing heavy.

``deploy prune`` / ``deploy distill`` show these in ``--help``, :func:`toolchain.compress.run.prune_unstructured`
and :func:`~toolchain.compress.run.distill` take them as their defaults, and a pipeline's ``[[compress]]``
recipes are checked against the same choices before any stage runs: one home for each (issue 16).
"""

from __future__ import annotations

from dataclasses import dataclass

#: How dL/dw is taken for gradient scores (``compress/pruning/unstructured.py`` says what each does).
GRADIENT_MODES = ("shrinkbench", "eval")
#: Which parameters a compression ratio counts (``compress/pruning/masks.py``): the deployed trunk, or the
#: whole model with its classifier head as ShrinkBench's ``model_size`` counts it.
RATIO_DEFINITIONS = ("deployed", "shrinkbench")


@dataclass(frozen=True)
class PruneDefaults:
    """Defaults of unstructured pruning."""

    method: str = "layer-magnitude"
    ratio: float = 8.0
    schedule: str = "one-shot"
    steps: int = 3  # pruning steps of the iterative schedule
    calibration: int = 4  # batches of Taylor scores and --gradient-mode eval
    gradient_mode: str = GRADIENT_MODES[0]
    ratio_of: str = RATIO_DEFINITIONS[0]


@dataclass(frozen=True)
class DistillDefaults:
    """Defaults of knowledge distillation (Hinton et al.'s soft targets)."""

    temperature: float = 4.0
    alpha: float = 0.9  # weight of the soft-target term; CE gets 1 - alpha


PRUNE = PruneDefaults()
DISTILL = DistillDefaults()
