"""Where a pipeline stage runs: this process, a worker subprocess, or a Slurm job through submitit.

Every executor runs :func:`toolchain.pipeline.engine.execute` on a :class:`~toolchain.pipeline.engine.Task`, so a
stage writes its atomic folder the same way everywhere; the scheduler (:mod:`toolchain.pipeline.schedule`) trusts
only that committed folder. ``run_task`` blocks until the stage ends (the scheduler calls it from a thread per
running stage) and raises :class:`~toolchain.errors.PipelineError` when it failed.

=================  ==========================================================================================
``inline``         this process, one stage at a time (the default for ``--jobs 1``; stage closures work)
``local``          one ``python -m toolchain.pipeline.worker`` subprocess per stage (the default for more jobs):
                   a crash or a converter's segfault fails that stage only; its stderr goes to ``WORK/.logs/``
``slurm``          one Slurm job per stage through submitit (``[cluster]`` gives the resources), requeued from
                   its checkpoint when preempted or timed out
``local-submitit`` the same submitit path on this machine (submitit's LocalExecutor: real subprocesses), for CI
=================  ==========================================================================================
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from toolchain.errors import PipelineError
from toolchain.pipeline.engine import Stage, Task, execute
from toolchain.registry import Registry

MessageFn = Callable[[str], None]

#: name -> factory(work folder, cluster section or None) -> executor.
EXECUTORS: Registry[Callable[..., Any]] = Registry("executor")


def make(name: str, work: Path, cluster: Any = None) -> Any:
    """The executor ``name`` for a run in ``work`` (``cluster``: the recipe's ``[cluster]`` section, if any)."""
    return EXECUTORS.get(name)(Path(work), cluster)


def log_path(work: Path, task: Task) -> Path:
    """Where a stage's worker writes its stderr (outside the stage folder, which is atomic)."""
    return work / ".logs" / f"{task.kind}-{task.folder.name}.log"


class InlineExecutor:
    """Stages run in this process, one at a time: the tool's behaviour before ``--jobs``."""

    name = "inline"
    in_process = True

    def __init__(self, work: Path, cluster: Any = None) -> None:
        self.work = work

    def check(self, stages: list[Stage]) -> None:
        return None

    def default_jobs(self, n_stages: int) -> int:
        return 1

    def run_task(self, task: Task, progress: MessageFn) -> None:
        execute(task, progress)

    def cancel_all(self) -> None:
        return None


class ProcessExecutor(InlineExecutor):
    """One worker subprocess per stage; progress lines come back over its stdout as JSON, one per line.

    The task travels pickled over the worker's stdin: the driver wrote it a moment ago for a child it started
    (never a file someone else could have left). Stage functions are pickled by reference, so they must be
    module-level functions of an importable module (all of :mod:`toolchain.pipeline.stages` are).
    """

    name = "local"
    in_process = False

    def __init__(self, work: Path, cluster: Any = None) -> None:
        super().__init__(work, cluster)
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def default_jobs(self, n_stages: int) -> int:
        return 2

    def run_task(self, task: Task, progress: MessageFn) -> None:
        try:
            payload = pickle.dumps(task)
        except (pickle.PicklingError, AttributeError, TypeError) as e:
            raise PipelineError(f"stage {task.name!r} cannot go to a worker process ({e}); its function must be a "
                                "module-level function (or use --executor inline)") from None
        log = log_path(self.work, task)
        log.parent.mkdir(parents=True, exist_ok=True)
        error = None
        with open(log, "wb") as err:
            p = subprocess.Popen([sys.executable, "-m", "toolchain.pipeline.worker"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=err)
            with self._lock:
                self._procs.add(p)
            try:
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write(payload)
                p.stdin.close()
                for line in p.stdout:
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        continue
                    if "progress" in msg:
                        progress(str(msg["progress"]))
                    elif "error" in msg:
                        error = str(msg["error"])
                rc = p.wait()
            finally:
                with self._lock:
                    self._procs.discard(p)
        if rc != 0:
            raise PipelineError(f"{error or f'worker exited with status {rc}'} (log: {log})")

    def cancel_all(self) -> None:
        with self._lock:
            for p in list(self._procs):
                p.terminate()


EXECUTORS.add("inline", InlineExecutor)
EXECUTORS.add("local", ProcessExecutor)


def _submitit(local: bool) -> Callable[[Path, Any], Any]:
    def factory(work: Path, cluster: Any = None) -> Any:
        from toolchain.pipeline.cluster import SubmititExecutor

        return SubmititExecutor(work, cluster, local=local)
    return factory


EXECUTORS.add("slurm", _submitit(local=False))
EXECUTORS.add("local-submitit", _submitit(local=True))
