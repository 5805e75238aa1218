"""Compression settings' defaults and choices, in a module that imports nothing heavy.

``deploy prune`` / ``deploy distill`` show these in ``--help``, :func:`toolchain.compress.run.prune_unstructured`
and :func:`~toolchain.compress.run.distill` take them as their defaults, and a pipeline's ``[[compress]]``
recipes are checked against the same choices before any stage runs: one home for each (issue 16).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from toolchain.errors import CompressionError
from toolchain.registry import Registry

#: How dL/dw is taken for gradient scores (``compress/pruning/unstructured.py`` says what each does).
GRADIENT_MODES = ("shrinkbench", "eval")
#: Which parameters a compression ratio counts (``compress/pruning/masks.py``): the deployed trunk, or the
#: whole model with its classifier head as ShrinkBench's ``model_size`` counts it.
RATIO_DEFINITIONS = ("deployed", "shrinkbench")
#: ``--method random``: an exact seeded count per layer, or ShrinkBench's keep-with-probability-p (biases too)
RANDOM_MODES = ("exact", "shrinkbench")


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
    random_mode: str = RANDOM_MODES[0]
    multiplier: float = 0.5  # width-multiplier: the fraction of channels kept


@dataclass(frozen=True)
class DistillDefaults:
    """Defaults of knowledge distillation (Hinton et al.'s soft targets)."""

    temperature: float = 4.0
    alpha: float = 0.9  # weight of the soft-target term; CE gets 1 - alpha


@dataclass(frozen=True)
class Method:
    """An unstructured pruning method: a scorer name in ``unstructured.SCORERS`` and a scope."""

    score: str
    scope: str  # "global" | "layer"
    description: str = ""


#: The five unstructured methods of ShrinkBench (``compress/pruning/unstructured.py`` scores and masks).
METHODS: Registry[Method] = Registry("unstructured pruning method")
METHODS.add("global-magnitude", Method("magnitude", "global", "smallest |w| over the whole network"))
METHODS.add("layer-magnitude", Method("magnitude", "layer", "smallest |w| in each layer, same fraction per layer"))
METHODS.add("global-gradient", Method("gradient", "global", "smallest |w * dL/dw| over the whole network"))
METHODS.add("layer-gradient", Method("gradient", "layer", "smallest |w * dL/dw| in each layer"))
METHODS.add("random", Method("random", "layer", "uniformly random weights, same fraction per layer (seeded)"))

#: Structured methods: the network really shrinks (``compress/pruning/structured.py``, ``depth.py``). Each
#: maps to the :func:`toolchain.compress.run.prune_structured` options it reads.
STRUCTURED: Registry[tuple[str, ...]] = Registry("structured pruning method")
STRUCTURED.add("channel", ("width",))  # Torch-Pruning width pruning to a parameter or FLOP ratio
STRUCTURED.add("depth", ("keep_per_stage", "remove_blocks"))  # remove residual blocks
STRUCTURED.add("width-multiplier", ("multiplier",))  # keep a fraction of every layer's channels



def _importance(module: str, name: str, **kwargs: Any) -> Any:
    """A factory(seed) of the channel importance ``module.name``, imported when used (Torch-Pruning is heavy)."""
    return lambda seed: getattr(importlib.import_module(module), name)(**kwargs)


#: Channel importances of width pruning: name -> factory(seed) (``compress/pruning/structured.py`` uses them).
IMPORTANCES: Registry[Any] = Registry("channel importance")
IMPORTANCES.add("l1", _importance("torch_pruning.pruner.importance", "MagnitudeImportance", p=1))
IMPORTANCES.add("l2", _importance("torch_pruning.pruner.importance", "MagnitudeImportance", p=2))
IMPORTANCES.add("taylor", _importance("torch_pruning.pruner.importance", "TaylorImportance"))  # Molchanov et al., CVPR 2019
IMPORTANCES.add("random", lambda seed: importlib.import_module("toolchain.compress.pruning.structured")
                .SeededRandomImportance(seed))

#: Every pruning method: name -> "unstructured" | "structured" (``toolchain.compress.run.prune`` dispatches).
PRUNING_METHODS: Registry[str] = Registry("pruning method")
for _name in METHODS.names():
    PRUNING_METHODS.add(_name, "unstructured")
for _name in STRUCTURED.names():
    PRUNING_METHODS.add(_name, "structured")



def method_kind(method: str) -> str:
    """``unstructured`` or ``structured``; an unknown name raises CompressionError listing every method."""
    if method not in PRUNING_METHODS:
        raise CompressionError(f"unknown pruning method {method!r}; known: {', '.join(PRUNING_METHODS.names())}")
    return PRUNING_METHODS.get(method)


#: The smallest compression ratio (total / non-zero parameters, or before / after width): 1 keeps everything.
MIN_RATIO = 1.0


def ratio_problem(ratio: object, what: str = "ratio") -> str | None:
    """Why ``ratio`` is not a compression ratio, or None (the one check of the library, the CLI and recipes).

    >>> ratio_problem(8), ratio_problem(0.5)
    (None, 'ratio 0.5 must be at least 1.0 (1 keeps every parameter)')
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        return f"{what} must be a number, got {ratio!r}"
    if not ratio >= MIN_RATIO:  # NaN fails too
        return f"{what} {ratio} must be at least {MIN_RATIO} (1 keeps every parameter)"
    return None


TARGETS = ("params", "flops")
SCOPES = ("global", "uniform")


@dataclass
class WidthConfig:
    """A width-pruning request.

    Args:
        ratio: target ``before / after`` of ``target`` (parameters or FLOPs), at least 1.
        target: ``params`` or ``flops``.
        importance: a name in ``structured.IMPORTANCES`` (``taylor`` needs calibration batches).
        scope: ``global`` or ``uniform``.
        max_layer_pruning: no layer loses more than this fraction (0..1) of its channels.
        round_to: keep channel counts multiples of this (e.g. 8 for mobile kernels), or None.
        tolerance: relative error on the ratio at which bisection stops.
        seed: seed of the ``random`` importance.
    """

    ratio: float = 2.0
    target: str = "params"
    importance: str = "l1"
    scope: str = "global"
    max_layer_pruning: float = 0.9
    round_to: int | None = None
    tolerance: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        problem = ratio_problem(self.ratio, "the width-pruning ratio")
        if problem:
            raise CompressionError(problem)
        if self.target not in TARGETS:
            raise CompressionError(f"unknown width-pruning target {self.target!r}; known: {', '.join(TARGETS)}")
        if self.scope not in SCOPES:
            raise CompressionError(f"unknown width-pruning scope {self.scope!r}; known: {', '.join(SCOPES)}")
        IMPORTANCES.get(self.importance)
        if not 0.0 < self.max_layer_pruning < 1.0:
            raise CompressionError(f"max_layer_pruning must be a fraction in (0, 1), got {self.max_layer_pruning}")

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("ratio", "target", "importance", "scope", "max_layer_pruning",
                                              "round_to", "tolerance", "seed")}


PRUNE = PruneDefaults()
DISTILL = DistillDefaults()
