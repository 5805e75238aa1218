"""The one progress callback type, and the one log-line callback.

Library code never prints: long work reports through a :data:`ProgressFn`, and stages that only have something
to say (an export's "converting ...", a pipeline stage starting) through a :data:`MessageFn`.

``ProgressFn(stage, done, total, info)``:

- ``stage``: what is running, e.g. ``"train"``, ``"validate"`` (training), ``"load"``, ``"warmup"``,
  ``"timed"`` (host timing), ``"images"`` (feature extraction);
- ``done`` of ``total`` steps (``total`` may be 0 when unknown);
- ``info``: extra facts of that stage (the training loop's epoch, loss and accuracy; the host runner's target).

>>> seen = []
>>> report: ProgressFn = lambda stage, done, total, info: seen.append((stage, done, total))
>>> report("images", 32, 100, {})
>>> seen
[('images', 32, 100)]
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

ProgressFn = Callable[[str, int, int, Mapping[str, Any]], None]
MessageFn = Callable[[str], None]


def no_progress(stage: str, done: int, total: int, info: Mapping[str, Any]) -> None:
    """A :data:`ProgressFn` that ignores everything."""
