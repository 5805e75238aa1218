"""A small content-addressed stage runner: skip what is done, never leave a half output.

A stage's key is the sha256 of its kind, its config and its dependencies' keys, so a change
anywhere upstream re-keys everything downstream. Its output folder is
``WORK/<kind>/<name>-<key12>/``, written through :func:`toolchain.fsutil.atomic_dir`: the
rename at the end is the commit point, so a stage killed at any moment leaves only a
``.tmp`` folder, which the next run removes (:mod:`toolchain.pipeline.schedule` runs the graph). ``stage.json`` inside records the key, config
and the stage's summary.

>>> key_of("train", {"epochs": 2}, ["ab"]) == key_of("train", {"epochs": 2}, ["ab"])
True
>>> key_of("train", {"epochs": 2}, ["ab"]) == key_of("train", {"epochs": 3}, ["ab"])
False
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from toolchain import jsonio
from toolchain.errors import PipelineError, ToolchainError
from toolchain.fsutil import atomic_dir

STAGE_FILE = "stage.json"
#: Order of stage kinds (what --only / --force name).
KINDS = ("data", "train", "compress", "evaluate", "export", "bench", "plan", "report")


__all__ = ["PipelineError", "Stage", "Context", "Done", "Task", "StageReport", "execute", "resolve", "key_of", "KINDS"]


def key_of(kind: str, config: dict[str, Any], dep_keys: list[str]) -> str:
    blob = json.dumps({"kind": kind, "config": config, "deps": dep_keys}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Context:
    """What a stage's function gets: its output folder (temporary until it returns) and its inputs."""

    out: Path
    config: dict[str, Any]
    inputs: dict[str, "Done"]
    progress: Callable[[str], None]
    #: A folder that outlives a killed or requeued attempt of this stage (training checkpoints go there, so a
    #: preempted Slurm job resumes); None where the caller has none. Removed once the stage is committed.
    scratch: Path | None = None


@dataclass
class Done:
    name: str
    kind: str
    key: str
    path: Path
    summary: dict[str, Any]


@dataclass
class Stage:
    name: str
    kind: str
    config: dict[str, Any]
    fn: Callable[[Context], dict[str, Any]]
    deps: list[str] = field(default_factory=list)
    key: str = ""

    def folder(self, work: Path) -> Path:
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.name)
        return work / self.kind / f"{slug}-{self.key[:12]}"


@dataclass
class Task:
    """One stage, ready to run anywhere: picklable (``fn`` is a module-level function), inputs resolved."""

    name: str
    kind: str
    key: str
    config: dict[str, Any]
    deps: list[str]
    fn: Callable[[Context], dict[str, Any]]
    inputs: dict[str, Done]
    folder: Path
    scratch: Path


@dataclass
class StageReport:
    name: str
    kind: str
    status: str  # "cached" | "ran" | "would run" | "not selected" | "failed" | "blocked" (an input failed)
    path: Path
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def resolve(stages: list[Stage]) -> list[Stage]:
    """Check names and dependencies, order topologically, and compute keys."""
    by_name: dict[str, Stage] = {}
    for s in stages:
        if s.name in by_name:
            raise PipelineError(f"two stages are named {s.name!r}")
        if s.kind not in KINDS:
            raise PipelineError(f"stage {s.name!r} has unknown kind {s.kind!r}; known: {', '.join(KINDS)}")
        by_name[s.name] = s
    ordered: list[Stage] = []
    state: dict[str, str] = {}

    def visit(s: Stage, chain: tuple[str, ...]) -> None:
        if state.get(s.name) == "done":
            return
        if state.get(s.name) == "visiting":
            raise PipelineError(f"dependency cycle: {' -> '.join(chain + (s.name,))}")
        state[s.name] = "visiting"
        for d in s.deps:
            if d not in by_name:
                raise PipelineError(f"stage {s.name!r} depends on {d!r}, which is not defined")
            visit(by_name[d], chain + (s.name,))
        s.key = key_of(s.kind, s.config, [by_name[d].key for d in s.deps])
        state[s.name] = "done"
        ordered.append(s)

    for s in stages:
        visit(s, ())
    return ordered


def load_done(stage: Stage, work: Path) -> Done | None:
    folder = stage.folder(work)
    try:
        info = jsonio.read_object(folder / STAGE_FILE)
    except ToolchainError:
        return None
    if info.get("key") != stage.key:
        return None
    return Done(stage.name, stage.kind, stage.key, folder, info.get("summary", {}))


def task_of(stage: Stage, work: Path, done: dict[str, Done]) -> "Task":
    """What running ``stage`` needs, whichever process or cluster node runs it."""
    folder = stage.folder(work)
    return Task(stage.name, stage.kind, stage.key, stage.config, list(stage.deps), stage.fn,
                {d: done[d] for d in stage.deps}, folder, work / ".scratch" / stage.kind / folder.name)


def execute(task: "Task", progress: Callable[[str], None]) -> dict[str, Any]:
    """Run one stage into its own atomic folder; the final rename is the only commit point.

    Used by every executor (this process, a worker subprocess, a Slurm job), so a stage is written the same way
    wherever it runs. ``task.scratch`` survives a killed or requeued attempt (training checkpoints) and is removed
    once the stage folder is committed.
    """
    import shutil

    t0 = time.perf_counter()
    with atomic_dir(task.folder, "stage") as tmp:
        summary = task.fn(Context(tmp, task.config, dict(task.inputs), progress, task.scratch)) or {}
        info = {"name": task.name, "kind": task.kind, "key": task.key, "config": task.config, "deps": task.deps,
                "summary": summary, "seconds": round(time.perf_counter() - t0, 2)}
        (tmp / STAGE_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
    shutil.rmtree(task.scratch, ignore_errors=True)
    return summary
