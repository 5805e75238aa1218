"""`deploy prune|distill|measure`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from toolchain.cli import app
from toolchain.cli._common import (
    ForceOpt,
    IndexOpt,
    LayoutOpt,
    SplitSeedOpt,
    SplitsOpt,
    SubjectRegexOpt,
    console,
    epoch_reporter,
    err_console,
    progress,
    styled,
)
from toolchain.compress.config import DISTILL, METHODS, PRUNE, STRUCTURED, WidthConfig
from toolchain.train.config import FINETUNE_LR
from toolchain.train.config import TrainConfig as _T

_W = WidthConfig()  # width pruning's defaults (its one home)



def _data_spec(data: Optional[Path], layout, subject_regex, index, splits, split_seed):
    from toolchain.compress.run import DataSpec

    return None if data is None else DataSpec(data, layout, subject_regex, index, splits, split_seed)


def _train_cfg(epochs: int, batch_size: int, lr: float, seed: int, device: str, augment: str, head: str):
    from toolchain.train.config import finetune_config  # the short-run warm-up policy's one home

    return finetune_config(epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, augment=augment, head=head)


def _run_with_bar(fn, *args, show: bool = True, **kwargs):
    """Run ``fn`` with a progress bar on rank 0 (torchrun's other ranks show nothing), then leave the process group."""
    from toolchain.train import distributed as D

    try:
        if not show or not D.info().is_main:
            return fn(*args, **kwargs)
        with progress() as bar:
            task = bar.add_task("fine-tuning", total=None, status="")
            return fn(*args, progress=epoch_reporter(bar, task), **kwargs)
    finally:
        D.shutdown()


def _warn_ignored(method: str, ratio_of: str, gradient_mode: str, random_mode: str = PRUNE.random_mode) -> None:
    """One yellow line naming the options given a non-default value that ``method`` (a known one) never reads."""
    from toolchain.compress.config import METHODS, method_kind

    unstructured = method_kind(method) == "unstructured"  # an unknown name lists every method
    ignored = []
    if ratio_of != PRUNE.ratio_of and not unstructured:
        ignored.append("--ratio-of")
    if gradient_mode != PRUNE.gradient_mode and not (unstructured and METHODS.get(method).score == "gradient"):
        ignored.append("--gradient-mode")
    if random_mode != PRUNE.random_mode and not (unstructured and METHODS.get(method).score == "random"):
        ignored.append("--random-mode")
    if ignored:
        verb = "has" if len(ignored) == 1 else "have"
        err_console.print(styled(("warning:", "yellow"), f" {' and '.join(ignored)} {verb} no effect with "
                                 f"--method {method}; ignored"), soft_wrap=True)


def _ratio(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _print_result(res) -> None:
    if res.bundle is None:  # a torchrun rank other than 0: rank 0 reports
        return
    prov = res.meta["provenance"]
    comp = prov.get("compression") or {}
    w = res.meta["weights"]
    console.print(f"wrote {res.bundle}: {w['num_parameters']:,} parameters (with the training head), "
                  f"feature dim {res.meta['feature_dim']}")
    if "ratio_reached" in comp:
        console.print(f"compression ratio {comp['ratio_reached']:.3f} (target {comp['ratio_target']:g}, "
                      f"{comp.get('ratio_of', 'deployed')}), sparsity {comp['sparsity']:.2%}, "
                      f"{comp['nonzero_parameters']:,} non-zero")
        console.print(f"compression_deployed {_ratio(comp.get('compression_deployed', comp['ratio_reached']))} "
                      f"(trunk), compression_shrinkbench {_ratio(comp.get('compression_shrinkbench'))} "
                      "(whole model, classifier head included)")
    if "parameter_ratio" in comp:
        console.print(f"parameters {comp['parameters_before']:,} -> {comp['parameters_after']:,} "
                      f"({comp['parameter_ratio']:.2f}x); removed blocks: {', '.join(comp['removed_blocks']) or 'none'}")
    metrics = prov.get("metrics") or {}
    if metrics.get("val_eer") is not None:
        console.print(f"val EER {metrics['val_eer']:.2%} (best epoch {metrics['best_epoch']})")


@app.command("prune")
def prune_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder to prune.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder; the pruned bundle goes to OUT/bundle.")],
    method: Annotated[str, typer.Option(help="Unstructured: " + ", ".join(METHODS.names()) + ". Structured: "
                                             + ", ".join(STRUCTURED.names()) + ".")] = PRUNE.method,
    ratio: Annotated[float, typer.Option(help="Unstructured: total / non-zero parameters (see --ratio-of). channel: "
                                              "parameter or FLOP ratio (--target).")] = PRUNE.ratio,
    ratio_of: Annotated[str, typer.Option("--ratio-of", help="Unstructured: which parameters --ratio counts: deployed "
                                          "(the trunk that ships) or shrinkbench (the whole model with its classifier "
                                          "head, never pruned, as ShrinkBench's model_size / fraction_to_keep).")] = PRUNE.ratio_of,
    gradient_mode: Annotated[str, typer.Option("--gradient-mode", help="global-/layer-gradient: shrinkbench (train-mode "
                                               "BatchNorm, ONE batch of --batch-size images, as ShrinkBench; the model is "
                                               "restored after) or eval (eval-mode BatchNorm, gradient averaged over "
                                               "--calibration-batches).")] = PRUNE.gradient_mode,
    random_mode: Annotated[str, typer.Option("--random-mode", help="random: exact (a seeded exact count per layer, "
                                             "biases never pruned) or shrinkbench (each weight and bias of a prunable "
                                             "layer kept with probability p, as ShrinkBench's strategies/random.py; "
                                             "the ratio is met in expectation).")] = PRUNE.random_mode,
    data: Annotated[Optional[Path], typer.Option("--data", help="Data folder: fine-tuning and gradient scores.")] = None,
    finetune_epochs: Annotated[int, typer.Option("--finetune-epochs", help="Epochs of fine-tuning (0: none).", min=0)] = 0,
    schedule: Annotated[str, typer.Option(help="one-shot or iterative (geometric ratios over the first half).")] = PRUNE.schedule,
    steps: Annotated[int, typer.Option(help="Pruning steps of the iterative schedule.", min=1)] = PRUNE.steps,
    exclude: Annotated[Optional[list[str]], typer.Option("--exclude", help="Module name (or prefix ending in '.') "
                                                                          "never pruned; repeatable.")] = None,
    exclude_type: Annotated[Optional[list[str]], typer.Option("--exclude-type", help="Conv2d or Linear; repeatable.")] = None,
    prune_feature_head: Annotated[bool, typer.Option("--prune-feature-head", help="Also prune the trunk's last Linear.")] = False,
    importance: Annotated[str, typer.Option(help="channel: l1, l2, taylor or random.")] = _W.importance,
    target: Annotated[str, typer.Option(help="channel: params or flops.")] = _W.target,
    scope: Annotated[str, typer.Option(help="channel: global or uniform.")] = _W.scope,
    keep_per_stage: Annotated[Optional[int], typer.Option("--keep-per-stage", help="depth: blocks kept per stage.")] = None,
    remove_blocks: Annotated[Optional[list[str]], typer.Option("--remove-block", help="depth: block to remove, e.g. layer3.5; repeatable.")] = None,
    multiplier: Annotated[float, typer.Option(help="width-multiplier: fraction of channels kept (0..1].")] = PRUNE.multiplier,
    calibration_batches: Annotated[int, typer.Option("--calibration-batches", help="Batches for Taylor scores and "
                                                     "--gradient-mode eval.", min=1)] = PRUNE.calibration,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Fine-tuning and calibration batch size.", min=1)] = _T.batch_size,
    lr: Annotated[float, typer.Option(help="Fine-tuning peak learning rate.")] = FINETUNE_LR,
    head: Annotated[str, typer.Option(help="Training head: softmax, arcface or cosface.")] = _T.head,
    augment: Annotated[str, typer.Option(help="ocular, ocular-hflip or none.")] = _T.augment,
    seed: Annotated[int, typer.Option(help="Seed of random scores and fine-tuning.")] = _T.seed,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = _T.device,
    layout: LayoutOpt = None,
    subject_regex: SubjectRegexOpt = None,
    index: IndexOpt = None,
    splits: SplitsOpt = None,
    split_seed: SplitSeedOpt = 0,
    force: ForceOpt = False,
) -> None:
    """Prune a bundle (unstructured to a compression ratio, or structurally), fine-tune, write OUT/bundle."""
    from toolchain.compress import run
    from toolchain.compress.pruning.masks import PruneScope
    from toolchain.errors import CompressionError

    spec = _data_spec(data, layout, subject_regex, index, splits, split_seed)
    cfg = _train_cfg(finetune_epochs, batch_size, lr, seed, device, augment, head)
    if finetune_epochs > 0 and data is None:
        raise CompressionError("--finetune-epochs needs --data")
    from toolchain.compress.config import method_kind

    _warn_ignored(method, ratio_of, gradient_mode, random_mode)
    if method_kind(method) == "unstructured":
        options = dict(ratio=ratio, schedule=schedule, steps=steps, seed=seed, gradient_mode=gradient_mode,
                       ratio_of=ratio_of, random_mode=random_mode, scope=PruneScope(exclude_names=tuple(exclude or ()),
                                                           exclude_types=tuple(exclude_type or ()),
                                                           exclude_feature_head=not prune_feature_head))
    else:  # only the options the structured method reads (STRUCTURED), each built when it is read
        given = {"width": lambda: WidthConfig(ratio=ratio, target=target, importance=importance, scope=scope, seed=seed),
                 "multiplier": lambda: multiplier, "keep_per_stage": lambda: keep_per_stage,
                 "remove_blocks": lambda: tuple(remove_blocks or ())}
        options = {key: given[key]() for key in STRUCTURED.get(method)}
    res = _run_with_bar(run.prune, bundle, out, method, options, show=cfg is not None, data=spec, cfg=cfg,
                        calibration=calibration_batches, batch_size=batch_size, force=force)
    _print_result(res)


@app.command("distill")
def distill_command(
    teacher: Annotated[Path, typer.Option("--teacher", help="Teacher bundle (frozen).")],
    student: Annotated[str, typer.Option("--student", help="Model card, torchvision:NAME, or a bundle folder "
                                                           "(e.g. a pruned one: prune -> distill).")],
    data: Annotated[Path, typer.Option("--data", help="Data folder (split as deploy train splits it).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder; the student goes to OUT/bundle.")],
    loss: Annotated[Optional[list[str]], typer.Option("--loss", help="hinton, feature-cosine, feature-mse; repeatable, "
                                                                    "NAME or NAME=WEIGHT.")] = None,
    temperature: Annotated[float, typer.Option(help="Hinton temperature T.")] = DISTILL.temperature,
    alpha: Annotated[float, typer.Option(help="Hinton: weight of the soft-target term; CE gets 1 - alpha.")] = DISTILL.alpha,
    ce_weight: Annotated[Optional[float], typer.Option("--ce-weight", help="Weight of the hard-label cross-entropy "
                                                                          "(default 1 - alpha with hinton, else 1).")] = None,
    student_width: Annotated[Optional[float], typer.Option("--student-width", help="Card student: width multiplier.")] = None,
    student_keep_per_stage: Annotated[Optional[int], typer.Option("--student-keep-per-stage", help="Card student: blocks per stage.")] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training split.", min=1)] = _T.epochs,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per step.", min=1)] = _T.batch_size,
    lr: Annotated[float, typer.Option(help="Peak learning rate of the student.")] = _T.lr,
    head: Annotated[str, typer.Option(help="Student training head: softmax, arcface or cosface.")] = _T.head,
    augment: Annotated[str, typer.Option(help="ocular (no flip), ocular-hflip or none.")] = _T.augment,
    seed: Annotated[int, typer.Option(help="Seed of the student's init, data order and augmentation.")] = _T.seed,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = _T.device,
    layout: LayoutOpt = None,
    subject_regex: SubjectRegexOpt = None,
    index: IndexOpt = None,
    splits: SplitsOpt = None,
    split_seed: SplitSeedOpt = 0,
    force: ForceOpt = False,
) -> None:
    """Distil a teacher bundle into a student on a data folder; write OUT/bundle."""
    from toolchain.compress import run
    from toolchain.compress.distill import parse_losses
    from toolchain.errors import CompressionError

    specs, ce_weight = parse_losses(loss, alpha=alpha, temperature=temperature, ce_weight=ce_weight)
    cfg = _train_cfg(epochs, batch_size, lr, seed, device, augment, head)
    if cfg is None:
        raise CompressionError("--epochs must be at least 1 for distillation")
    spec = _data_spec(data, layout, subject_regex, index, splits, split_seed)
    res = _run_with_bar(run.distill, teacher, student, out, spec, cfg, losses=specs, ce_weight=ce_weight,
                        multiplier=student_width, keep_per_stage=student_keep_per_stage, force=force)
    _print_result(res)


