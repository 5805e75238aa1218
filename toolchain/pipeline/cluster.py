"""The ``[cluster]`` section of pipeline.toml and the submitit executor that sends each stage to Slurm.

submitit (an existing, maintained engine; the ``cluster`` extra) writes the sbatch scripts, pickles the stage,
watches the job and requeues it: on preemption or when the time limit nears, Slurm signals the job, submitit calls
:meth:`StageJob.checkpoint <toolchain.pipeline.submitit_job.StageJob>` and requeues it (same job id); the training
stage keeps its run folder in the stage's scratch, so the requeued job resumes from the last epoch's checkpoint.
A job that ends with no result at all (node failure, cancelled) is submitted again up to ``resubmits`` times.
The driver trusts only the committed stage folder, never the job's exit state.

Example (every key optional)::

    [cluster]
    partition = "gpu"
    gpus = 1              # per stage job
    cpus = 8
    mem_gb = 32
    time_min = 240
    sbatch = { account = "my-lab", qos = "normal" }   # any extra sbatch option
    [cluster.stages.report]                            # by stage kind or name: overrides for those stages
    gpus = 0
    time_min = 15
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.errors import PipelineError
from toolchain.pipeline.engine import KINDS, Stage, Task
from toolchain.progress import MessageFn

_MIN0 = {"minimum": 0}
_MIN1 = {"minimum": 1}
_POS = {"exclusive_minimum": 0}


@dataclass
class StageResources:
    """What one stage's job asks Slurm for; in ``[cluster.stages.X]`` an unset key keeps the ``[cluster]`` value."""

    partition: str | None = None
    gpus: int | None = field(default=None, metadata=_MIN0)
    cpus: int | None = field(default=None, metadata=_MIN1)
    mem_gb: float | None = field(default=None, metadata=_POS)
    time_min: int | None = field(default=None, metadata=_MIN1)
    sbatch: dict[str, str | int | bool] | None = None


@dataclass
class ClusterSection:
    """Defaults for every stage's job, per-stage overrides, and how the driver watches and retries jobs."""

    partition: str | None = None
    gpus: int = field(default=0, metadata=_MIN0)
    cpus: int = field(default=1, metadata=_MIN1)
    mem_gb: float | None = field(default=None, metadata=_POS)
    time_min: int = field(default=60, metadata=_MIN1)
    #: Extra ``#SBATCH`` options, name -> value (``account = "x"`` -> ``--account=x``).
    sbatch: dict[str, str | int | bool] = field(default_factory=dict)
    #: How many times Slurm may requeue a job that reached its time limit (preemptions are always requeued).
    max_requeues: int = field(default=3, metadata=_MIN0)
    #: How many times the driver submits a job again that ended without any result (node failure, cancelled).
    resubmits: int = field(default=1, metadata=_MIN0)
    #: How often the driver looks at its jobs (seconds).
    poll_s: float = field(default=5.0, metadata=_POS)
    stages: dict[str, StageResources] = field(default_factory=dict)

    def resources_for(self, name: str, kind: str) -> StageResources:
        """``[cluster]`` values, then ``[cluster.stages.<kind>]``, then ``[cluster.stages.<name>]``.

        >>> c = ClusterSection(gpus=1, stages={"report": StageResources(gpus=0), "train": StageResources(cpus=8)})
        >>> c.resources_for("report", "report").gpus, c.resources_for("teacher", "train").cpus
        (0, 8)
        """
        r = StageResources(self.partition, self.gpus, self.cpus, self.mem_gb, self.time_min, dict(self.sbatch))
        for key in (kind, name):
            o = self.stages.get(key)
            if o is None:
                continue
            for f in dataclasses.fields(o):
                v = getattr(o, f.name)
                if v is not None:
                    setattr(r, f.name, {**(r.sbatch or {}), **v} if f.name == "sbatch" else v)
        return r


