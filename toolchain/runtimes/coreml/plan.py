"""A compiled Core ML program: constants folded once, then steps run on a whole batch of samples at once.

Why: a saved Core ML model is built for one sample (batch 1), and running it image by image in numpy spends
most of its time in per-op overhead and in small matrix products. Both interpreters (:mod:`.mlprogram`,
:mod:`.neuralnetwork`) compile a model into a :class:`Plan` once per artifact: every constant and every op on
constants only (decompressed weights included) is computed at compile time, and each remaining step holds its
prepared weights. :meth:`Plan.run_batch` then runs N samples through each step together.

Batching is checked, not assumed: the first sample runs alone and records each step's output shape; the
rest of the batch must give exactly ``(N,) + shape[1:]`` at every step (a reshape of one sample's content is
re-aimed at N samples). A model that mixes samples (a reshape across the batch axis, a reduction over it)
fails that check and runs sample by sample from then on, with the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


class NotBatchable(Exception):
    """A step's output is not the batch of its one-sample outputs (internal: the plan runs per sample)."""


@dataclass
class Step:
    """One op or layer: ``fn(env)`` returns its output(s), stored under ``outputs`` after ``finish``."""

    kind: str  # op type / layer kind, for errors
    name: str
    fn: Callable[[dict[str, Any]], Any]
    outputs: list[str]
    finish: list[Callable[[Any], Any]]  # per output: dtype emulation (fp16 rounding), float32 for NN blobs
    reshape_of: str | None = None  # a pure reshape of this input: batched, it is re-aimed at N samples


class Plan:
    """Steps of one program with its folded constants; ``inputs`` maps input names to a per-feed converter."""

    def __init__(self, consts: dict[str, Any], steps: list[Step], inputs: dict[str, Callable[[np.ndarray], Any]],
                 outputs: list[str], final: dict[str, Callable[[Any], Any]] | None = None) -> None:
        self.consts, self.steps, self.inputs, self.outputs = consts, steps, inputs, outputs
        self.final = final or {}
        self._shapes: dict[str, tuple[int, ...]] | None = None  # one sample's output shape per step output
        self.batchable = True

    def run(self, feeds: dict[str, np.ndarray], blobs: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        """Every output for ``feeds`` (one sample, or a batch on the leading axis when the model allows it)."""
        env = self._execute(feeds, None)
        if blobs is not None:
            blobs.update(env)
        return self._outputs(env)

    def run_batch(self, name: str, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every output for a batch ``x`` (N, ...) fed to input ``name``, each output with N rows.

        Batched when the model allows it (see the module docstring), else one sample at a time.
        """
        n = len(x)
        parts: list[dict[str, np.ndarray]] = []
        start = 0
        if self._shapes is None:
            shapes: dict[str, tuple[int, ...]] = {}
            parts.append(self._outputs(self._execute({name: x[:1]}, shapes)))
            self._shapes = shapes
            self.batchable = all(s[:1] == (1,) for s in shapes.values())
            start = 1
        if start < n and self.batchable:
            try:
                parts.append(self._outputs(self._execute({name: x[start:]}, None, n - start)))
                start = n
            except NotBatchable:
                self.batchable = False
        for i in range(start, n):
            parts.append(self._outputs(self._execute({name: x[i:i + 1]}, None)))
        return {k: np.concatenate([p[k] for p in parts]) for k in self.outputs}

    def _outputs(self, env: dict[str, Any]) -> dict[str, np.ndarray]:
        return {k: np.asarray(self.final.get(k, lambda v: v)(env[k])) for k in self.outputs}

    def _execute(self, feeds: dict[str, np.ndarray], record: dict[str, tuple[int, ...]] | None,
                 batch: int | None = None) -> dict[str, Any]:
        env = dict(self.consts)
        for name, convert in self.inputs.items():
            env[name] = convert(feeds[name])
        shapes = self._shapes if batch is not None else None
        for step in self.steps:
            if batch is not None and step.reshape_of is not None:
                src = self._shapes[step.reshape_of] if self._shapes and step.reshape_of in self._shapes else None
                out_shape = self._shapes[step.outputs[0]] if self._shapes else None
                if src is None or out_shape is None or src[:1] != (1,):
                    raise NotBatchable(step.name)
                out: Any = np.reshape(env[step.reshape_of], (batch,) + tuple(out_shape[1:]))
            else:
                try:
                    out = step.fn(env)
                except (ValueError, IndexError) as e:
                    if batch is None:
                        raise
                    raise NotBatchable(f"{step.name}: {e}") from None
            outs = out if isinstance(out, (list, tuple)) else [out]
            for key, val, finish in zip(step.outputs, outs, step.finish):
                val = finish(val)
                if shapes is not None:
                    want = (batch,) + tuple(shapes[key][1:])
                    if np.shape(val) != want:
                        raise NotBatchable(f"{step.name}: {np.shape(val)} != {want}")
                elif record is not None:
                    record[key] = tuple(np.shape(val))
                env[key] = val
        return env
