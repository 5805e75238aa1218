"""The one training loop: subject classification, validated by verification EER.

Teacher training, prune fine-tuning and knowledge distillation all call :func:`fit`; what
differs between them goes through :class:`Hooks`.

API::

    from toolchain.train.loop import TrainConfig, Hooks, fit

    result = fit(model, train_ds, val_protocol, TrainConfig(epochs=5), out_dir="runs/x",
                 hooks=None, resume=False, progress=None)
    result.model            # FeatureModel (CPU, eval mode) holding the best epoch's weights
    result.provenance()     # JSON for model.json: config, per-epoch metrics, best epoch

* ``model``: a :class:`toolchain.models.arch.FeatureModel`. If its ``head`` is missing or has
  the wrong number of classes, a new ``nn.Linear(D, C)`` head is attached (C =
  ``train_ds.num_classes``).
* ``train_ds``: a :class:`toolchain.data.images.ImageDataset` with labels 0..C-1.
* ``val``: a :class:`toolchain.data.splits.Protocol` whose ``root`` is set (or a
  :class:`toolchain.train.validate.ValSet`), or ``None`` (no validation: the last epoch is "best").

Each step: ``loss = hooks.ce_weight * CE(head(features), labels; label_smoothing)
+ hooks.extra_loss(model, images, labels, features, logits)``, with the learning rate from
:func:`lr_at` (linear warm-up, then cosine). Each epoch: validation EER (rank 0, broadcast),
best-model selection (lowest EER; ties keep the earlier epoch), and a checkpoint
(``checkpoint.safetensors`` + ``checkpoint.json``, with ``best.safetensors`` when the best changed) after the
first and last epochs and whenever writing it costs at most ``cfg.checkpoint_overhead`` of the training time
since the last one (:func:`_checkpoint_due`). ``resume=True`` continues from the checkpoint in ``out_dir``
exactly (same RNG state, same data order).

Hooks (subclass :class:`Hooks`, override what you need; every method gets the unwrapped
``FeatureModel``, never the DDP wrapper):

* ``ce_weight`` (float, default 1): scales the cross-entropy; 0 skips it (pure distillation).
* ``setup(model, device)``: once, after the model is on its device (move a teacher there).
* ``extra_parameters()``: more parameters to optimize with the model's (e.g. a projection for
  feature distillation); under DDP their gradients are averaged over processes.
* ``before_epoch(model, epoch)``: epoch is 0-based (iterative pruning schedules).
* ``extra_loss(model, images, labels, features, logits)``: a tensor (or a dict of named
  tensors, summed and logged separately) added to the loss, or ``None``. ``logits`` are the
  head's training logits (with margin for a margin head).
* ``after_step(model)``: after each optimizer step (re-apply pruning masks here).
* ``after_epoch(model, epoch, metrics)``: after validation; ``metrics`` is the history row.
* ``state_dict()`` / ``load_state_dict(tensors)``: tensors saved in the checkpoint (masks...).

Batch size is per process; with ``torchrun`` each process sees ``1/world_size`` of the data.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from torch import nn

from toolchain.data.images import ImageDataset
from toolchain.data.splits import Protocol
from toolchain.errors import CheckpointError, DataError, ToolchainError
from toolchain.fsutil import atomic_write_bytes, ensure_writable_dir
from toolchain.models.arch import FeatureModel, probe_feature_dim
from toolchain.progress import ProgressFn  # noqa: F401  (the one progress type, re-exported for callers)
from toolchain.train import checkpoint as ckpt
from toolchain.train import distributed as D
from toolchain.train import repro
from toolchain.train.config import OPTIMIZERS, TrainConfig  # noqa: F401  (their light home: the CLI shows defaults)
from toolchain.train.heads import HEADS, MARGIN_HEADS
from toolchain.train.validate import ValSet, validation_eer

log = logging.getLogger(__name__)

#: progress(stage, done, total, info): stage "train" (info: epoch, loss, accuracy, lr) or "val" (toolchain.progress)
BEST_FILE = "best.safetensors"




class Hooks:
    """Extension points of :func:`fit` (see the module docstring). The base class does nothing."""

    ce_weight: float = 1.0

    def setup(self, model: FeatureModel, device: torch.device) -> None: ...

    def extra_parameters(self) -> Iterable[nn.Parameter]:
        return ()

    def before_epoch(self, model: FeatureModel, epoch: int) -> None: ...

    def extra_loss(self, model: FeatureModel, images: torch.Tensor, labels: torch.Tensor, features: torch.Tensor,
                   logits: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor] | None:
        return None

    def after_step(self, model: FeatureModel) -> None: ...

    def after_epoch(self, model: FeatureModel, epoch: int, metrics: dict[str, Any]) -> None: ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_fraction: float = 0.0) -> float:
    """Learning rate at a 0-based step: linear warm-up to ``base_lr``, then cosine down to ``base_lr * min_fraction``.

    >>> [round(lr_at(s, 10, 2, 1.0), 3) for s in (0, 1, 2, 6, 9)]
    [0.5, 1.0, 1.0, 0.5, 0.038]
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * (min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * t)))


