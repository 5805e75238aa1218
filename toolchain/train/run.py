"""``deploy train``: a data set folder + a card or bundle -> a trained bundle in ``OUT/bundle``.

Steps: read the data set (any layout), assign subject-disjoint splits (or read a
``splits.json``), write ``splits.json``, ``protocol-val.json`` and ``protocol-test.json``
into the run folder, train on the train split's identities with :func:`toolchain.train.loop.fit`,
validate on the val split's pairs, and save the best epoch as a bundle whose provenance holds
the training config, the per-epoch metrics and the best epoch.

Run folder: ``bundle/``, ``checkpoint.safetensors`` + ``checkpoint.json``, ``best.safetensors``,
``splits.json``, ``protocol-val.json``, ``protocol-test.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from toolchain.data.images import ImageDataset
from toolchain.data.layouts import Dataset, scan
from toolchain.data.splits import (DEFAULT_FRACTIONS, assign_splits, load_splits, make_protocol, save_protocol,
                                   splits_json)
from toolchain.errors import DataError, ToolchainError
from toolchain.fsutil import atomic_write_json, claim_output_dir
from toolchain.inputspec import meta_chw
from toolchain.train import distributed as D
from toolchain.train.checkpoint import STATE_FILE
from toolchain.train.loop import FitResult, Hooks, ProgressFn, TrainConfig, fit

VAL_MAX_IMPOSTORS = 20_000


@dataclass
class RunResult:
    bundle: Path | None  # None on ranks other than 0
    fit: FitResult
    splits: dict[str, int]


def split_dataset(dataset: Dataset, splits_file: str | Path | None = None, seed: int = 0,
                  fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, str]:
    """subject -> split, from ``splits_file`` (every subject must be in it) or by :func:`assign_splits`."""
    if splits_file is None:
        return assign_splits(dataset.subjects(), fractions, seed)
    assignment = load_splits(splits_file)
    missing = [s for s in dataset.subjects() if s not in assignment]
    if missing:
        raise DataError(f"{len(missing)} subject(s) of {dataset.root} are not in {splits_file}, e.g. {missing[0]!r}: "
                        "the splits file was made for another data set (re-run `deploy data split`)")
    return assignment


def _load_start(model_spec: str, seed: int, input_size: Any, weights: str, pixels: dict[str, Any] | None = None):
    """(model, model.json, is_derived) from a bundle folder or a card."""
    from toolchain.models.bundle import derive_meta, load_bundle, new_model
    from toolchain.models.cards import load_card

    if (Path(model_spec) / "model.json").is_file():
        if input_size is not None or pixels:
            given = ["--input-size"] * (input_size is not None) + [f"--{k.replace('_', '-')}" for k in pixels or {}]
            raise ToolchainError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to a card; a bundle "
                                 "keeps its own input spec")
        b = load_bundle(model_spec)
        b.model.train()
        return b.model, derive_meta(b), True
    model, meta = new_model(load_card(model_spec), seed=seed, input_size=input_size, weights=weights, **(pixels or {}))
    model.train()
    return model, meta, False


def train(model_spec: str, data: str | Path, out: str | Path, cfg: TrainConfig, *, input_size: Any = None,
          pixels: dict[str, Any] | None = None,
          weights: str = "random", layout: str | None = None, subject_regex: str | None = None,
          index_csv: str | Path | None = None, splits_file: str | Path | None = None, split_seed: int = 0,
          fractions: Sequence[float] = DEFAULT_FRACTIONS, val_max_impostors: int = VAL_MAX_IMPOSTORS,
          hooks: Hooks | None = None, resume: bool = False, progress: ProgressFn | None = None,
          force: bool = False) -> RunResult:
    """Train a card or bundle on a data set folder; write the run folder ``out`` (see the module docstring).

    ``input_size`` (an int or (H, W)) and ``pixels`` (``channels``, ``mean``, ``std``, ``color``, ``scale``,
    ``rgb_to_gray``) set a card's input spec; a bundle keeps its own.
    ``out`` must be new, empty or a run folder this tool wrote (``force``: any folder).
    """
    from toolchain.models.bundle import save_bundle

    out = Path(out)
    if D.info().is_main:
        claim_output_dir(out, "run", force)
    if not resume and (out / STATE_FILE).is_file():
        raise ToolchainError(f"{out} already holds a training checkpoint: pass --resume to continue it, "
                             "or choose another --out")
    dataset = scan(data, layout, subject_regex, index_csv)
    assignment = split_dataset(dataset, splits_file, split_seed, fractions)
    by_split = {k: [s for s, v in assignment.items() if v == k] for k in ("train", "val", "test")}
    from toolchain.data.closed_set import training_samples

    train_samples, held_out = training_samples(dataset, by_split["train"], splits_file)
    identities = sorted({s.identity for s in train_samples})
    label = {name: k for k, name in enumerate(identities)}
    model, meta, derived = _load_start(model_spec, cfg.seed, input_size, weights, pixels)
    from toolchain.inputspec import hw
    from toolchain.models.bundle import pixel_options

    size = hw(meta_chw(meta))
    train_ds = ImageDataset([s.path for s in train_samples], [label[s.identity] for s in train_samples], size,
                            meta["input"]["mean"], meta["input"]["std"], cfg.augment, cfg.max_bad_fraction,
                            **pixel_options(meta))
    val_protocol = None
    if len(by_split["val"]) >= 2:
        val_protocol = make_protocol(dataset.select(by_split["val"]), split_seed, val_max_impostors, dataset.root, "val")
    if D.info().is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "splits.json", splits_json(assignment, split_seed, fractions, dataset))
        from toolchain.data.closed_set import copy_closed_set

        copy_closed_set(splits_file, out)  # its protocols sit beside it, so `evaluate` finds the probes here too
        if val_protocol is not None:
            save_protocol(val_protocol, out / "protocol-val.json")
        if len(by_split["test"]) >= 2:
            save_protocol(make_protocol(dataset.select(by_split["test"]), split_seed, root=dataset.root, split="test"),
                          out / "protocol-test.json")
    result = fit(model, train_ds, val_protocol, cfg, out, hooks=hooks, resume=resume, progress=progress)
    counts = {k: len(v) for k, v in by_split.items()}
    if not D.info().is_main:
        return RunResult(None, result, counts)
    training: dict[str, Any] = {
        **result.provenance(),
        "data": {"root": str(dataset.root), "layout": dataset.layout, "subjects": counts,
                 "train_identities": len(identities), "closed_set_held_out": held_out, "skipped_images": [str(p) for p, _ in train_ds.bad],
                 "split_seed": split_seed, "fractions": list(fractions), "splits_file": str(splits_file) if splits_file else None},
        "start": {"from": "bundle" if derived else "card", "spec": str(model_spec), "weights": weights if not derived else None},
    }
    meta["provenance"]["training"] = training
    meta["provenance"]["metrics"] = {"val_eer": result.best_val_eer, "best_epoch": result.best_epoch,
                                     "epochs": len(result.history)}
    bundle = save_bundle(result.model, meta, out / "bundle")
    return RunResult(bundle, result, counts)
