"""`[cluster]`: typed validation (bad values refused at --dry-run, exit 2), per-stage overrides, submitit jobs."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from toolchain.errors import PipelineError, StageFailedError
from toolchain.pipeline import executors
from toolchain.pipeline.cluster import ClusterSection, StageResources, check_stage_names, submitit_parameters
from toolchain.pipeline.config import parse
from toolchain.pipeline.engine import Stage
from toolchain.pipeline.schedule import run

DEPLOY = str(Path(sys.executable).parent / "deploy")
BASE = {"data": {"synth": {"subjects": 4, "images_per_subject": 2, "size": 32}},
        "teacher": {"model": "tiny_ocular", "epochs": 1}}


def test_cluster_section_is_typed_and_bounded():
    cfg = parse({**BASE, "cluster": {"partition": "gpu", "gpus": 1, "cpus": 8, "mem_gb": 32, "time_min": 240,
                                     "sbatch": {"account": "lab", "exclusive": True},
                                     "stages": {"report": {"gpus": 0, "time_min": 10}}}})
    assert cfg.cluster.partition == "gpu" and cfg.cluster.stages["report"] == StageResources(gpus=0, time_min=10)
    with pytest.raises(PipelineError) as e:
        parse({**BASE, "cluster": {"gpus": -1, "cpus": "eight", "time_min": 0, "mem": 4,
                                   "stages": {"train": {"mem_gb": 0}}}})
    msg = str(e.value)
    for part in ("[cluster] gpus: -1 is below the minimum 0", "[cluster] cpus: expected an integer",
                 "[cluster] time_min: 0 is below the minimum 1", "[cluster] has unknown keys ['mem']",
                 "[cluster] stages.train.mem_gb: 0.0 must be greater than 0"):
        assert part in msg, msg


def test_overrides_merge_kind_then_name_and_map_to_submitit():
    c = ClusterSection(partition="gpu", gpus=1, cpus=4, mem_gb=16, time_min=120, sbatch={"account": "lab"},
                       stages={"compress": StageResources(time_min=30, sbatch={"qos": "short"}),
                               "mag-8x": StageResources(gpus=2), "report": StageResources(gpus=0, partition="cpu")})
    r = c.resources_for("mag-8x", "compress")
    assert (r.partition, r.gpus, r.cpus, r.mem_gb, r.time_min) == ("gpu", 2, 4, 16, 30)
    assert r.sbatch == {"account": "lab", "qos": "short"}
    p = submitit_parameters(c.resources_for("report", "report"), c, "deploy-report")
    assert p == {"name": "deploy-report", "timeout_min": 120, "cpus_per_task": 4, "gpus_per_node": 0, "nodes": 1,
                 "tasks_per_node": 1, "mem_gb": 16, "slurm_partition": "cpu",
                 "slurm_additional_parameters": {"account": "lab"}}
    f = lambda ctx: {}  # noqa: E731
    check_stage_names(c, [Stage("mag-8x", "compress", {}, f)])
    with pytest.raises(PipelineError, match=r"names no stage 'mag-8x'.*stage kinds and names: bench, compress"):
        check_stage_names(c, [Stage("mag-4x", "compress", {}, f)])


def test_dry_run_refuses_bad_cluster_values_with_exit_2(tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text(textwrap.dedent("""
        [data]
        synth = { subjects = 4, images_per_subject = 2, size = 32 }
        [teacher]
        model = "tiny_ocular"
        epochs = 1
        [cluster]
        gpus = -2
        time_min = "an hour"
    """))
    r = subprocess.run([DEPLOY, "pipeline", "run", str(bad), "--dry-run", "--executor", "slurm"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "gpus: -2 is below the minimum 0" in r.stderr and "time_min: expected an integer" in r.stderr
    assert "Traceback" not in r.stderr
    typo = tmp_path / "q.toml"
    typo.write_text(bad.read_text().replace('gpus = -2\ntime_min = "an hour"', "[cluster.stages.teachr]\ngpus = 1"))
    r = subprocess.run([DEPLOY, "pipeline", "run", str(typo), "--dry-run"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "names no stage 'teachr'" in r.stderr, r.stdout + r.stderr


STAGE_FNS = textwrap.dedent('''
    import os, time
    from pathlib import Path

    def write(ctx):
        (ctx.out / "out.txt").write_text(ctx.config["text"] + "".join(sorted(ctx.inputs)))
        return {"pid": os.getpid()}

    def fail(ctx):
        raise ValueError("bad stage")

    def resumable(ctx):
        """Count attempts in the scratch folder (it outlives a requeue); wait to be preempted on the first."""
        ctx.scratch.mkdir(parents=True, exist_ok=True)
        n = len(list(ctx.scratch.glob("attempt-*"))) + 1
        (ctx.scratch / f"attempt-{n}").write_text("")
        Path(ctx.config["flag"]).write_text(str(n))
        if n == 1:
            time.sleep(120)  # preempted here by the test
        (ctx.out / "attempts.txt").write_text(str(n))
        return {"attempts": n}
''')


@pytest.fixture
def fns(tmp_path, monkeypatch):
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    (mod_dir / "cluster_stage_fns.py").write_text(STAGE_FNS)
    monkeypatch.syspath_prepend(str(mod_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(mod_dir), os.environ.get("PYTHONPATH", "")]))
    sys.modules.pop("cluster_stage_fns", None)
    return importlib.import_module("cluster_stage_fns")


def test_submitit_jobs_report_their_id_and_log_and_failures_name_the_log(fns, tmp_path):
    work = tmp_path / "w"
    ex = executors.make("local-submitit", work, ClusterSection(poll_s=0.2, time_min=5))
    said: list[str] = []
    stages = [Stage("a", "data", {"text": "a"}, fns.write), Stage("bad", "compress", {}, fns.fail, deps=["a"]),
              Stage("after", "export", {"text": "x"}, fns.write, deps=["bad"])]
    with pytest.raises(StageFailedError) as e:
        run(stages, work, executor=ex, progress=said.append)
    status = {r.name: r.status for r in e.value.reports}
    assert status == {"a": "ran", "bad": "failed", "after": "blocked"}
    submitted = [m for m in said if "submitted; log " in m]
    assert len(submitted) == 2 and all(Path(m.split("log ")[1]).is_file() for m in submitted)
    err = next(r.error for r in e.value.reports if r.name == "bad")
    assert "ValueError: bad stage" in err and "(log: " in err
    assert e.value.reports[0].summary["pid"] != os.getpid()


@pytest.mark.slow
def test_a_preempted_job_is_requeued_and_resumes_from_its_scratch(fns, tmp_path):
    """submitit's LocalExecutor delivers the preemption signal as Slurm would; the job requeues itself."""
    import threading
    import time

    work = tmp_path / "w"
    flag = tmp_path / "attempt"
    ex = executors.make("local-submitit", work, ClusterSection(poll_s=0.2, time_min=10))

    def preempt_first_attempt() -> None:
        deadline = time.monotonic() + 120
        while not (flag.is_file() and flag.read_text() == "1"):
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
        with ex._lock:
            (job,) = ex._jobs
        job._interrupt()  # submitit's own test hook: the signal Slurm sends before preempting

    t = threading.Thread(target=preempt_first_attempt)
    t.start()
    (r,) = run([Stage("long", "train", {"flag": str(flag)}, fns.resumable)], work, executor=ex)
    t.join()
    assert r.status == "ran" and r.summary == {"attempts": 2}
    assert (r.path / "attempts.txt").read_text() == "2"
    assert not (work / ".scratch" / "train" / r.path.name).exists()  # scratch removed once committed
