"""`deploy prune` and `deploy distill` end to end: bundle + data folder -> compressed bundle in ``OUT/bundle``.

Fine-tuning and distillation go through the one training loop (:func:`toolchain.train.loop.fit`)
with hooks: :class:`~toolchain.compress.pruning.schedule.PruneHooks` keeps pruned weights at
zero, :class:`~toolchain.compress.distill.DistillHooks` adds the teacher's losses. The data
folder is split exactly as ``deploy train`` splits it (same split seed -> same subjects, same
labels), and the run folder gets the same ``splits.json`` / ``protocol-{val,test}.json``.

Provenance of the output bundle: ``recipe`` (what was done, with every setting), ``compression``
(ratio, sparsity, widths, removed blocks), ``training`` (the loop's config and history).

Under ``torchrun --nproc-per-node N -m toolchain.cli prune|distill``, every process scores and fine-tunes (the loop
is DistributedDataParallel, as for ``deploy train``) and only rank 0 writes: the run folder, the splits and the bundle
(:func:`_writes`); the other ranks return a result whose ``bundle`` is None.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from toolchain.compress.config import PRUNE, STRUCTURED, method_kind
from toolchain.compress.config import GRADIENT_MODES, METHODS
from toolchain.compress.logits import HeadSpec, head_loss, head_of
from toolchain.compress.pruning.masks import PruneScope, count_parameters
from toolchain.compress.pruning.schedule import SCHEDULES, PruneHooks, finalize
from toolchain.compress.pruning.unstructured import ScoreContext, fit_probe_head
from toolchain.errors import CompressionError
from toolchain.fsutil import claim_output_dir
from toolchain.inputspec import meta_chw
from toolchain.models.arch import probe_feature_dim, recalibrate_batchnorm
from toolchain.models.bundle import Bundle, derive_meta, load_bundle, save_bundle
from toolchain.models.graph import require_rebuildable
from toolchain.policy import MAX_BAD_FRACTION
from toolchain.train import distributed as D
from toolchain.train.loop import FitResult, Hooks, ProgressFn, TrainConfig, fit

log = logging.getLogger(__name__)


@dataclass
class DataSpec:
    """A data set folder and how to split it (as ``deploy train``)."""

    root: Path
    layout: str | None = None
    subject_regex: str | None = None
    index_csv: Path | None = None
    splits_file: Path | None = None
    split_seed: int = 0


@dataclass
class Prepared:
    train: Any  # ImageDataset
    val: Any  # Protocol or None
    info: dict[str, Any]


def _writes() -> bool:
    """True in the process that writes outputs: rank 0 under torchrun, the only process otherwise."""
    return D.info().is_main


def _claim(out: str | Path, force: bool) -> Path:
    """The run folder, checked and marked by rank 0 only (never a folder of the user's; see claim_output_dir)."""
    return claim_output_dir(out, "run", force) if _writes() else Path(out)


def prepare_data(spec: DataSpec, out: Path, size: Any, mean: Sequence[float], std: Sequence[float],
                 augment: str, max_bad_fraction: float, options: dict[str, Any] | None = None) -> Prepared:
    """Training split as an ImageDataset and the val protocol; writes splits and protocols into ``out``.
    ``size``: (C, H, W) (or an int / (H, W)); ``options``: how images are read (``Bundle.pixel_options``)."""
    from toolchain.data.images import ImageDataset
    from toolchain.data.layouts import scan
    from toolchain.data.splits import DEFAULT_FRACTIONS, make_protocol, save_protocol, splits_json
    from toolchain.fsutil import atomic_write_json
    from toolchain.train.run import VAL_MAX_IMPOSTORS, split_dataset

    dataset = scan(spec.root, spec.layout, spec.subject_regex, spec.index_csv)
    assignment = split_dataset(dataset, spec.splits_file, spec.split_seed)
    by_split = {k: [s for s, v in assignment.items() if v == k] for k in ("train", "val", "test")}
    from toolchain.data.closed_set import training_samples

    samples, held_out = training_samples(dataset, by_split["train"], spec.splits_file)
    identities = sorted({s.identity for s in samples})
    label = {name: k for k, name in enumerate(identities)}
    train = ImageDataset([s.path for s in samples], [label[s.identity] for s in samples], size, mean, std,
                         augment, max_bad_fraction, **(options or {}))
    val = None
    if _writes():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "splits.json", splits_json(assignment, spec.split_seed, DEFAULT_FRACTIONS, dataset))
        from toolchain.data.closed_set import copy_closed_set

        copy_closed_set(spec.splits_file, out)  # beside the protocols written here, as `deploy train` does
    if len(by_split["val"]) >= 2:
        val = make_protocol(dataset.select(by_split["val"]), spec.split_seed, VAL_MAX_IMPOSTORS, dataset.root, "val")
        if _writes():
            save_protocol(val, out / "protocol-val.json")
    if len(by_split["test"]) >= 2 and _writes():
        save_protocol(make_protocol(dataset.select(by_split["test"]), spec.split_seed, root=dataset.root,
                                    split="test"), out / "protocol-test.json")
    info = {"root": str(dataset.root), "layout": dataset.layout, "split_seed": spec.split_seed,
            "subjects": {k: len(v) for k, v in by_split.items()}, "train_identities": len(identities),
            "closed_set_held_out": held_out}
    return Prepared(train, val, info)


