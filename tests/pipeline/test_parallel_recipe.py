"""A tiny real recipe (tiny_ocular on synthetic data) run in parallel gives the sequential run's bytes.

Compared: the sha256 of every file in the data, teacher and compression stage folders (weights, splits,
protocols, checkpoints), except the JSON records that hold a duration or an absolute path (``stage.json``,
``model.json``, ``checkpoint.json``); their weights are compared through the ``.safetensors`` files.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = str(Path(sys.executable).parent / "deploy")
VOLATILE = {"stage.json", "model.json", "checkpoint.json"}
ONLY = ["--only", "data", "--only", "train", "--only", "compress"]

RECIPE = """
[pipeline]
work_dir = "{work}"
seed = 0

[data]
synth = {{ subjects = 8, images_per_subject = 4, size = 32 }}
fractions = [0.5, 0.25, 0.25]

[teacher]
model = "tiny_ocular"
input_size = 32
epochs = 1
batch_size = 8
threads = 1

[[compress]]
name = "mag-2x"
prune = {{ method = "layer-magnitude", ratio = 2 }}

[[compress]]
name = "rand-2x"
prune = {{ method = "random", ratio = 2 }}

[cluster]
poll_s = 0.5
time_min = 20
"""


def _run(tmp: Path, name: str, *args: str) -> dict[str, str]:
    toml = tmp / f"{name}.toml"
    toml.write_text(RECIPE.format(work=name))
    r = subprocess.run([DEPLOY, "pipeline", "run", str(toml), *ONLY, *args], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    work = tmp / name
    out = {}
    for kind in ("data", "train", "compress"):
        for f in sorted((work / kind).rglob("*")):
            if f.is_file() and f.name not in VOLATILE and not f.name.startswith(".toolchain-output"):
                out[f.relative_to(work).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    assert sum(p.endswith(".safetensors") for p in out) >= 3, sorted(out)  # teacher + two compressed bundles
    return out


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("recipe")
    return tmp, _run(tmp, "seq")


@pytest.mark.slow
@pytest.mark.parametrize("args", [("--jobs", "2"), ("--executor", "local-submitit", "--jobs", "2")],
                         ids=["jobs2", "submitit-local"])
def test_parallel_run_matches_the_sequential_run(sequential, args):
    tmp, expected = sequential
    name = "par-" + "-".join(a.strip("-") for a in args)
    got = _run(tmp, name, *args)
    assert got == expected
    if "local-submitit" in args:  # every stage went through a submitit job with its own log
        logs = list((tmp / name / ".submitit").rglob("*_log.err"))
        assert len(logs) >= 4, logs
