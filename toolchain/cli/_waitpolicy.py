"""On a machine that is already busy, let PyTorch's OpenMP threads sleep while they wait instead of spinning.

PyTorch's CPU kernels run on OpenMP (libgomp in PyPI's wheels). Between two parallel regions an idle thread
spins for a while before it sleeps. On a machine whose cores are taken by other processes, that spinning burns
the CPU time the other thread of the same region needs: its partner is descheduled, the region waits for it,
and the spinner holds a core meanwhile. Measured on the 2-core machine at a 1-minute load of 5-7 (other jobs),
the demo's ResNet50 teacher (`threads = 2`): epoch 1 took 189 s with libgomp's default and 55 s with
``OMP_WAIT_POLICY=PASSIVE`` — the same loss, since the wait policy changes no arithmetic. On an idle machine
spinning is what makes back-to-back small kernels fast, so nothing is changed there.

libgomp reads the variable once, when it is loaded (at ``import torch``), so this runs before any command
imports torch; a user's own ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is left as it is. Pipeline worker
processes inherit the choice.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: the variables that set how OpenMP threads wait (libgomp's manual, "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def busy(load_1min: float, cpus: int) -> bool:
    """Is the machine already busy: a 1-minute load average of at least one process per core?

    >>> busy(0.3, 2), busy(2.0, 2), busy(6.5, 2), busy(3.0, 16)
    (False, True, True, False)
    """
    return load_1min >= max(cpus, 1)


def sleep_when_busy(environ: MutableMapping[str, str] | None = None, load_1min: float | None = None,
                    cpus: int | None = None) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` (default ``os.environ``) when the machine is busy and the
    user set neither wait variable; returns whether it did. Where the load average is unknown, nothing changes."""
    env = os.environ if environ is None else environ
    if any(v in env for v in WAIT_VARIABLES):
        return False
    if load_1min is None:
        try:
            load_1min = os.getloadavg()[0]
        except (OSError, AttributeError):  # no load average (Windows)
            return False
    if not busy(load_1min, cpus if cpus is not None else (os.cpu_count() or 1)):
        return False
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
