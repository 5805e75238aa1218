"""`deploy train` (also `torchrun --nproc-per-node N -m toolchain.cli train ...`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from toolchain.cli._input import (ChannelsOpt, ColorOpt, InputSizeOpt, MeanOpt, PixelScaleOpt, RgbToGrayOpt, StdOpt,
                                  pixel_kwargs)

from toolchain.cli import app
from toolchain.cli._common import (ForceOpt, IndexOpt, LayoutOpt, SplitSeedOpt, SplitsOpt, SubjectRegexOpt, console,
                                   epoch_reporter, progress)
from toolchain.train.config import TrainConfig as _T


def train_command(
    model: Annotated[str, typer.Argument(help="Model card (resnet50_ocular, tiny_ocular, ...), a card .toml, "
                                              "torchvision:NAME, or a bundle folder to fine-tune.")],
    data: Annotated[Path, typer.Option("--data", help="Data set folder (any layout; see deploy data check).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: bundle/, checkpoints, splits, protocols.")],
    epochs: Annotated[int, typer.Option(help="Passes over the training split.", min=1)] = _T.epochs,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per step (per process).", min=1)] = _T.batch_size,
    lr: Annotated[float, typer.Option(help="Peak learning rate.", min=0.0)] = _T.lr,
    optimizer: Annotated[str, typer.Option(help="sgd or adamw.")] = _T.optimizer,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="Weight decay (AdamW: decoupled; SGD: L2).")] = _T.weight_decay,
    warmup_epochs: Annotated[float, typer.Option("--warmup-epochs", help="Linear warm-up, then cosine.", min=0.0)] = _T.warmup_epochs,
    label_smoothing: Annotated[float, typer.Option("--label-smoothing", help="Label smoothing of the classification loss (0: none).")] = _T.label_smoothing,
    head: Annotated[str, typer.Option(help="softmax, arcface (additive angular margin) or cosface.")] = _T.head,
    margin: Annotated[float, typer.Option(help="Margin of arcface (radians) / cosface.")] = _T.margin,
    scale: Annotated[float, typer.Option(help="Logit scale of margin heads.")] = _T.scale,
    augment: Annotated[str, typer.Option(help="ocular (no flip), ocular-hflip or none.")] = _T.augment,
    seed: Annotated[int, typer.Option(help="Seed of weights init, data order and augmentation.")] = _T.seed,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = _T.device,
    amp: Annotated[Literal["auto", "on", "off"], typer.Option(help="Mixed precision: auto (with CUDA), on, off.")] = _T.amp,
    workers: Annotated[int, typer.Option("--workers", help="DataLoader worker processes.", min=0, max=256)] = _T.num_workers,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads (0: PyTorch's default, the machine's cores). "
                                         "Same seed + same threads on the same machine = bit-identical weights.",
                                         min=0, max=1024)] = _T.threads,
    max_bad_fraction: Annotated[float, typer.Option("--max-bad-fraction", help="Unreadable images tolerated (0..1).", min=0.0, max=1.0)] = _T.max_bad_fraction,
    input_size: InputSizeOpt = None,
    channels: ChannelsOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    color: ColorOpt = None,
    pixel_scale: PixelScaleOpt = None,
    rgb_to_gray: RgbToGrayOpt = False,
    weights: Annotated[str, typer.Option(help="Start from random or imagenet weights (cards only; never downloads).")] = "random",
    layout: LayoutOpt = None,
    subject_regex: SubjectRegexOpt = None,
    index: IndexOpt = None,
    splits: SplitsOpt = None,
    split_seed: SplitSeedOpt = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")] = False,
    force: ForceOpt = False,
) -> None:
    """Train by subject classification; validate by verification EER; write OUT/bundle."""
    from toolchain.train import distributed as D
    from toolchain.train.config import TrainConfig
    from toolchain.errors import ConfigError
    from toolchain.inputspec import parse_hw
    from toolchain.train.run import train

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                      warmup_epochs=warmup_epochs, label_smoothing=label_smoothing, head=head, margin=margin,
                      scale=scale, augment=augment, seed=seed, device=device, amp=amp, num_workers=workers,
                      threads=threads, max_bad_fraction=max_bad_fraction)
    main = D.info().is_main
    try:
        with progress() as bar:
            task = bar.add_task("training", total=None, status="", visible=main)

            report = epoch_reporter(bar, task)

            result = train(model, data, out, cfg, input_size=parse_hw(input_size, ConfigError), weights=weights,
                           pixels=pixel_kwargs(channels, mean, std, color, pixel_scale, rgb_to_gray), layout=layout,
                           subject_regex=subject_regex, index_csv=index, splits_file=splits, split_seed=split_seed,
                           resume=resume, progress=report if main else None, force=force)
    finally:
        D.shutdown()
    if not main:
        return
    for row in result.fit.history:
        eer = "-" if row["val_eer"] is None else f"{row['val_eer']:.2%}"
        console.print(f"epoch {row['epoch']:>3}  loss {row['train_loss']:.3f}  acc {row['train_accuracy']:.1%}  "
                      f"val EER {eer}  {row['images_per_second']:.1f} img/s")
    best = "-" if result.fit.best_val_eer is None else f"{result.fit.best_val_eer:.2%}"
    console.print(f"best epoch {result.fit.best_epoch} (val EER {best}); subjects train/val/test "
                  f"{result.splits['train']}/{result.splits['val']}/{result.splits['test']}; "
                  f"{result.fit.world_size} process(es) on {result.fit.device}")
    console.print(f"wrote bundle {result.bundle}; test protocol {out / 'protocol-test.json'}")


app.command("train")(train_command)