def calibration_batches(train_ds: Any, batches: int, batch_size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``batches`` seeded random batches of the training split (gradient and Taylor scores)."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train_ds), generator=g).tolist()
    out = []
    for k in range(batches):
        idx = order[k * batch_size:(k + 1) * batch_size]
        if not idx:
            break
        items = [train_ds[i] for i in idx]
        out.append((torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])))
    return out


@dataclass
class CompressResult:
    bundle: Path | None  # None on ranks other than 0 (torchrun): they write nothing
    meta: dict[str, Any]
    fit: FitResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _finetune(model: Any, prepared: Prepared | None, cfg: TrainConfig, out: Path, hooks: Hooks,
              progress: ProgressFn | None) -> FitResult | None:
    if cfg is None or prepared is None:
        return None
    model.train()
    return fit(model, prepared.train, prepared.val, cfg, out, hooks=hooks, progress=progress)


def variant_name(parent_name: str, recipe: dict[str, Any]) -> str:
    """A bundle name that tells variants apart (artifact names derive from it).

    >>> variant_name("resnet50_ocular", {"kind": "unstructured", "method": "layer-magnitude", "ratio": 8.0})
    'resnet50_ocular_layer_magnitude_8x'
    >>> variant_name("tiny", {"kind": "structured", "width_multiplier": 0.5, "keep_per_stage": 2})
    'tiny_w0.5_d2'
    """
    if recipe["kind"] == "unstructured":
        suffix = f"{recipe['method'].replace('-', '_')}_{recipe['ratio']:g}x"
        suffix += "_sb" if recipe.get("ratio_of") == "shrinkbench" else ""  # another ratio: another model
    else:
        w = recipe.get("width") or {}
        parts = [f"w{recipe['width_multiplier']:g}"] if recipe.get("width_multiplier") else []
        parts += [f"ch_{w['importance']}_{w['ratio']:g}x"] if w else []
        parts += [f"d{recipe['keep_per_stage']}"] if recipe.get("keep_per_stage") is not None else []
        parts += ["blocks"] if recipe.get("remove_blocks") else []
        suffix = "_".join(parts) or "structured"
    return f"{parent_name}_{suffix}"


