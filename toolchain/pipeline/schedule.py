"""Run a stage graph: every stage whose inputs are done is *ready*; up to ``jobs`` ready stages run at once.

Where a stage runs is the executor's business (:mod:`toolchain.pipeline.executors`: this process, a worker
subprocess, a Slurm job through submitit); what counts as done is not: only a committed stage folder
(:func:`toolchain.pipeline.engine.execute` renames it into place as its last step) whose ``stage.json`` carries the
stage's key. A worker that exits 0 without one has failed.

Two runs on one work folder never do a stage twice: before running a stage the driver takes an exclusive
``flock`` on ``WORK/.locks/<kind>-<folder>.lock`` and holds it until the stage is committed (the kernel drops it
if the driver dies). A run that finds the lock taken waits, then uses the other run's output.

A failed stage stops only the stages that depend on it (status ``blocked``); the others run to the end, and then
:class:`~toolchain.errors.StageFailedError` names the failed stages and what each one blocked.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Any, Callable

from toolchain.errors import PipelineError, StageFailedError, ToolchainError
from toolchain.fsutil import check_output_dir, claim_output_dir, clean_stale_temps
from toolchain.pipeline.engine import KINDS, Done, Stage, StageReport, load_done, resolve, task_of

#: How often the driver looks again at a stage another run holds (seconds).
LOCK_POLL_S = 0.5


class StageLock:
    """An exclusive, non-blocking ``flock`` on one stage's lock file, held by the driver while the stage runs."""

    def __init__(self, work: Path, kind: str, folder_name: str) -> None:
        self.path = work / ".locks" / f"{kind}-{folder_name}.lock"
        self._fd: int | None = None

    @classmethod
    def of(cls, work: Path, stage: Stage) -> "StageLock":
        return cls(work, stage.kind, stage.folder(work).name)

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _claim(work: Path) -> None:
    """Check and mark the work folder (never a user's folder), one run at a time.

    Two runs starting together would otherwise see each other's half-written marker and refuse the folder; a
    ``flock`` on the folder itself (no extra file) orders them.
    """
    if not work.is_dir():
        check_output_dir(work, "pipeline", what="pipeline work folder")
        work.mkdir(parents=True, exist_ok=True)
    fd = os.open(work, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        claim_output_dir(work, "pipeline", what="pipeline work folder")
    finally:
        os.close(fd)  # closing drops the lock


def _clean_stale(work: Path) -> list[Path]:
    """Remove what killed stage attempts left, except the temp folders of stages another run holds.

    A temp folder names its writer's pid, but on a cluster that pid lives on another node: the stage lock, which
    the driver of that job holds (``flock`` reaches across NFS), is what says the attempt is still alive.
    """
    removed: list[Path] = []
    if not work.is_dir():
        return removed
    for kind_dir in sorted(p for p in work.iterdir() if p.is_dir() and not p.name.startswith(".")):
        names = {p.name[1:].rsplit(".", 2)[0] for p in kind_dir.iterdir()
                 if p.name.startswith(".") and p.name.endswith((".tmp", ".old"))}
        for name in sorted(names):
            lock = StageLock(work, kind_dir.name, name)
            if lock.try_acquire():
                try:
                    removed += clean_stale_temps(kind_dir, name)
                finally:
                    lock.release()
    return removed


def _error_text(e: BaseException) -> str:
    return str(e) if isinstance(e, ToolchainError) else f"{type(e).__name__}: {e}"


def _plan(ordered: list[Stage], work: Path, only: set[str] | None, force: set[str], dry_run: bool,
          done: dict[str, Done], reports: dict[str, StageReport]) -> list[Stage]:
    """Sort stages into cached / not selected / would run, and return those to run (inputs checked up front)."""
    to_run: list[Stage] = []
    for s in ordered:
        selected = only is None or s.kind in only or s.name in only
        forced = s.kind in force or s.name in force
        cached = load_done(s, work)
        folder = s.folder(work)
        if cached is not None and not forced:
            done[s.name] = cached
            reports[s.name] = StageReport(s.name, s.kind, "cached", folder, summary=cached.summary)
        elif not selected:
            reports[s.name] = StageReport(s.name, s.kind, "not selected", folder)
        elif dry_run:
            reports[s.name] = StageReport(s.name, s.kind, "would run", folder)
        else:
            to_run.append(s)
    names = {s.name for s in to_run}
    for s in to_run:
        missing = [d for d in s.deps if d not in done and d not in names]
        if missing:
            raise PipelineError(f"stage {s.name!r} needs {', '.join(missing)} first (run without --only, or include "
                                "them)")
    return to_run


def run(stages: list[Stage], work: Path, *, only: set[str] | None = None, force: set[str] | None = None,
        dry_run: bool = False, progress: Callable[[str], None] | None = None, jobs: int | None = None,
        executor: Any = None) -> list[StageReport]:
    """Run ``stages`` (cached ones skipped), ready ones in parallel; return one report per stage, in order.

    Args:
        only / force: stage kinds or names to run only / to rerun even if done.
        jobs: how many stages run at once (default: 1 in this process; the executor's own default otherwise).
        executor: an object from :func:`toolchain.pipeline.executors.make` (default: ``inline`` for one job,
            ``local`` worker subprocesses for more).
    Raises:
        StageFailedError: after every stage that could run has run, if any failed; ``.reports`` holds the table.
    """
    from toolchain.pipeline import executors

    say = progress or (lambda m: None)
    force = force or set()
    for sel in (only or set()) | force:
        if sel not in KINDS and sel not in {s.name for s in stages}:
            raise PipelineError(f"unknown stage {sel!r}; stage kinds: {', '.join(KINDS)}, or a stage name")
    if jobs is not None and jobs < 1:
        raise PipelineError(f"--jobs {jobs}: give at least 1")
    ordered = resolve(stages)
    work = Path(work)
    if executor is None:
        executor = executors.make("inline" if (jobs or 1) == 1 else "local", work)
    if executor.in_process and (jobs or 1) > 1:
        raise PipelineError(f"--executor {executor.name} runs one stage at a time; use --executor local for --jobs {jobs}")
    executor.check(ordered)  # e.g. submitit missing: said before anything runs, --dry-run included
    done: dict[str, Done] = {}
    reports: dict[str, StageReport] = {}
    to_run = _plan(ordered, work, only, force, dry_run, done, reports)
    if not dry_run:
        _claim(work)
        for p in _clean_stale(work):
            say(f"removed a half-written stage output left by an interrupted run: {p.name}")
        driver = _Driver(work, executor, jobs or executor.default_jobs(len(to_run)), force, say, done, reports)
        try:
            driver.drive(to_run)
        except BaseException as e:  # Ctrl-C, or a bug in the driver: the CLI still prints what had happened
            for s in ordered:  # the stage running in this process when it was interrupted
                reports.setdefault(s.name, StageReport(s.name, s.kind, "failed", s.folder(work), error="interrupted"))
            e.reports = [reports[s.name] for s in ordered]  # type: ignore[attr-defined]
            raise
    out = [reports[s.name] for s in ordered]
    failed = [r for r in out if r.status == "failed"]
    if failed:
        blocked = [r.name for r in out if r.status == "blocked"]
        e = StageFailedError(f"{len(failed)} stage(s) failed: "
                             + "; ".join(f"{r.name}: {r.error}" for r in failed)
                             + (f". Not run because of it: {', '.join(blocked)}" if blocked else ""))
        e.reports = out  # type: ignore[attr-defined]  # the CLI prints the table
        raise e from driver.errors.get(failed[0].name)
    return out


class _Driver:
    """The scheduling loop of one run: start ready stages, collect finished ones, block dependants of failures."""

    def __init__(self, work: Path, executor: Any, jobs: int, force: set[str], say: Callable[[str], None],
                 done: dict[str, Done], reports: dict[str, StageReport]) -> None:
        self.work, self.executor, self.jobs, self.force, self.say = work, executor, jobs, force, say
        self.done, self.reports = done, reports
        self.errors: dict[str, BaseException] = {}  # failed stage -> its exception
        self.roots: dict[str, list[str]] = {}  # failed or blocked stage -> the failed stages behind it
        self.running: dict[Any, tuple[Stage, StageLock, float]] = {}
        self.waiting: set[str] = set()

    def drive(self, to_run: list[Stage]) -> None:
        pending = list(to_run)
        pool = None if self.executor.in_process else cf.ThreadPoolExecutor(max_workers=self.jobs)
        try:
            while pending or self.running:
                self._start_ready(pending, pool)
                if not self.running:
                    if pending and not self.waiting:  # cannot happen once _plan has checked inputs
                        raise PipelineError(f"stages {', '.join(s.name for s in pending)} can never become ready")
                    if pending:
                        time.sleep(LOCK_POLL_S)
                    continue
                finished, _ = cf.wait(list(self.running), timeout=LOCK_POLL_S if self.waiting else None,
                                      return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    self._finish(fut)
                if finished:
                    self._say_running()
        except BaseException:
            self.executor.cancel_all()
            for stage, lock, _ in self.running.values():
                lock.release()
                self.reports[stage.name] = StageReport(stage.name, stage.kind, "failed", stage.folder(self.work),
                                                       error="interrupted")
            for s in pending:
                self.reports.setdefault(s.name, StageReport(s.name, s.kind, "blocked", s.folder(self.work),
                                                            error="interrupted"))
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            self.executor.close()

    def _start_ready(self, pending: list[Stage], pool: cf.ThreadPoolExecutor | None) -> None:
        started = False
        for s in list(pending):
            roots = list(dict.fromkeys(r for d in s.deps for r in self.roots.get(d, [])))
            if roots:
                pending.remove(s)
                self.roots[s.name] = roots
                self.reports[s.name] = StageReport(s.name, s.kind, "blocked", s.folder(self.work),
                                                   error=f"not run: {', '.join(roots)} failed")
                self.say(f"[{s.kind}] {s.name}: {self.reports[s.name].error}")
                continue
            if len(self.running) >= self.jobs or not all(d in self.done for d in s.deps):
                continue
            lock = StageLock.of(self.work, s)
            if not lock.try_acquire():
                if s.name not in self.waiting:
                    self.waiting.add(s.name)
                    self.say(f"[{s.kind}] {s.name}: another run is doing this stage; waiting for it")
                continue
            forced = s.kind in self.force or s.name in self.force
            if not forced or s.name in self.waiting:
                cached = load_done(s, self.work)  # done by another run meanwhile
                if cached is not None:
                    lock.release()
                    pending.remove(s)
                    self.waiting.discard(s.name)
                    self.done[s.name] = cached
                    self.reports[s.name] = StageReport(s.name, s.kind, "cached", cached.path, summary=cached.summary)
                    continue
            self.waiting.discard(s.name)
            pending.remove(s)
            task = task_of(s, self.work, self.done)
            self.say(f"[{s.kind}] {s.name}: running")
            stage_say = (lambda m, n=s.name: self.say(f"[{n}] {m}")) if self.jobs > 1 else self.say
            t0 = time.perf_counter()
            if pool is None:
                fut: cf.Future = cf.Future()
                try:
                    self.executor.run_task(task, stage_say)
                    fut.set_result(None)
                except Exception as e:  # noqa: BLE001  # a stage's failure is reported, not fatal to the run
                    fut.set_exception(e)
            else:
                fut = pool.submit(self.executor.run_task, task, stage_say)
            self.running[fut] = (s, lock, t0)
            started = True
        if started:
            self._say_running()

    def _say_running(self) -> None:
        if self.jobs > 1 and self.running:
            names = [s.name for s, _, _ in self.running.values()]
            self.say(f"running ({len(names)}/{self.jobs}): {', '.join(names)}")

    def _finish(self, fut: cf.Future) -> None:
        s, lock, t0 = self.running.pop(fut)
        seconds = time.perf_counter() - t0
        try:
            exc = fut.exception()
            got = None if exc is not None else load_done(s, self.work)
            if exc is None and got is None:
                exc = PipelineError(f"stage {s.name!r} finished without a committed stage folder {s.folder(self.work)}")
        finally:
            lock.release()
        if exc is not None:
            self.errors[s.name], self.roots[s.name] = exc, [s.name]
            self.reports[s.name] = StageReport(s.name, s.kind, "failed", s.folder(self.work), seconds,
                                               error=_error_text(exc))
            self.say(f"[{s.kind}] {s.name}: failed: {_error_text(exc)}")
            return
        self.done[s.name] = got
        self.reports[s.name] = StageReport(s.name, s.kind, "ran", got.path, seconds, got.summary)
        if self.jobs > 1:
            self.say(f"[{s.kind}] {s.name}: done in {seconds:.1f} s")
