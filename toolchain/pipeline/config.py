"""`pipeline.toml`: validated into plain dicts, with clear errors naming the key.

See ``examples/pipeline.toml`` for a commented example of every section.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from toolchain.pipeline.engine import PipelineError

DEFAULTS: dict[str, dict[str, Any]] = {
    "pipeline": {"work_dir": "runs/pipeline", "seed": 0},
    "data": {"path": None, "layout": None, "subject_regex": None, "index_csv": None,
             "fractions": [0.7, 0.1, 0.2], "max_impostors": 20000, "synth": None},
    "teacher": {"model": "resnet50_ocular", "input_size": None, "epochs": 10, "batch_size": 32, "lr": 0.05,
                "optimizer": "sgd", "weight_decay": 5e-4, "weights": "random"},
    "evaluate": {"artifacts": ["tflite"]},
    "export": {"targets": ["coreml", "tflite", "onnx"], "devices": ["all"], "precisions": [None]},
    "bench": {"warmup": 10, "iterations": 100, "threads": 2, "formats": ["onnx", "tflite", "pytorch"]},
    "plan": {"devices": ["iphone6", "iphonex", "iphonexr", "ipadair2", "ipad7", "android"], "warmup": 10,
             "iterations": 100, "compute_units": None},
    "report": {},
}
SYNTH_DEFAULTS = {"subjects": 100, "images_per_subject": 12, "size": 224}
RECIPE_KEYS = {"name", "prune", "structured", "distill", "finetune_epochs", "from"}


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    given = raw.get(name, {})
    if not isinstance(given, dict):
        raise PipelineError(f"[{name}] must be a table")
    unknown = set(given) - set(DEFAULTS[name])
    if unknown:
        raise PipelineError(f"[{name}] has unknown keys {sorted(unknown)}; known: {sorted(DEFAULTS[name])}")
    return {**DEFAULTS[name], **given}


def parse(raw: dict[str, Any], base: Path = Path(".")) -> dict[str, Any]:
    unknown = set(raw) - set(DEFAULTS) - {"compress"}
    if unknown:
        raise PipelineError(f"unknown sections {sorted(unknown)}; known: {sorted([*DEFAULTS, 'compress'])}")
    cfg = {name: _section(raw, name) for name in DEFAULTS}
    data = cfg["data"]
    if data["path"] is not None and data["synth"] is not None:
        raise PipelineError("[data] takes one of path = \"DIR\" (your data set) or synth = {...} (synthetic), not both")
    if data["path"] is None and data["synth"] is None:
        # No data: only a checkpoint can be exported, benchmarked and reported (e.g. CI exports).
        if cfg["teacher"]["epochs"] or raw.get("compress"):
            raise PipelineError("[data] needs path = \"DIR\" or synth = {...}: training and compression need data "
                                "(without data, set [teacher] epochs = 0 and model = a bundle folder)")
        cfg["data"] = None
        cfg["evaluate"]["artifacts"] = []
    elif data["synth"] is not None:
        bad = set(data["synth"]) - set(SYNTH_DEFAULTS) - {"seed"}
        if bad:
            raise PipelineError(f"[data] synth has unknown keys {sorted(bad)}; known: {sorted(SYNTH_DEFAULTS)}")
        data["synth"] = {**SYNTH_DEFAULTS, "seed": cfg["pipeline"]["seed"], **data["synth"]}
    else:
        p = Path(data["path"])
        data["path"] = str(p if p.is_absolute() else (base / p).resolve())
    recipes = raw.get("compress", [])
    if not isinstance(recipes, list):
        raise PipelineError("[[compress]] must be an array of tables (one per recipe)")
    names = set()
    for r in recipes:
        if "name" not in r:
            raise PipelineError(f"a [[compress]] recipe lacks name: {r}")
        if r["name"] in names or r["name"] == "teacher":
            raise PipelineError(f"[[compress]] name {r['name']!r} is used twice (or is 'teacher')")
        names.add(r["name"])
        bad = set(r) - RECIPE_KEYS
        if bad:
            raise PipelineError(f"[[compress]] {r['name']!r} has unknown keys {sorted(bad)}; known: {sorted(RECIPE_KEYS)}")
        if not ({"prune", "structured", "distill"} & set(r)):
            raise PipelineError(f"[[compress]] {r['name']!r} needs prune, structured and/or distill")
        if "from" in r and r["from"] not in names - {r["name"]} and r["from"] != "teacher":
            raise PipelineError(f"[[compress]] {r['name']!r} starts from {r['from']!r}, which is not an earlier recipe")
    cfg["compress"] = recipes
    t = cfg["teacher"]
    if t["epochs"] == 0 and not (base / t["model"]).joinpath("model.json").is_file() \
            and not Path(t["model"]).joinpath("model.json").is_file():
        raise PipelineError(f"[teacher] epochs = 0 means: use the bundle {t['model']!r} as is; no model.json there")
    if t["epochs"] == 0:
        m = Path(t["model"])
        t["model"] = str(m if m.is_absolute() or m.joinpath("model.json").is_file() else (base / m).resolve())
    return cfg


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"pipeline file {path} does not exist (see examples/pipeline.toml)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise PipelineError(f"{path} is not valid TOML: {e}") from None
    cfg = parse(raw, base=path.parent)
    wd = Path(cfg["pipeline"]["work_dir"])
    cfg["pipeline"]["work_dir"] = str(wd if wd.is_absolute() else (path.parent / wd).resolve())
    return cfg