def _save(model: Any, parent: Bundle, out: Path, recipe: dict[str, Any], compression: dict[str, Any],
          result: FitResult | None, prepared: Prepared | None, removed: Sequence[str] = (),
          head: Any = None) -> CompressResult:
    model.eval()
    if not _writes():
        return CompressResult(None, {}, result)
    meta = derive_meta(parent, recipe=recipe)
    # What the head's logits mean (KD from this bundle reads them): the fine-tune's head, else the parent's.
    meta["provenance"]["classification_head"] = (HeadSpec.from_config(result.config) if result
                                                 else head or head_of(parent.meta)).to_json()
    meta["name"] = variant_name(parent.name, recipe)
    meta["provenance"]["compression"] = compression
    if removed:
        arch = meta["architecture"]
        arch["removed_blocks"] = sorted(set(arch.get("removed_blocks") or []) | set(removed))
    meta["feature_dim"] = probe_feature_dim(model, meta_chw(meta))
    meta["provenance"]["training"] = ({**result.provenance(), "data": prepared.info} if result else None)
    meta["provenance"]["metrics"] = ({"val_eer": result.best_val_eer, "best_epoch": result.best_epoch}
                                     if result else None)
    path = save_bundle(model, meta, out / "bundle")
    return CompressResult(path, load_bundle(path).meta, result)


def _calibration_batch_size(batch_size: int | None, cfg: TrainConfig | None) -> int:
    """``--batch-size`` when given, else the fine-tune's, else the training default (never a hidden constant)."""
    bs = batch_size if batch_size is not None else (cfg.batch_size if cfg else TrainConfig.batch_size)
    if bs < 1:
        raise CompressionError(f"--batch-size must be at least 1, got {bs}")
    return int(bs)


def _needs_data(epochs: int, needs_batches: bool, data: DataSpec | None, what: str) -> None:
    if data is None and (epochs > 0 or needs_batches):
        raise CompressionError(f"{what} needs --data (fine-tuning epochs > 0 or gradient scores)")


def prune_unstructured(bundle_dir: str | Path, out: str | Path, method: str, ratio: float, *,
                       data: DataSpec | None = None, cfg: TrainConfig | None = None, schedule: str = PRUNE.schedule,
                       steps: int = PRUNE.steps, scope: PruneScope | None = None, calibration: int = PRUNE.calibration,
                       seed: int = 0, gradient_mode: str = PRUNE.gradient_mode, ratio_of: str = PRUNE.ratio_of,
                       batch_size: int | None = None, random_mode: str = PRUNE.random_mode,
                       progress: ProgressFn | None = None, force: bool = False) -> CompressResult:
    """Unstructured pruning to ``ratio`` with a registered method, fine-tuned ``cfg.epochs`` with masks fixed.

    ``cfg=None`` (or no data) prunes without fine-tuning. Zeros stay as dense tensors in the bundle.

    Args:
        gradient_mode: gradient methods only: ``shrinkbench`` (train mode, ONE batch of
            ``batch_size`` images, as ShrinkBench) or ``eval`` (eval mode, ``calibration`` batches
            averaged); see :mod:`toolchain.compress.pruning.unstructured`.
        ratio_of: ``deployed`` (``ratio`` counts the trunk) or ``shrinkbench`` (the whole model, head
            included); see :mod:`toolchain.compress.pruning.masks`.
        batch_size: images per calibration batch (default: ``cfg.batch_size``, else the training default).
        random_mode: ``random`` only: ``exact`` (a seeded exact count per layer) or ``shrinkbench`` (each
            weight and bias kept with probability p; :mod:`toolchain.compress.pruning.bernoulli`).
    """
    from toolchain.compress.pruning.masks import RATIO_DEFINITIONS

    m = METHODS.get(method)
    if gradient_mode not in GRADIENT_MODES:
        raise CompressionError(f"unknown --gradient-mode {gradient_mode!r}; known: {', '.join(GRADIENT_MODES)}")
    if ratio_of not in RATIO_DEFINITIONS:
        raise CompressionError(f"unknown --ratio-of {ratio_of!r}; known: {', '.join(RATIO_DEFINITIONS)}")
    bs = _calibration_batch_size(batch_size, cfg)
    out = _claim(out, force)  # OUT/bundle is replaced: never in a folder of the user's
    epochs = cfg.epochs if cfg else 0
    _needs_data(epochs, m.score == "gradient", data, f"--method {method}")
    parent = load_bundle(bundle_dir)
    require_rebuildable(parent.meta, "pruning")
    model = parent.model
    prepared = None
    batches: list = []
    head = head_of(parent.meta)
    if data is not None:
        prepared = prepare_data(data, out, parent.input_chw, parent.mean, parent.std,
                                cfg.augment if cfg else "none", cfg.max_bad_fraction if cfg else MAX_BAD_FRACTION,
                                parent.pixel_options)
        if m.score == "gradient":
            n = 1 if gradient_mode == "shrinkbench" else calibration  # ShrinkBench: next(iter(train_dl))
            batches = calibration_batches(prepared.train, n, bs, seed)
            if model.head is None or model.head.out_features != prepared.train.num_classes:
                fit_probe_head(model, batches, prepared.train.num_classes)
                head = HeadSpec()  # a least-squares Linear: plain W f + b
    loss_fn = head_loss(head)  # the loss of the head's own logits (s cos(theta) for a margin head)
    # Fine-tuning trains the head as cfg.head: steps after the first score the head being trained.
    trained = HeadSpec.from_config(cfg) if epochs else None
    sched = SCHEDULES.get(schedule)(ratio, max(epochs, 1), steps)
    hooks = PruneHooks(method, sched, scope, ScoreContext(batches, loss_fn, seed, gradient_mode, random_mode),
                       fixed_dense=epochs > 0, ratio_of=ratio_of,
                       trained_loss_fn=head_loss(trained) if trained else None)
    result = _finetune(model, prepared, cfg, out, hooks, progress) if epochs else None
    if result is not None:
        model = result.model
        if result.best_epoch - 1 < sched.final_epoch:
            log.warning("the best validation epoch (%d) came before the schedule's last step; the final masks "
                        "are applied to it", result.best_epoch)
    else:
        for epoch in sorted(sched.steps):
            hooks.prune_now(model, sched.steps[epoch], epoch)
    rep = finalize(model, hooks.masks, ratio, ratio_of)
    grad = gradient_mode if m.score == "gradient" else None
    recipe = {"kind": "unstructured", "method": method, "ratio": ratio, "ratio_of": ratio_of, "schedule": schedule,
              "steps": {str(k): v for k, v in sched.steps.items()}, "scope": (scope or PruneScope()).to_json(),
              "gradient_mode": grad, "gradient_logits": head.name if grad else None,
              "gradient_logits_later_steps": trained.name if grad and trained and len(sched.steps) > 1 else None,
              "calibration_batches": len(batches),
              "calibration_batch_size": len(batches[0][1]) if batches else None, "seed": seed,
              "finetune_epochs": epochs, "random_mode": random_mode if m.score == "random" else None}
    compression = {**rep.to_json(), "gradient_mode": grad, "pruning_steps": hooks.results}
    return _save(model, parent, out, recipe, compression, result, prepared, head=head)


