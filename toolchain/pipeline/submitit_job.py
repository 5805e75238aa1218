"""What a submitit job runs: one pipeline stage, requeued as is when Slurm preempts it or its time runs out.

Its own module because it subclasses submitit's ``Checkpointable`` (submitit is the optional ``cluster`` extra):
the config and the other executors import nothing from submitit.
"""

from __future__ import annotations

import sys

from submitit.helpers import Checkpointable

from toolchain.pipeline.engine import Task, execute


class StageJob(Checkpointable):
    """Run ``task`` with :func:`~toolchain.pipeline.engine.execute`; progress goes to the job's stderr log.

    ``checkpoint`` (inherited) resubmits the same task: nothing needs saving here, because a stage keeps what it
    wants to survive in ``task.scratch`` (training checkpoints) and a half-written stage folder is never trusted.
    """

    def __call__(self, task: Task) -> None:
        execute(task, lambda m: print(f"[{task.name}] {m}", file=sys.stderr, flush=True))
