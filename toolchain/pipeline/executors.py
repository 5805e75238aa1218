"""Where a pipeline stage runs: this process, a worker subprocess, or a Slurm job through submitit.

Every executor runs :func:`toolchain.pipeline.engine.execute` on a :class:`~toolchain.pipeline.engine.Task`, so a
stage writes its atomic folder the same way everywhere; the scheduler (:mod:`toolchain.pipeline.schedule`) trusts
only that committed folder. ``run_task`` blocks until the stage ends (the scheduler calls it from a thread per
running stage) and raises :class:`~toolchain.errors.PipelineError` when it failed.

=================  ==========================================================================================
``inline``         this process, one stage at a time (the default for ``--jobs 1``; stage closures work)
``local``          ``python -m toolchain.pipeline.worker`` processes, one stage at a time each, reused (the default
                   for more jobs): a crash or a converter's segfault fails that stage only; logs in ``WORK/.logs/``
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
from toolchain.progress import MessageFn
from toolchain.registry import Registry

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

    def close(self) -> None:
        return None


class _Worker:
    """One ``python -m toolchain.pipeline.worker`` process; it runs stages one after another until stdin closes."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "toolchain.pipeline.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def send(self, payload: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(len(payload).to_bytes(8, "big") + payload)
        self.proc.stdin.flush()

    def messages(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                yield json.loads(line)
            except ValueError:
                continue


class ProcessExecutor(InlineExecutor):
    """Stages in worker processes, at most one stage per worker at a time; workers are reused across stages.

    A worker pays its imports (torch, the converters) once, not per stage. Progress comes back over its stdout as
    JSON lines; whatever a stage prints goes to that stage's log in ``WORK/.logs/``. A worker that dies (a
    converter's segfault, a kill) fails only the stage it was running and is not reused. The task travels pickled
    over the worker's stdin: the driver wrote it a moment ago for a child it started (never a file someone else
    could have left). Stage functions are pickled by reference, so they must be module-level functions of an
    importable module (all of :mod:`toolchain.pipeline.stages` are).
    """

    name = "local"
    in_process = False

    def __init__(self, work: Path, cluster: Any = None) -> None:
        super().__init__(work, cluster)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()

    def default_jobs(self, n_stages: int) -> int:
        return 2

    def run_task(self, task: Task, progress: MessageFn) -> None:
        log = log_path(self.work, task)
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            payload = pickle.dumps((str(log), task))
        except (pickle.PicklingError, AttributeError, TypeError) as e:
            raise PipelineError(f"stage {task.name!r} cannot go to a worker process ({e}); its function must be a "
                                "module-level function (or use --executor inline)") from None
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _Worker()
            with self._lock:
                self._all.add(worker)
        error, finished = None, False
        try:
            worker.send(payload)
            for msg in worker.messages():
                if "progress" in msg:
                    progress(str(msg["progress"]))
                elif "error" in msg:
                    error, finished = str(msg["error"]), True
                    break
                elif msg.get("done"):
                    finished = True
                    break
        except (BrokenPipeError, OSError):
            finished = False
        if finished:
            with self._lock:
                self._idle.append(worker)
        else:
            rc = worker.proc.wait()
            with self._lock:
                self._all.discard(worker)
            error = f"worker exited with status {rc} while running the stage"
        if error is not None:
            raise PipelineError(f"{error} (log: {log})")

    def cancel_all(self) -> None:
        with self._lock:
            for w in list(self._all):
                w.proc.terminate()

    def close(self) -> None:
        """Let the idle workers go (their stdin closes, they exit)."""
        with self._lock:
            workers, self._idle = list(self._idle), []
            self._all.difference_update(workers)
        for w in workers:
            if w.proc.stdin is not None:
                w.proc.stdin.close()
            try:
                w.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                w.proc.kill()


EXECUTORS.add("inline", InlineExecutor)
EXECUTORS.add("local", ProcessExecutor)


def _submitit(local: bool) -> Callable[[Path, Any], Any]:
    def factory(work: Path, cluster: Any = None) -> Any:
        from toolchain.pipeline.cluster import SubmititExecutor

        return SubmititExecutor(work, cluster, local=local)
    return factory


EXECUTORS.add("slurm", _submitit(local=False))
EXECUTORS.add("local-submitit", _submitit(local=True))