def prune(bundle_dir: str | Path, out: str | Path, method: str, options: dict[str, Any] | None = None,
          **common: Any) -> CompressResult:
    """Prune with any method of :data:`~toolchain.compress.config.PRUNING_METHODS`: the CLI's and the pipeline's
    one entry point (an unknown name lists every method).

    Args:
        options: the method's own settings. Unstructured: ``ratio`` (default ``PRUNE.ratio``) and the keywords
            of :func:`prune_unstructured` (schedule, steps, scope, seed, gradient_mode, ratio_of). Structured: the
            keys :data:`~toolchain.compress.config.STRUCTURED` lists for it (channel: ``width``, a
            :class:`~toolchain.compress.pruning.structured.WidthConfig`; depth: ``keep_per_stage`` /
            ``remove_blocks``; width-multiplier: ``multiplier``).
        common: data, cfg, calibration, batch_size, progress, force.
    """
    opts = dict(options or {})
    if method_kind(method) == "unstructured":
        return prune_unstructured(bundle_dir, out, method, opts.pop("ratio", PRUNE.ratio), **opts, **common)
    reads = STRUCTURED.get(method)
    extra = sorted(set(opts) - set(reads))
    if extra:
        raise CompressionError(f"{method} pruning does not read {', '.join(extra)}; it reads {', '.join(reads)}")
    return prune_structured(bundle_dir, out, **opts, **common)


