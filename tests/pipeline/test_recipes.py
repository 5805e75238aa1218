"""``[[compress]]`` recipes reach what the CLI reaches: width (channel) pruning and prune scopes, typed as the CLI
builds them; a bad one is refused at ``--dry-run`` (exit 2, one line per problem)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from toolchain.models.bundle import load_bundle

DEPLOY = str(Path(sys.executable).parent / "deploy")


def _pipeline(tmp_path: Path, teacher: Path, recipes: str) -> Path:
    f = tmp_path / "pipeline.toml"
    f.write_text(f"""
[pipeline]
work_dir = "{tmp_path / 'w'}"
[data]
synth = {{ subjects = 6, images_per_subject = 4, size = 64 }}
fractions = [0.5, 0.25, 0.25]
[teacher]
model = "{teacher}"
epochs = 0
{recipes}
""")
    return f


def test_a_recipe_with_width_pruning_and_a_scoped_prune_runs(tmp_path, tiny_bundle):
    """Before: ``structured = { width = {...} }`` passed --dry-run, then failed with a traceback
    (``width.importance`` on a dict); ``prune.scope`` could not be given at all."""
    f = _pipeline(tmp_path, tiny_bundle, """
[[compress]]
name = "channel-2x"
structured = { width = { ratio = 2.0, importance = "l2", scope = "uniform" } }
[[compress]]
name = "scoped-2x"
prune = { method = "layer-magnitude", ratio = 2, scope = { exclude_names = ["conv1"] } }
""")
    r = subprocess.run([DEPLOY, "pipeline", "run", str(f), "--only", "data", "--only", "train", "--only", "compress"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (channel,) = (tmp_path / "w" / "compress").glob("channel-2x*/bundle")
    b = load_bundle(channel)
    before = sum(p.numel() for p in load_bundle(tiny_bundle).model.trunk.parameters())
    assert sum(p.numel() for p in b.model.trunk.parameters()) < before * 0.6
    assert b.meta["provenance"]["recipe"]["width"]["importance"] == "l2"
    assert b.meta["provenance"]["recipe"]["width"]["scope"] == "uniform"
    (scoped,) = (tmp_path / "w" / "compress").glob("scoped-2x*/bundle")
    w = load_bundle(scoped).model.trunk
    assert torch.count_nonzero(w.conv1.weight) == w.conv1.weight.numel()  # excluded: dense
    assert torch.count_nonzero(w.layer1[0].conv1.weight) < w.layer1[0].conv1.weight.numel()


BAD_RECIPES = """
[[compress]]
name = "w"
structured = { width = { ratio = 0.5, shape = 1 } }
[[compress]]
name = "s"
prune = { method = "layer-magnitude", ratio = 0.5, scope = { exclude_names = "conv1" } }
"""
PROBLEMS = ["[[compress]] 'w' structured.width: unknown key shape",
            "[[compress]] 'w' structured.width: WidthConfig: the width-pruning ratio 0.5 must be at least 1.0",
            "[[compress]] 's' prune: ratio 0.5 must be at least 1.0",
            "[[compress]] 's' prune.scope: exclude_names: expected a list, got a string"]


def test_a_bad_recipe_is_refused_at_dry_run_one_line_per_problem(tmp_path, tiny_bundle):
    f = _pipeline(tmp_path, tiny_bundle, BAD_RECIPES)
    r = subprocess.run([DEPLOY, "pipeline", "run", str(f), "--dry-run"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    lines = [" ".join(line.split()) for line in r.stderr.splitlines()]
    for p in PROBLEMS:
        assert sum(p in line for line in lines) == 1, (p, r.stderr)
    assert f"{len(PROBLEMS)} problems" in r.stderr
    assert not (tmp_path / "w").exists()