def check_stage_names(cluster: ClusterSection | None, stages: list[Stage]) -> None:
    """Refuse ``[cluster.stages.X]`` where X is neither a stage kind nor a stage of this pipeline (typos)."""
    if cluster is None:
        return
    known = sorted({*KINDS, *(s.name for s in stages)})
    bad = sorted(set(cluster.stages) - set(known))
    if bad:
        raise PipelineError(f"[cluster.stages] names no stage {', '.join(map(repr, bad))}; stage kinds and names: "
                            f"{', '.join(known)}")


def submitit_parameters(r: StageResources, cluster: ClusterSection, job_name: str) -> dict[str, Any]:
    """The AutoExecutor parameters for one stage (``slurm_*`` ones are ignored by the local executor)."""
    p: dict[str, Any] = {"name": job_name, "timeout_min": r.time_min, "cpus_per_task": r.cpus,
                         "gpus_per_node": r.gpus, "nodes": 1, "tasks_per_node": 1}
    if r.mem_gb is not None:
        p["mem_gb"] = r.mem_gb
    if r.partition is not None:
        p["slurm_partition"] = r.partition
    if r.sbatch:
        p["slurm_additional_parameters"] = dict(r.sbatch)
    return p


def _exception_line(failure: str) -> str:
    """The ``Type: message`` line of the traceback inside submitit's FailedJobError text (between its rulers)."""
    trace = failure.split("----------------------")
    lines = [ln.strip() for ln in (trace[1] if len(trace) > 2 else failure).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else failure


class SubmititExecutor:
    """One submitit job per stage: Slurm (``slurm``) or real local subprocesses (``local-submitit``)."""

    in_process = False

    def __init__(self, work: Path, cluster: ClusterSection | None, *, local: bool) -> None:
        self.work, self.local = work, local
        self.cluster = cluster if cluster is not None else ClusterSection()
        self.name = "local-submitit" if local else "slurm"
        self._jobs: set[Any] = set()
        self._lock = threading.Lock()

    def check(self, stages: list[Stage]) -> None:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise PipelineError(f"--executor {self.name} needs submitit: pip install 'toolchain[cluster]'") from None

    def default_jobs(self, n_stages: int) -> int:
        return max(1, n_stages)  # the cluster's scheduler, not this driver, decides what runs when

    def run_task(self, task: Task, progress: MessageFn) -> None:
        import submitit
        from submitit.core.utils import FailedJobError, UncompletedJobError

        from toolchain.pipeline.submitit_job import StageJob

        res = self.cluster.resources_for(task.name, task.kind)
        ex = submitit.AutoExecutor(folder=self.work / ".submitit" / task.kind / task.folder.name / "%j",
                                   cluster="local" if self.local else "slurm",
                                   slurm_max_num_timeout=self.cluster.max_requeues)
        ex.update_parameters(**submitit_parameters(res, self.cluster, f"deploy-{task.name}"))
        for attempt in range(self.cluster.resubmits + 1):
            job = ex.submit(StageJob(), task)
            with self._lock:
                self._jobs.add(job)
            progress(f"job {job.job_id} submitted; log {job.paths.stderr}")
            try:
                state = None
                while not job.done():
                    if job.state != state:
                        state = job.state
                        progress(f"job {job.job_id}: {state}")
                    time.sleep(self.cluster.poll_s)
                job.result()
                return
            except FailedJobError as e:  # the stage raised: its traceback is in the log
                raise PipelineError(f"job {job.job_id} failed: {_exception_line(str(e))} "
                                    f"(log: {job.paths.stderr})") from None
            except UncompletedJobError:
                if attempt == self.cluster.resubmits:
                    raise PipelineError(f"job {job.job_id} ended without a result ({job.state}) after "
                                        f"{attempt + 1} submission(s) (log: {job.paths.stderr})") from None
                progress(f"job {job.job_id} ended without a result ({job.state}); submitting it again")
            finally:
                with self._lock:
                    self._jobs.discard(job)

    def cancel_all(self) -> None:
        with self._lock:
            for job in list(self._jobs):
                job.cancel(check=False)

    def close(self) -> None:
        return None