def prune_structured(bundle_dir: str | Path, out: str | Path, *, width: Any = None, multiplier: float | None = None,
                     keep_per_stage: int | Sequence[int] | None = None, remove_blocks: Sequence[str] = (),
                     data: DataSpec | None = None, cfg: TrainConfig | None = None, calibration: int = PRUNE.calibration,
                     batch_size: int | None = None, progress: ProgressFn | None = None,
                     force: bool = False) -> CompressResult:
    """Structured compression: depth (remove residual blocks), then width (``WidthConfig``) or a width multiplier.

    The network really shrinks; ``model.json`` records the widths and removed blocks.
    """
    from toolchain.compress.pruning import depth, structured

    if width is None and multiplier is None and keep_per_stage is None and not remove_blocks:
        raise CompressionError("nothing to do: give a width ratio, a width multiplier, --keep-per-stage or --remove-blocks")
    out = _claim(out, force)
    epochs = cfg.epochs if cfg else 0
    needs_batches = width is not None and width.importance == "taylor"
    _needs_data(epochs, needs_batches, data, "structured pruning")
    parent = load_bundle(bundle_dir)
    require_rebuildable(parent.meta, "width/depth pruning")
    size = parent.input_chw
    model = parent.model
    before = count_parameters(model)[0]
    prepared = None
    batches: list = []
    head = head_of(parent.meta)
    if data is not None:
        prepared = prepare_data(data, out, size, parent.mean, parent.std, cfg.augment if cfg else "none",
                                cfg.max_bad_fraction if cfg else MAX_BAD_FRACTION, parent.pixel_options)
        if needs_batches:
            batches = calibration_batches(prepared.train, calibration, _calibration_batch_size(batch_size, cfg), 0)
            if model.head is None or model.head.out_features != prepared.train.num_classes:
                fit_probe_head(model, batches, prepared.train.num_classes)
                head = HeadSpec()  # a least-squares Linear: plain W f + b
    removed: list[str] = []
    if remove_blocks:
        removed += depth.remove_blocks(model, list(remove_blocks), size)
    if keep_per_stage is not None:
        removed += depth.keep_per_stage(model, keep_per_stage, size)
    compression: dict[str, Any] = {"removed_blocks": removed}
    if width is not None:
        res = structured.prune_width(model, width, size, batches, loss_fn=head_loss(head))  # taylor: the head's loss
        model = res.model
        compression["width"] = res.to_json(width)
    elif multiplier is not None:
        model = structured.width_multiplier(model, multiplier, size)
        compression["width_multiplier"] = multiplier
    result = _finetune(model, prepared, cfg, out, Hooks(), progress) if epochs else None
    if result is not None:
        model = result.model
    after = count_parameters(model)[0]
    compression.update({"parameters_before": before, "parameters_after": after,
                        "parameter_ratio": round(before / after, 4)})
    recipe = {"kind": "structured", "width": width.to_json() if width is not None else None,
              "width_multiplier": multiplier, "keep_per_stage": keep_per_stage, "remove_blocks": list(remove_blocks),
              "finetune_epochs": epochs}
    return _save(model, parent, out, recipe, compression, result, prepared, removed, head=head)


def build_student(spec: str, teacher: Bundle, seed: int = 0, multiplier: float | None = None,
                  keep_per_stage: int | None = None) -> tuple[Any, dict[str, Any], list[str]]:
    """(model, model.json, removed blocks) of a student: a bundle folder, a model card or ``torchvision:NAME``.

    A card student is built at the teacher's input size and normalisation, optionally thinned
    (``multiplier``) and shortened (``keep_per_stage``), then its BatchNorm statistics re-estimated.
    """
    from toolchain.compress.pruning import depth, structured
    from toolchain.models.bundle import new_model
    from toolchain.models.cards import load_card

    if (Path(spec) / "model.json").is_file():
        if multiplier is not None or keep_per_stage is not None:
            raise CompressionError("--student-width/--student-keep-per-stage apply to card students; prune a bundle "
                                   "with `deploy prune` first")
        b = load_bundle(spec)
        return b.model, derive_meta(b), list(b.meta["architecture"].get("removed_blocks") or [])
    card = load_card(spec)
    model, meta = new_model(card, seed=seed, input_size=teacher.input_hw, channels=teacher.channels,
                            mean=teacher.mean, std=teacher.std, color=teacher.color, scale=teacher.scale)
    meta["input"] = copy.deepcopy(teacher.meta["input"])  # the teacher's pixels, field for field
    size = teacher.input_chw
    removed: list[str] = []
    if keep_per_stage is not None:
        removed = depth.keep_per_stage(model, keep_per_stage, size)
        meta["architecture"]["removed_blocks"] = removed
    if multiplier is not None:
        model = structured.width_multiplier(model, multiplier, size, importance="random", seed=seed)
    if removed or multiplier is not None:
        recalibrate_batchnorm(model, size, seed=seed)
        meta["name"] = f"{meta['name']}_w{multiplier or 1:g}" + (f"_d{keep_per_stage}" if removed else "")
    return model, meta, removed


