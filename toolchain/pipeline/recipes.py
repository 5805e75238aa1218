"""``[[compress]]`` recipes of pipeline.toml: validated against the compression functions they call.

A recipe's ``prune`` / ``structured`` / ``distill`` sub-tables pass through as keyword arguments to
:func:`toolchain.compress.run.prune_unstructured`, ``prune_structured`` and ``distill``, so their keys are
checked against those functions' signatures (a new option there is accepted here without a change), and their
names and values (methods, losses, ratios, epochs) against the registries.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain import typed
from toolchain.errors import ToolchainError

#: Recipe keys as written in TOML ("from" is a Python keyword).
RECIPE_KEYS = {"name", "prune", "structured", "distill", "finetune_epochs", "from"}
#: Training settings a distill sub-table may override (the rest come from [teacher]).
DISTILL_TRAIN_KEYS = ("epochs", "lr", "batch_size", "optimizer", "weight_decay")
DISTILL_LOSS_KEYS = ("student", "losses", "alpha", "temperature", "ce_weight")


@dataclass
class Recipe:
    """One ``[[compress]]`` recipe: prune, structured and/or distill, starting from the teacher or an earlier one.

    The sub-tables pass through to :func:`toolchain.compress.run.prune_unstructured`, ``prune_structured`` and
    ``distill``: their keys are checked against those functions' parameters.
    """

    name: str
    prune: dict[str, Any] | None = None
    structured: dict[str, Any] | None = None
    distill: dict[str, Any] | None = None
    finetune_epochs: int = field(default=0, metadata={"minimum": 0})
    source: str = "teacher"  # TOML: from = "..."

    def stage_config(self) -> dict[str, Any]:
        d = {k: v for k, v in typed.to_data(self).items() if v is not None and k != "source"}
        if self.source != "teacher":
            d["from"] = self.source
        return d


def _width_config() -> type:
    from toolchain.compress.config import WidthConfig

    return WidthConfig


def _prune_scope() -> type:
    from toolchain.compress.pruning.masks import PruneScope

    return PruneScope


#: Sub-tables of a recipe's ``prune`` / ``structured`` table that are typed configs, built as the CLI builds them:
#: ``prune.scope`` -> PruneScope (``--exclude``, ``--exclude-type``, ``--prune-feature-head``), ``structured.width``
#: -> WidthConfig (``--method channel --ratio --target --importance --scope``).
PRUNE_TABLES = {"scope": _prune_scope}
STRUCTURED_TABLES = {"width": _width_config}


def nested_options(table: dict[str, Any], tables: dict[str, Any], where: str,
                   problems: list[str] | None = None) -> dict[str, Any]:
    """``table`` with its typed sub-tables built (``tables``: key -> the dataclass, looked up lazily).

    With ``problems`` every problem of every sub-table is appended there (``--dry-run``); without, the first
    bad one raises ConfigError (a stage running a recipe that was validated never does).
    """
    from toolchain.errors import ConfigError

    out = dict(table)
    for key, cls_of in tables.items():
        if key not in out:
            continue
        cls = cls_of()
        if problems is None:
            out[key] = typed.build(cls, out[key], error=ConfigError, source=f"{where}.{key}")
        else:
            problems += [f"{where}.{key}: {p}" for p in typed.problems(cls, out[key])]
    return out


def names_problems(values: list[str], known: list[str], what: str, where: str, problems: list[str]) -> None:
    for v in values:
        if v not in known:
            problems.append(f"{where}: unknown {what} {v!r}; known: {', '.join(known)}")


def _params(fn: Any, drop: set[str]) -> set[str]:
    return {n for n, p in inspect.signature(fn).parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in drop}


def _recipe_problems(r: Recipe, where: str, problems: list[str]) -> None:
    from toolchain.compress import run as C
    from toolchain.compress.config import GRADIENT_MODES, RANDOM_MODES, RATIO_DEFINITIONS, ratio_problem
    from toolchain.compress.distill import KD_LOSSES
    from toolchain.compress.config import METHODS

    _value_problems(r, where, problems)
    if r.prune is not None:
        p = r.prune
        allowed = _params(C.prune_unstructured, {"bundle_dir", "out", "data", "cfg", "seed", "progress"})
        bad = sorted(set(p) - allowed)
        if bad:
            problems.append(f"{where} prune has unknown keys {bad}; known: {sorted(allowed)}")
        if "method" not in p:
            problems.append(f"{where} prune needs method = one of {', '.join(METHODS.names())}")
        elif p["method"] not in METHODS:
            problems.append(f"{where} prune: unknown method {p['method']!r}; known: {', '.join(METHODS.names())}")
        ratio = p.get("ratio")
        if ratio is None:
            problems.append(f"{where} prune needs ratio = total / non-zero parameters (e.g. 8)")
        elif ratio_problem(ratio):
            problems.append(f"{where} prune: {ratio_problem(ratio)}")
        nested_options(p, PRUNE_TABLES, f"{where} prune", problems)
        for key, choices in (("gradient_mode", GRADIENT_MODES), ("ratio_of", RATIO_DEFINITIONS),
                             ("random_mode", RANDOM_MODES)):
            if key in p and p[key] not in choices:
                problems.append(f"{where} prune: {key} must be one of {', '.join(choices)}, got {p[key]!r}")
    if r.structured is not None:
        s = r.structured
        allowed = _params(C.prune_structured, {"bundle_dir", "out", "data", "cfg", "progress"})
        bad = sorted(set(s) - allowed)
        if bad:
            problems.append(f"{where} structured has unknown keys {bad}; known: {sorted(allowed)}")
        nested_options(s, STRUCTURED_TABLES, f"{where} structured", problems)
        m = s.get("multiplier")
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m <= 1):
            problems.append(f"{where} structured: multiplier {m!r} must be in (0, 1]")
        k = s.get("keep_per_stage")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            problems.append(f"{where} structured: keep_per_stage {k!r} must be an integer >= 1")
    if r.distill is not None:
        d = r.distill
        allowed = ({*DISTILL_TRAIN_KEYS, *DISTILL_LOSS_KEYS}
                   | _params(C.distill, {"teacher_dir", "student", "out", "data", "cfg", "losses", "ce_weight",
                                         "progress"}))
        bad = sorted(set(d) - allowed)
        if bad:
            problems.append(f"{where} distill has unknown keys {bad}; known: {sorted(allowed)}")
        losses = d.get("losses")
        if losses is not None:
            if not isinstance(losses, list) or not all(isinstance(x, str) for x in losses):
                problems.append(f"{where} distill: losses must be a list of names, got {losses!r}")
            else:
                names_problems([x.split("=", 1)[0].strip() for x in losses], KD_LOSSES.names(), "loss", f"{where} distill",
                       problems)
        for key, lo in (("epochs", 1), ("batch_size", 1)):
            v = d.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
                problems.append(f"{where} distill: {key} must be an integer >= {lo}, got {v!r}")
        for key in ("lr", "temperature"):
            v = d.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
                problems.append(f"{where} distill: {key} must be a positive number, got {v!r}")


def _value_problems(r: Recipe, where: str, problems: list[str]) -> None:
    """Bounds every recipe shares: the name becomes a stage folder; no number may be NaN/Inf (``ratio = inf``
    passed ``ratio > 1``); a distillation student must be a card or a bundle that exists."""
    import math

    from toolchain.bounds import check_name

    try:
        check_name(r.name, f"{where} name")
    except ToolchainError as e:
        problems.append(str(e))
    for table, body in (("prune", r.prune), ("structured", r.structured), ("distill", r.distill)):
        for k, v in (body or {}).items():
            if isinstance(v, float) and not math.isfinite(v):
                problems.append(f"{where} {table}: {k} is {v}; allowed: a finite number")
    student = (r.distill or {}).get("student")
    if isinstance(student, str) and not (Path(student) / "model.json").is_file():
        from toolchain.models.cards import load_card

        try:
            load_card(student)
        except ToolchainError as e:
            problems.append(f"{where} distill: student {student!r} is neither a bundle folder nor a card ({e})")


def recipes(raw: Any, problems: list[str]) -> list[Recipe]:
    """The ``[[compress]]`` array as recipes; every problem appended to ``problems``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append("[[compress]] must be an array of tables (one per recipe)")
        return []
    out: list[Recipe] = []
    names: set[str] = set()
    for i, r in enumerate(raw):
        if not isinstance(r, dict):
            problems.append(f"[[compress]] #{i + 1} must be a table")
            continue
        if "name" not in r:
            problems.append(f"a [[compress]] recipe lacks name: {r}")
            continue
        where = f"[[compress]] {r['name']!r}"
        if r["name"] in names or r["name"] == "teacher":
            problems.append(f"[[compress]] name {r['name']!r} is used twice (or is 'teacher')")
        bad = set(r) - RECIPE_KEYS
        if bad:
            problems.append(f"{where} has unknown keys {sorted(bad)}; known: {sorted(RECIPE_KEYS)}")
        if not ({"prune", "structured", "distill"} & set(r)):
            problems.append(f"{where} needs prune, structured and/or distill")
        if "from" in r and r["from"] not in names and r["from"] != "teacher":
            problems.append(f"{where} starts from {r['from']!r}, which is not an earlier recipe")
        data = {("source" if k == "from" else k): v for k, v in r.items() if k in RECIPE_KEYS}
        found = typed.problems(Recipe, data)
        problems += [f"{where} {p}" for p in found]
        names.add(r["name"])
        if found:
            continue
        recipe = typed.build(Recipe, data)
        _recipe_problems(recipe, where, problems)
        out.append(recipe)
    return out
