"""The training loop's settings, in a module that imports nothing heavy: ``deploy train`` / ``prune`` /
``distill`` show these defaults in ``--help``, the pipeline's ``[teacher]`` section and the benchmarks build
the same dataclass, so every default has one home.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Callable

from toolchain.errors import ConfigError
from toolchain.policy import MAX_BAD_FRACTION
from toolchain.registry import Registry

#: Fine-tunes shorter than this many epochs get no learning-rate warm-up (a 1-epoch warm-up would be most
#: of the run); longer ones keep :attr:`TrainConfig.warmup_epochs`.
SHORT_RUN_EPOCHS = 3
#: Peak learning rate of ``deploy prune``'s fine-tune (a pruned network starts near a minimum).
FINETUNE_LR = 0.01


@dataclass
class TrainConfig:
    """Training settings. Units: ``lr`` per step; epochs count passes over the training split."""

    epochs: int = 10
    batch_size: int = 32  # per process
    lr: float = 0.05
    optimizer: str = "sgd"  # a name in OPTIMIZERS: sgd (momentum 0.9, Nesterov) | adamw
    momentum: float = 0.9
    weight_decay: float = 5e-4  # not applied to biases and normalisation weights
    warmup_epochs: float = 1.0
    min_lr_fraction: float = 0.0  # the cosine ends at lr * this
    label_smoothing: float = 0.1
    head: str = "softmax"  # a name in toolchain.train.heads.HEADS: softmax | arcface | cosface
    margin: float = 0.5  # radians for arcface, cosine units for cosface
    scale: float = 30.0  # logit scale of margin heads
    augment: str = "ocular"  # a name in toolchain.data.augment.AUGMENTATIONS
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # auto (on with CUDA) | on | off
    num_workers: int = 0
    threads: int = 0  # CPU threads of the run; 0: PyTorch's default (the machine's cores). Recorded; see train/repro.py
    max_bad_fraction: float = MAX_BAD_FRACTION
    grad_clip_norm: float | None = None
    eval_batch_size: int = 64
    #: An epoch's checkpoint is skipped while writing the last one took more than this fraction of the training
    #: time since it (the first and last epochs of a run always write one). Why: a ResNet50 checkpoint with its
    #: AdamW state is ~280 MB serialised, fsynced and hashed (~2 s), as long as an epoch on a small data set, so
    #: a checkpoint per epoch doubled such runs; where epochs are long (real data sets) every epoch still writes
    #: one. A resume continues exactly from whichever epoch was written last.
    checkpoint_overhead: float = 0.1

    #: settings that may change between an interrupted run and its --resume
    RESUMABLE_CHANGES = ("epochs", "device", "num_workers", "eval_batch_size", "amp", "threads", "checkpoint_overhead")

    def __post_init__(self) -> None:
        from toolchain import bounds as B

        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch size must be at least 1 (got {self.epochs}, {self.batch_size})")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        # one home per range (toolchain/bounds.py): `deploy train`, the pipeline and fine-tunes all pass here
        B.check_int(self.epochs, "epochs", *B.EPOCHS)
        B.check_int(self.batch_size, "batch size", *B.BATCH_SIZE)
        B.check_float(self.lr, "learning rate", *B.LEARNING_RATE, low_open=True)
        B.check_float(self.weight_decay, "weight decay", *B.WEIGHT_DECAY)
        B.check_int(self.seed, "seed", *B.SEED)
        for name in ("momentum", "warmup_epochs", "min_lr_fraction", "label_smoothing", "margin", "scale",
                     "max_bad_fraction"):
            B.check_float(getattr(self, name), name.replace("_", " "), -1e6, 1e6)
        from toolchain.train.heads import HEADS  # torch: imported when a config is made, not at import

        HEADS.get(self.head)
        OPTIMIZERS.get(self.optimizer)
        if not self.checkpoint_overhead > 0:
            raise ConfigError(f"checkpoint overhead must be a positive fraction, got {self.checkpoint_overhead}")
        if self.threads < 0 or self.num_workers < 0:
            raise ConfigError(f"threads and workers must be 0 or more (got {self.threads}, {self.num_workers})")
        if self.amp not in ("auto", "on", "off"):
            raise ConfigError(f"amp must be auto, on or off, got {self.amp!r}")

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _sgd(groups: list[dict[str, Any]], cfg: TrainConfig) -> Any:
    import torch

    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)


def _adamw(groups: list[dict[str, Any]], cfg: TrainConfig) -> Any:
    import torch

    return torch.optim.AdamW(groups, lr=cfg.lr)


#: optimizer name -> factory(parameter groups, config) -> torch.optim.Optimizer
OPTIMIZERS: Registry[Callable[[list[dict[str, Any]], TrainConfig], Any]] = Registry("optimizer")
OPTIMIZERS.add("sgd", _sgd)
OPTIMIZERS.add("adamw", _adamw)


def finetune_config(epochs: int, **settings: Any) -> TrainConfig | None:
    """The config of a fine-tune (pruning, distillation) of ``epochs``: None for 0 epochs; no warm-up under 3.

    The one home of the short-run warm-up policy (the CLI and the pipeline both use it).

    >>> finetune_config(0) is None, finetune_config(2).warmup_epochs, finetune_config(5, lr=0.01).warmup_epochs
    (True, 0.0, 1.0)
    """
    if epochs <= 0:
        return None
    cfg = TrainConfig(epochs=epochs, **settings)
    return replace(cfg, warmup_epochs=0.0) if epochs < SHORT_RUN_EPOCHS and "warmup_epochs" not in settings else cfg