def sparse_masks(model: Any) -> dict[str, torch.Tensor]:
    """Masks (True = non-zero) of every conv/linear weight holding zeros: an unstructured-pruned student."""
    net = getattr(model, "trunk", model)
    return {n: m.weight.detach() != 0 for n, m in net.named_modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and bool((m.weight == 0).any())}


def distill(teacher_dir: str | Path, student: str, out: str | Path, data: DataSpec, cfg: TrainConfig, *,
            losses: Sequence[Any], ce_weight: float = 1.0, multiplier: float | None = None,
            keep_per_stage: int | None = None, progress: ProgressFn | None = None, force: bool = False) -> CompressResult:
    """Distil a frozen teacher bundle into a student (card, ``torchvision:NAME`` or bundle) on ``data``."""
    from toolchain.compress.distill import DistillHooks, check_pair

    out = _claim(out, force)
    teacher = load_bundle(teacher_dir)
    model, meta, removed = build_student(student, teacher, cfg.seed, multiplier, keep_per_stage)
    check_pair(teacher.meta, meta)
    prepared = prepare_data(data, out, teacher.input_chw, teacher.mean, teacher.std, cfg.augment,
                            cfg.max_bad_fraction, teacher.pixel_options)
    s_dim = probe_feature_dim(model, teacher.input_chw)
    keep_zeros = sparse_masks(model) if (meta["provenance"].get("recipe") or {}).get("kind") == "unstructured" else None
    teacher_head = head_of(teacher.meta)  # a margin-head teacher's logits are s cos(theta), not W f + b
    hooks = DistillHooks(teacher.model, list(losses), s_dim, teacher.feature_dim, ce_weight, cfg.seed, keep_zeros,
                         teacher_head=teacher_head, student_head=HeadSpec.from_config(cfg))
    model.train()
    result = fit(model, prepared.train, prepared.val, cfg, out, hooks=hooks, progress=progress)
    student_model = result.model.eval()
    if not _writes():
        return CompressResult(None, {}, result)
    meta = dict(meta)
    meta["provenance"] = {**meta["provenance"], "parent_sha256": meta["provenance"].get("parent_sha256"),
                          "teacher_sha256": teacher.sha256,
                          "recipe": {"kind": "distill", "teacher": str(teacher_dir), "teacher_sha256": teacher.sha256,
                                     "student": student, "losses": [l.to_json() for l in losses],
                                     "ce_weight": ce_weight, "student_width": multiplier,
                                     "teacher_head": teacher_head.to_json(),
                                     "kept_zeros_of_layers": len(keep_zeros or {}),
                                     "student_keep_per_stage": keep_per_stage},
                          "training": {**result.provenance(), "data": prepared.info},
                          "classification_head": HeadSpec.from_config(cfg).to_json(),
                          "metrics": {"val_eer": result.best_val_eer, "best_epoch": result.best_epoch}}
    if removed:
        meta["architecture"]["removed_blocks"] = removed
    meta["feature_dim"] = probe_feature_dim(student_model, teacher.input_chw)
    path = save_bundle(student_model, meta, out / "bundle")
    return CompressResult(path, load_bundle(path).meta, result)