class _Net(nn.Module):
    """model + head in one forward, so DDP sees (and synchronises) both."""

    def __init__(self, model: FeatureModel, cfg: TrainConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.model(x)
        head = HEADS.get(self.cfg.head)
        logits = head(feats, y, self.model.head, self.cfg.margin, self.cfg.scale)
        plain = head(feats, None, self.model.head, self.cfg.margin, self.cfg.scale)  # margin-free, for accuracy
        return feats, logits, plain


@dataclass
class FitResult:
    model: FeatureModel
    history: list[dict[str, Any]]
    best_epoch: int  # 1-based
    best_val_eer: float | None
    config: TrainConfig
    world_size: int = 1
    device: str = "cpu"
    amp: bool = False
    num_classes: int = 0
    train_images: int = 0
    seconds: float = 0.0
    reproducibility: dict[str, Any] = field(default_factory=dict)  # train/repro.py: seed, threads, torch
    extra: dict[str, Any] = field(default_factory=dict)

    def provenance(self) -> dict[str, Any]:
        """The ``training`` entry of model.json."""
        return {"config": self.config.to_json(), "history": self.history, "best_epoch": self.best_epoch,
                "best_val_eer": self.best_val_eer, "world_size": self.world_size, "device": self.device,
                "amp": self.amp, "num_classes": self.num_classes, "train_images": self.train_images,
                "seconds": round(self.seconds, 3), "reproducibility": self.reproducibility, **self.extra}


def _ensure_head(model: FeatureModel, num_classes: int, cfg: TrainConfig, channels: int = 3) -> None:
    if num_classes < 2:
        raise DataError(f"subject classification needs at least 2 training classes, got {num_classes}")
    if model.head is None or model.head.out_features != num_classes:
        was = model.training
        dim = probe_feature_dim(model, (channels, 32, 32)) if model.head is None else model.head.in_features
        model.train(was)
        model.head = nn.Linear(dim, num_classes)
        log.info("attached a new %d-class head to the %d-d features", num_classes, dim)
    if cfg.head in MARGIN_HEADS:
        nn.init.zeros_(model.head.bias)
        model.head.bias.requires_grad_(False)


def _param_groups(model: nn.Module, extra: list[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    decay += [p for p in extra if p.requires_grad]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _check_resumable(saved: dict[str, Any], cfg: TrainConfig) -> None:
    now = cfg.to_json()
    diff = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in now.items()
            if k not in TrainConfig.RESUMABLE_CHANGES and saved.get(k) != v]
    if diff:
        raise CheckpointError("--resume with different training settings than the checkpoint: " + "; ".join(diff)
                              + ". Use the original settings, or start a new run without --resume")


def _checkpoint_due(epoch: int, start_epoch: int, cfg: TrainConfig, checkpoint_s: float,
                    since_checkpoint_s: float) -> bool:
    """Write a checkpoint after this (0-based) epoch? The first and last epochs of a run always; others once
    writing the last one took at most ``cfg.checkpoint_overhead`` of the training time since it (config.py says
    why). A killed run resumes from the last one written, exactly, so a skipped one only costs the epochs since.

    >>> cfg = TrainConfig(epochs=10)
    >>> [_checkpoint_due(e, 0, cfg, 2.0, s) for e, s in ((0, 3.0), (1, 3.0), (1, 21.0), (9, 3.0))]
    [True, False, True, True]
    """
    return epoch == start_epoch or epoch + 1 == cfg.epochs or checkpoint_s <= cfg.checkpoint_overhead * since_checkpoint_s


def fit(model: FeatureModel, train_ds: ImageDataset, val: Protocol | ValSet | None, cfg: TrainConfig,
        out_dir: str | Path, hooks: Hooks | None = None, resume: bool = False,
        progress: ProgressFn | None = None) -> FitResult:
    """Train ``model`` on ``train_ds``; see the module docstring. Returns the best epoch's model.

    Runs under :func:`toolchain.train.repro.reproducible` (fixed threads, deterministic kernels), restored after.
    """
    with repro.reproducible(cfg.seed * 1000 + D.info().rank, cfg.threads) as repro_info:
        return _fit(model, train_ds, val, cfg, out_dir, hooks, resume, progress, repro_info)


def _fit(model: FeatureModel, train_ds: ImageDataset, val: Protocol | ValSet | None, cfg: TrainConfig,
         out_dir: str | Path, hooks: Hooks | None, resume: bool, progress: ProgressFn | None,
         repro_info: dict[str, Any]) -> FitResult:
    from torch.utils.data import DataLoader, DistributedSampler

    t0 = time.perf_counter()
    hooks = hooks or Hooks()
    out_dir = Path(out_dir)
    dinfo = D.info()
    device = D.resolve_device(cfg.device, dinfo.local_rank)
    dinfo = D.init(device)
    if dinfo.is_main:
        ensure_writable_dir(out_dir)
    use_amp = cfg.amp == "on" or (cfg.amp == "auto" and device.type == "cuda")
    if use_amp and device.type != "cuda":
        raise ToolchainError("--amp on needs CUDA (mixed precision on CPU is not faster here); use --amp auto or off")
    torch.manual_seed(cfg.seed * 1000 + dinfo.rank)  # augmentation randomness; data order comes from the sampler

    _ensure_head(model, train_ds.num_classes, cfg, len(getattr(train_ds, "mean", (0, 0, 0))))
    model.to(device)
    hooks.setup(model, device)
    extra = list(hooks.extra_parameters())
    net: nn.Module = _Net(model, cfg)
    if dinfo.enabled:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    opt = OPTIMIZERS.get(cfg.optimizer)(_param_groups(model, extra, cfg.weight_decay), cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    sampler = DistributedSampler(train_ds, num_replicas=dinfo.world_size, rank=dinfo.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        drop_last=True, pin_memory=device.type == "cuda", worker_init_fn=repro.seed_worker)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise DataError(f"{len(train_ds)} training images make no full batch of {cfg.batch_size} per process "
                        f"({dinfo.world_size} process(es)); lower --batch-size")
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
    if isinstance(val, Protocol):
        val = ValSet.from_protocol(val, train_ds.size, train_ds.mean, train_ds.std, cfg.max_bad_fraction,
                                   **train_ds.options())

    start_epoch, history, best_epoch, best_eer = 0, [], 0, None
    best_state: dict[str, torch.Tensor] | None = None
    best_unsaved = False  # best_state is newer than best.safetensors
    checkpoint_s, since_checkpoint_s = 0.0, 0.0  # the last checkpoint's write time; training seconds since it
    if resume:
        tensors, state = ckpt.load_checkpoint(out_dir)
        _check_resumable(state["config"], cfg)
        try:
            model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"the checkpoint in {out_dir} is for another model: {str(e)[:300]}") from None
        for k, p in enumerate(extra):
            p.data.copy_(tensors[f"extra.{k}"])
        ckpt.restore_optimizer(opt, tensors, state["optimizer"])
        hooks.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("hooks.")})
        torch.set_rng_state(tensors[f"rng.torch.{dinfo.rank}"] if f"rng.torch.{dinfo.rank}" in tensors
                            else tensors["rng.torch.0"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
        best_epoch, best_eer = int(state["best_epoch"]), state["best_val_eer"]
        if (out_dir / BEST_FILE).is_file():
            best_state = load_file(str(out_dir / BEST_FILE))
        log.info("resumed from epoch %d of %d", start_epoch, cfg.epochs)

    for epoch in range(start_epoch, cfg.epochs):
        te = time.perf_counter()
        hooks.before_epoch(model, epoch)
        sampler.set_epoch(epoch)
        net.train()
        sums = {"loss": 0.0, "correct": 0.0, "seen": 0.0}
        named: dict[str, float] = {}
        for step, (x, y) in enumerate(loader):
            lr = lr_at(epoch * steps_per_epoch + step, total_steps, warmup_steps, cfg.lr, cfg.min_lr_fraction)
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                feats, logits, plain = net(x, y)
                loss = torch.zeros((), device=device)
                if hooks.ce_weight:
                    loss = loss + hooks.ce_weight * F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                more = hooks.extra_loss(model, x, y, feats, logits)
                if isinstance(more, dict):
                    for name, v in more.items():
                        named[name] = named.get(name, 0.0) + float(v.detach()) * len(y)
                        loss = loss + v
                elif more is not None:
                    loss = loss + more
            if not torch.isfinite(loss):
                raise ToolchainError(f"the loss became {float(loss)} at epoch {epoch + 1} step {step + 1}: "
                                     "lower --lr (or use --amp off)")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if dinfo.enabled and extra:
                for p in extra:  # outside DDP's module: average by hand
                    if p.grad is not None:
                        torch.distributed.all_reduce(p.grad)
                        p.grad /= dinfo.world_size
            if cfg.grad_clip_norm:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.grad_clip_norm)
            scaler.step(opt)
            scaler.update()
            hooks.after_step(model)
            sums["loss"] += float(loss.detach()) * len(y)
            sums["correct"] += float((plain.argmax(1) == y).sum())
            sums["seen"] += len(y)
            if progress:
                progress("train", step + 1, steps_per_epoch, {"epoch": epoch + 1, "epochs": cfg.epochs, "lr": lr,
                                                               "loss": sums["loss"] / sums["seen"],
                                                               "accuracy": sums["correct"] / sums["seen"]})
        keys = sorted(named)
        reduced = D.all_reduce_sum([sums["loss"], sums["correct"], sums["seen"]] + [named[k] for k in keys], device)
        seen = reduced[2]
        train_seconds = time.perf_counter() - te
        eer = None
        if val is not None:
            if progress:
                progress("val", 0, 1, {"epoch": epoch + 1})
            eer = validation_eer(model, val, device, cfg.eval_batch_size, use_amp) if dinfo.is_main else 0.0
            eer = D.broadcast_float(eer, device)
        row = {"epoch": epoch + 1, "train_loss": reduced[0] / seen, "train_accuracy": reduced[1] / seen,
               "val_eer": eer, "lr": lr, "train_images": int(seen), "seconds": round(time.perf_counter() - te, 3),
               "images_per_second": round(seen / train_seconds, 2),
               **{f"loss_{k}": v / seen for k, v in zip(keys, reduced[3:])}}
        history.append(row)
        if eer is not None and (best_eer is None or eer < best_eer):
            best_epoch, best_eer = epoch + 1, eer
            best_state, best_unsaved = _state(model), True
        hooks.after_epoch(model, epoch, row)
        since_checkpoint_s += time.perf_counter() - te
        if dinfo.is_main and _checkpoint_due(epoch, start_epoch, cfg, checkpoint_s, since_checkpoint_s):
            tw = time.perf_counter()
            if best_unsaved and best_state is not None:  # written with the checkpoint that names its epoch
                atomic_write_bytes(out_dir / BEST_FILE, save(best_state))
                best_unsaved = False
            tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
            tensors.update({f"extra.{k}": p.detach() for k, p in enumerate(extra)})
            tensors.update({f"hooks.{k}": v for k, v in hooks.state_dict().items()})
            opt_t, opt_rest = ckpt.optimizer_tensors(opt)
            tensors.update(opt_t)
            tensors["rng.torch.0"] = torch.get_rng_state()
            ckpt.save_checkpoint(out_dir, tensors, {"epoch": epoch + 1, "epochs": cfg.epochs, "history": history,
                                                    "best_epoch": best_epoch, "best_val_eer": best_eer,
                                                    "config": cfg.to_json(), "optimizer": opt_rest,
                                                    "world_size": dinfo.world_size})
            checkpoint_s, since_checkpoint_s = time.perf_counter() - tw, 0.0
        D.barrier()

    if val is None and history:
        best_epoch, best_state = len(history), _state(model)  # no validation: the last epoch
    if best_state is not None:
        model.load_state_dict(best_state)
    model.to("cpu").eval()
    return FitResult(model, history, best_epoch, best_eer, cfg, dinfo.world_size, str(device), use_amp,
                     train_ds.num_classes, len(train_ds), time.perf_counter() - t0, reproducibility=repro_info)