@app.command("measure")
def measure_command(
    model: Annotated[Path, typer.Argument(help="Bundle folder.")],
    reference: Annotated[Optional[Path], typer.Option("--reference", help="Uncompressed bundle (teacher/parent) for "
                                                                         "compression ratio and speedup.")] = None,
    export: Annotated[Optional[list[str]], typer.Option("--export", help="Also export to TARGET (onnx, coreml, tflite) "
                                                                        "and report artifact sizes; repeatable.")] = None,
    export_dir: Annotated[Optional[Path], typer.Option("--export-dir", help="Where --export writes (default: a temp folder).")] = None,
    compress: Annotated[Optional[str], typer.Option("--compress", help="Core ML weight compression for --export coreml "
                                                                      "(sparse, palettize4, ...).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Parameters, non-zeros, compression ratios (deployed trunk and ShrinkBench's whole model), FLOPs,
    theoretical speedup, bytes on disk (and artifact sizes)."""
    import tempfile

    from toolchain.compress.measure import measure_artifacts, measure_bundle

    m = measure_bundle(model, reference)
    if export:
        with tempfile.TemporaryDirectory(prefix="measure-") as tmp:
            m.artifacts = measure_artifacts(model, export, Path(export_dir or tmp), compress)
    if as_json:
        console.print_json(json.dumps(m.to_json()))
        return
    rows = [("parameters", f"{m.parameters:,}"), ("non-zero", f"{m.nonzero_parameters:,} (sparsity {m.sparsity:.2%})"),
            ("compression_deployed", f"{m.compression_deployed:.3f} (trunk: parameters / non-zero)"),
            ("whole model", (f"{m.shrinkbench_parameters:,} parameters, {m.shrinkbench_nonzero_parameters:,} "
                             "non-zero (classifier head included)")),
            ("compression_shrinkbench", f"{m.compression_shrinkbench:.3f} (whole model, ShrinkBench's model_size)"), ("FLOPs", f"{m.flops:,} ({'x'.join(map(str, m.input_chw)) if m.input_chw else m.input_size} px)"),
            ("effective FLOPs", f"{m.effective_flops:,}"), ("theoretical speedup", f"{m.theoretical_speedup:.3f}"),
            ("dense bytes", f"{m.dense_bytes:,}"), ("gzip bytes", f"{m.gzip_bytes:,}")]
    for name, a in m.artifacts.items():
        rows.append((name, f"{a['size_bytes']:,} bytes, parity {a['parity']}"))
    for k, v in rows:
        console.print(f"{k:>23}  {v}")
