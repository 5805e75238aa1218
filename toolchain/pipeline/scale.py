"""``deploy pipeline run FILE --scale NAME``: the same recipe at another size, by rewriting the parsed TOML
before it is validated (so the rewritten file passes the very checks a hand-written one does).

* ``full`` (default): the file as written.
* ``tiny``: every stage of the recipe, small enough for CI: a synthetic data set (12 subjects x 6 images at
  64 px; the ufpr layout when the recipe asks for cross-session pairs) instead of ``path``; the teacher at
  64 px, 1 epoch, batches of 8, random initial weights (no weight cache needed); every fine-tune and distillation 1 epoch; at most 1 closed-set image per
  identity; host timing 1 warm-up + 3 runs; exports in fp32 unless the recipe names precisions; outputs under
  ``WORK-tiny``. Architectures, methods, ratios, export targets and devices stay as written: what is tested is
  the recipe's plan, not its accuracy.

  Why fp32: one epoch leaves BatchNorm's running statistics far from the weights. Measured on hong2022 at tiny
  scale: the MobileNetV1 teacher's eval-mode activations grow ~2x per BatchNorm to features of 2e8, so every
  fp16 Core ML artifact of it had non-finite outputs (parity failed, correctly); fp32 keeps the check meaningful.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from toolchain.registry import Registry

Raw = dict[str, Any]
SCALES: Registry[Callable[[Raw], Raw]] = Registry("pipeline scale")

TINY_SUBJECTS, TINY_IMAGES, TINY_SIZE_PX, TINY_BATCH = 12, 6, 64, 8


@SCALES.register("full")
def full(raw: Raw) -> Raw:
    return raw


@SCALES.register("tiny")
def tiny(raw: Raw) -> Raw:
    """The recipe at CI size (module docstring); ``raw`` is not modified.

    >>> out = tiny({"pipeline": {"work_dir": "runs/x"}, "data": {"path": "/data"}, "teacher": {"epochs": 30},
    ...             "compress": [{"name": "a", "finetune_epochs": 5, "distill": {"epochs": 30}}]})
    >>> out["data"]["synth"]["subjects"], out["teacher"]["epochs"], out["compress"][0]["distill"]["epochs"]
    (12, 1, 1)
    >>> out["pipeline"]["work_dir"], "path" in out["data"]
    ('runs/x-tiny', False)
    """
    raw = copy.deepcopy(raw)
    pipe = raw.setdefault("pipeline", {})
    pipe["work_dir"] = str(pipe.get("work_dir", "runs/pipeline")) + "-tiny"
    data = raw.setdefault("data", {})
    for key in ("path", "layout", "subject_regex", "index_csv", "enrol_sessions", "verify_sessions"):
        data.pop(key, None)
    layout = "ufpr" if data.get("protocol") == "cross-session" else "per-subject"
    data["synth"] = {"subjects": TINY_SUBJECTS, "images_per_subject": TINY_IMAGES, "size": TINY_SIZE_PX,
                     "layout": layout}
    data["max_impostors"] = min(int(data.get("max_impostors", 2000)), 2000)
    if data.get("closed_set"):
        data["closed_set"] = 1
    teacher = raw.setdefault("teacher", {})
    if teacher.get("epochs", 1) != 0:
        teacher.update(epochs=1, input_size=TINY_SIZE_PX, batch_size=TINY_BATCH, weights="random")
    for recipe in raw.get("compress") or []:
        if recipe.get("finetune_epochs"):
            recipe["finetune_epochs"] = 1
        if isinstance(recipe.get("distill"), dict):
            recipe["distill"].update(epochs=1, batch_size=TINY_BATCH)
    export = raw.setdefault("export", {})
    export.setdefault("precisions", ["fp32"])
    bench = raw.setdefault("bench", {})
    bench.update(warmup=1, iterations=3)
    return raw
