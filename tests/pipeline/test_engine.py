"""The stage runner: caching by content hash, reruns, interruption, selection."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from toolchain.errors import StageFailedError
from toolchain.pipeline.engine import PipelineError, Stage
from toolchain.pipeline.schedule import run


def make(calls, fail_on=None):
    def fn_for(name):
        def fn(ctx):
            calls.append(name)
            if name == fail_on:
                (ctx.out / "partial.bin").write_bytes(b"x")
                raise RuntimeError("boom")
            (ctx.out / "out.txt").write_text(name + "".join(sorted(ctx.inputs)))
            return {"n": len(calls)}
        return fn
    return [Stage("data", "data", {"subjects": 3}, fn_for("data")),
            Stage("teacher", "train", {"epochs": 1}, fn_for("teacher"), deps=["data"]),
            Stage("rep", "report", {}, fn_for("rep"), deps=["teacher"])]


def test_rerun_skips_done_stages(tmp_path):
    calls = []
    r1 = run(make(calls), tmp_path)
    assert [r.status for r in r1] == ["ran"] * 3 and calls == ["data", "teacher", "rep"]
    r2 = run(make(calls), tmp_path)
    assert [r.status for r in r2] == ["cached"] * 3 and len(calls) == 3
    assert (r2[1].path / "out.txt").read_text() == "teacherdata"


def test_config_change_reruns_that_stage_and_downstream_only(tmp_path):
    calls = []
    run(make(calls), tmp_path)
    stages = make(calls)
    stages[1].config = {"epochs": 2}
    r = run(stages, tmp_path)
    assert [x.status for x in r] == ["cached", "ran", "ran"]


def test_failed_stage_leaves_nothing_and_rerun_completes(tmp_path):
    calls = []
    with pytest.raises(StageFailedError, match="teacher: RuntimeError: boom. Not run because of it: rep") as e:
        run(make(calls, fail_on="teacher"), tmp_path)
    assert isinstance(e.value.__cause__, RuntimeError)  # the stage's own exception, for the traceback
    assert [r.status for r in e.value.reports] == ["ran", "failed", "blocked"]
    assert not list((tmp_path / "train").iterdir())  # no half output, no temp folder
    r = run(make(calls), tmp_path)
    assert [x.status for x in r] == ["cached", "ran", "ran"]


def test_dry_run_only_and_force(tmp_path):
    calls = []
    r = run(make(calls), tmp_path, dry_run=True)
    assert [x.status for x in r] == ["would run"] * 3 and calls == []
    run(make(calls), tmp_path, only={"data"})
    assert calls == ["data"]
    with pytest.raises(PipelineError, match="needs teacher"):
        run(make(calls), tmp_path, only={"report"})
    run(make(calls), tmp_path)
    calls.clear()
    r = run(make(calls), tmp_path, force={"train"})
    assert calls == ["teacher"] and [x.status for x in r] == ["cached", "ran", "cached"]
    with pytest.raises(PipelineError, match="unknown stage"):
        run(make(calls), tmp_path, only={"trian"})


def test_bad_graphs_are_refused(tmp_path):
    f = lambda ctx: {}  # noqa: E731
    with pytest.raises(PipelineError, match="not defined"):
        run([Stage("a", "data", {}, f, deps=["zzz"])], tmp_path)
    with pytest.raises(PipelineError, match="cycle"):
        run([Stage("a", "data", {}, f, deps=["b"]), Stage("b", "train", {}, f, deps=["a"])], tmp_path)


def test_killed_mid_stage_restarts_cleanly(tmp_path):
    """SIGKILL a process while a stage writes; the next run removes the debris and completes."""
    script = tmp_path / "p.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from toolchain.pipeline.engine import Stage
        from toolchain.pipeline.schedule import run
        def slow(ctx):
            (ctx.out / "big.bin").write_bytes(b"0" * 1000)
            print("STARTED", flush=True)
            if sys.argv[1] == "hang":
                time.sleep(60)
            return {{}}
        run([Stage("d", "data", {{}}, slow)], Path({str(tmp_path / 'work')!r}))
        print("FINISHED", flush=True)
    """))
    p = subprocess.Popen([sys.executable, str(script), "hang"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "STARTED"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert list((tmp_path / "work" / "data").glob(".*.tmp"))  # debris of the killed stage
    out = subprocess.run([sys.executable, str(script), "go"], capture_output=True, text=True, timeout=60)
    assert "FINISHED" in out.stdout, out.stderr
    assert not list((tmp_path / "work" / "data").glob(".*.tmp"))
    (done,) = (tmp_path / "work" / "data").iterdir()
    assert json.loads((done / "stage.json").read_text())["name"] == "d"


def test_an_interrupt_keeps_the_table_of_what_happened(tmp_path):
    def interrupted(ctx):
        raise KeyboardInterrupt

    ok = lambda ctx: {}  # noqa: E731
    stages = [Stage("a", "data", {}, ok), Stage("b", "train", {}, interrupted, deps=["a"]),
              Stage("c", "report", {}, ok, deps=["b"])]
    with pytest.raises(KeyboardInterrupt) as e:
        run(stages, tmp_path)
    assert [(r.name, r.status, r.error) for r in e.value.reports] == [
        ("a", "ran", None), ("b", "failed", "interrupted"), ("c", "blocked", "interrupted")]
    assert not list((tmp_path / "train").iterdir())  # no half output
