"""The parallel scheduler: ready stages run together, failures stop only dependants, locks stop double work."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import threading

import pytest

from toolchain.errors import PipelineError, StageFailedError
from toolchain.pipeline import executors
from toolchain.pipeline.engine import Stage
from toolchain.pipeline.schedule import run

# Worker processes import stage functions by module name, so they live in a real module on PYTHONPATH.
STAGE_FNS = textwrap.dedent('''
    import os, time
    from pathlib import Path

    def write(ctx):
        (ctx.out / "out.txt").write_text(ctx.config["text"] + "".join(sorted(ctx.inputs)))
        return {"pid": os.getpid()}

    def rendezvous(ctx):
        """Wait until the partner stage has started too: only true parallelism gets past this."""
        d = Path(ctx.config["dir"])
        (d / ctx.config["me"]).write_text("started")
        deadline = time.monotonic() + ctx.config["wait_s"]
        while not (d / ctx.config["partner"]).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ctx.config['partner']} never started alongside {ctx.config['me']}")
            time.sleep(0.05)
        ctx.progress(f"{ctx.config['me']} met {ctx.config['partner']}")
        (ctx.out / "out.txt").write_text(ctx.config["me"])
        return {"pid": os.getpid()}

    def fail(ctx):
        (ctx.out / "partial.bin").write_bytes(b"x")
        raise RuntimeError("boom")

    def crash(ctx):
        os._exit(3)  # as a converter's segfault would: no exception, no message

    def counted(ctx):
        """Append to a log outside the work folder, then take a while (so two runs overlap)."""
        with open(ctx.config["log"], "a") as fh:
            fh.write(ctx.config["text"] + "\\n")
        time.sleep(0.5)
        (ctx.out / "out.txt").write_text(ctx.config["text"])
        return {}
''')


@pytest.fixture
def fns(tmp_path, monkeypatch):
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    (mod_dir / "sched_stage_fns.py").write_text(STAGE_FNS)
    monkeypatch.syspath_prepend(str(mod_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(mod_dir), os.environ.get("PYTHONPATH", "")]))
    sys.modules.pop("sched_stage_fns", None)
    return importlib.import_module("sched_stage_fns")


def test_ready_stages_run_at_the_same_time(fns, tmp_path):
    """b and c each wait for the other to start: this passes only if two workers run them at once."""
    meet = tmp_path / "meet"
    meet.mkdir()
    cfg = {"dir": str(meet), "wait_s": 60}
    stages = [Stage("a", "data", {"text": "a"}, fns.write),
              Stage("b", "compress", {**cfg, "me": "b", "partner": "c"}, fns.rendezvous, deps=["a"]),
              Stage("c", "compress", {**cfg, "me": "c", "partner": "b"}, fns.rendezvous, deps=["a"]),
              Stage("d", "report", {"text": "d"}, fns.write, deps=["b", "c"])]
    said: list[str] = []
    reports = run(stages, tmp_path / "w", jobs=2, progress=said.append)
    assert [r.status for r in reports] == ["ran"] * 4
    assert (reports[3].path / "out.txt").read_text() == "dbc"
    assert any(m.startswith("running (2/2): ") and {"b", "c"} <= set(m.split(": ")[1].split(", ")) for m in said)
    assert "[b] b met c" in said  # a worker's progress comes back, named by its stage
    assert (tmp_path / "w" / ".logs").is_dir()
    pids = {r.summary["pid"] for r in reports}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes, reused for the four stages
    assert (tmp_path / "w" / ".logs" / f"compress-{reports[1].path.name}.log").is_file()


def test_one_job_at_a_time_would_never_meet(fns, tmp_path):
    """The same graph with --jobs 1 (the rendezvous cannot happen): proves the test above can fail."""
    meet = tmp_path / "meet"
    meet.mkdir()
    cfg = {"dir": str(meet), "wait_s": 1}
    stages = [Stage("b", "compress", {**cfg, "me": "b", "partner": "c"}, fns.rendezvous),
              Stage("c", "compress", {**cfg, "me": "c", "partner": "b"}, fns.rendezvous)]
    with pytest.raises(StageFailedError, match="never started alongside"):
        run(stages, tmp_path / "w", jobs=1, executor=executors.make("local", tmp_path / "w"))


def test_a_failure_stops_only_its_dependants(fns, tmp_path):
    stages = [Stage("data", "data", {"text": "d"}, fns.write),
              Stage("bad", "compress", {}, fns.fail, deps=["data"]),
              Stage("good", "compress", {"text": "g"}, fns.write, deps=["data"]),
              Stage("export-bad", "export", {"text": "x"}, fns.write, deps=["bad"]),
              Stage("export-good", "export", {"text": "y"}, fns.write, deps=["good"]),
              Stage("report", "report", {"text": "r"}, fns.write, deps=["export-bad", "export-good"])]
    with pytest.raises(StageFailedError) as e:
        run(stages, tmp_path / "w", jobs=2)
    status = {r.name: r.status for r in e.value.reports}
    assert status == {"data": "ran", "bad": "failed", "good": "ran", "export-bad": "blocked",
                      "export-good": "ran", "report": "blocked"}
    msg = str(e.value)
    assert "bad: RuntimeError: boom" in msg and "Not run because of it: export-bad, report" in msg
    blocked = {r.name: r.error for r in e.value.reports if r.status == "blocked"}
    assert blocked == {"export-bad": "not run: bad failed", "report": "not run: bad failed"}
    assert "(log: " in next(r.error for r in e.value.reports if r.name == "bad")
    assert not list((tmp_path / "w" / "compress").glob(".*.tmp"))  # the failed stage left no half folder


def test_a_worker_that_dies_fails_only_its_stage(fns, tmp_path):
    stages = [Stage("a", "data", {}, fns.crash), Stage("b", "data", {"text": "b"}, fns.write),
              Stage("c", "train", {"text": "c"}, fns.write, deps=["b"])]
    with pytest.raises(StageFailedError) as e:
        run(stages, tmp_path / "w", jobs=2)
    status = {r.name: (r.status, r.error) for r in e.value.reports}
    assert status["a"][0] == "failed" and "worker exited with status 3" in status["a"][1]
    assert status["b"] == ("ran", None) and status["c"] == ("ran", None)


def test_two_runs_on_one_work_folder_do_each_stage_once(fns, tmp_path):
    log = tmp_path / "calls.log"
    stages = lambda: [Stage(n, "compress", {"text": n, "log": str(log)}, fns.counted)  # noqa: E731
                      for n in ("p", "q", "r")]
    results: list = []
    errors: list = []

    def one_run() -> None:
        try:
            results.append(run(stages(), tmp_path / "w"))
        except Exception as e:  # noqa: BLE001  # shown by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 2
    assert sorted(log.read_text().split()) == ["p", "q", "r"]  # each stage ran once in all
    assert sorted(r.status for rs in results for r in rs) == ["cached"] * 3 + ["ran"] * 3


def test_bad_jobs_and_executor_are_refused(fns, tmp_path):
    st = [Stage("a", "data", {"text": "a"}, fns.write)]
    with pytest.raises(PipelineError, match="at least 1"):
        run(st, tmp_path / "w", jobs=0)
    with pytest.raises(PipelineError, match="one stage at a time"):
        run(st, tmp_path / "w", jobs=2, executor=executors.make("inline", tmp_path / "w"))
    with pytest.raises(Exception, match="unknown executor 'slurmm'; known: inline, local, local-submitit, slurm"):
        executors.make("slurmm", tmp_path / "w")


def test_cleanup_keeps_the_temp_folder_of_a_stage_another_run_holds(fns, tmp_path):
    """On a cluster the writer's pid is on another node; its driver's stage lock says the attempt is alive."""
    from toolchain.pipeline.schedule import StageLock

    work = tmp_path / "w"
    run([Stage("a", "data", {"text": "a"}, fns.write)], work)
    held = Stage("b", "compress", {"text": "b"}, fns.write)
    other = Stage("c", "compress", {"text": "c"}, fns.write)
    from toolchain.pipeline.engine import resolve

    resolve([held, other])
    dead_pid = 2 ** 22 + 1  # above pid_max's default: no such process here
    temps = {}
    for s in (held, other):
        t = work / "compress" / f".{s.folder(work).name}.{dead_pid}-abc.tmp"
        t.mkdir(parents=True)
        temps[s.name] = t
    lock = StageLock.of(work, held)
    assert lock.try_acquire()
    try:
        said: list[str] = []
        run([Stage("a", "data", {"text": "a"}, fns.write)], work, progress=said.append)
    finally:
        lock.release()
    assert temps["b"].is_dir() and not temps["c"].exists()
    assert any(temps["c"].name in m for m in said)


def test_help_names_every_executor():
    from typer.testing import CliRunner

    from toolchain.cli import app

    r = CliRunner().invoke(app, ["pipeline", "run", "--help"], env={"COLUMNS": "300"})
    assert r.exit_code == 0
    for name in executors.EXECUTORS.names():
        assert f"{name} (" in r.output, name
