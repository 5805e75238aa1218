"""Reproducible training: same seed + same machine + same thread count -> bit-identical weights.

What makes two runs of one command differ, and what is done about each:

* **Random state.** Weights init, data order and augmentation are seeded from ``TrainConfig.seed``
  (``fit``: ``torch.manual_seed``, ``DistributedSampler(seed=...)``); DataLoader workers derive their seeds
  from that state, and :func:`seed_worker` seeds NumPy's and Python's generators from it too, so an
  augmentation that uses either is reproducible.
* **Thread count.** CPU kernels (oneDNN/OpenMP reductions in convolution backward, ``sum``) split work by
  thread, and a float sum in another order is another number. The count is fixed for the run
  (``TrainConfig.threads``; 0 keeps PyTorch's default, the machine's cores) and recorded, so the same
  command on a machine with another core count says why its numbers differ.
* **Non-deterministic kernels.** ``torch.use_deterministic_algorithms(True, warn_only=True)``: PyTorch picks
  the deterministic implementation where it has one and warns where it has none (some CUDA ops), instead
  of silently differing.
* **Hash order.** Nothing that reaches the weights iterates a ``set`` of strings (class indices come from
  sorted names), so ``PYTHONHASHSEED`` does not matter; ``tests/train/test_repro.py`` trains twice in
  two processes with different hash seeds and compares sha256.

Not covered: another machine (CPU model, oneDNN ISA), another PyTorch build, CUDA kernels that have no
deterministic version (warned about), and runs of more than one process (not tested here).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def reproducible(seed: int, threads: int = 0) -> Iterator[dict[str, Any]]:
    """Fix the settings :mod:`this module <toolchain.train.repro>` names for one training run; yields what to record
    in provenance. The process-wide ones (thread count, deterministic algorithms, cuDNN flags) are put back
    afterwards, so a later stage of the same process (export, host timing) runs as it would have."""
    import numpy as np
    import torch

    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic)
    try:
        if threads:
            torch.set_num_threads(int(threads))
        torch.use_deterministic_algorithms(True, warn_only=True)
        # cuDNN: deterministic algorithms only, no benchmark-mode autotuning (picks by timing, so by luck)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        random.seed(seed)
        np.random.seed(seed % 2**32)
        yield {"seed": seed, "threads": torch.get_num_threads(), "deterministic_algorithms": True,
               "torch": torch.__version__, "cpu_count": os.cpu_count()}
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[3], saved[4]


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: NumPy and ``random`` seeded from the worker's torch seed (itself derived
    from the seeded main process), as PyTorch's "Reproducibility" notes recommend."""
    import numpy as np
    import torch

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)
