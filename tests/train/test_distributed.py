"""torchrun with 2 CPU processes (gloo): the same training as one process, and only rank 0 writes.

*Same training*: DistributedSampler gives rank r the permutation's items r, r+2, ...; with a per-process batch of 8
the two ranks' first batches are exactly the one-process batch of 16, and DDP averages their gradients. What still
differs is BatchNorm, which normalises each process's 8 images with their own statistics (SyncBatchNorm does not
run on CPU), so the weight updates agree closely but not exactly: measured here, the two updates differ by 0.42 of
the update's norm (cosine 0.91), while a single process with the per-rank batch of 8 (what a rank without the
gradient all-reduce would do) is 1.70 away.

*Only rank 0 writes*: a ``sitecustomize`` audit hook (``sys.addaudithook``) in each process records every open for
writing, mkdir, rename and removal under the output folder, with the process's rank.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

AUDIT = textwrap.dedent('''
    """Test-only: record every write under $AUDIT_DIRS, with this process's torchrun rank, into $AUDIT_LOG."""
    import os, sys
    _dirs = [d for d in os.environ.get("AUDIT_DIRS", "").split(os.pathsep) if d]
    _log = os.environ.get("AUDIT_LOG")
    if _dirs and _log:
        _rank = os.environ.get("RANK", "-")
        _busy = []
        _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

        def _hook(event, args):
            if _busy:
                return
            if event == "open":
                path, mode, flags = args
                if not ((mode and any(c in mode for c in "wax+")) or (not mode and (flags or 0) & _WRITE)):
                    return
            elif event not in ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.chmod",
                               "tempfile.mkstemp", "tempfile.mkdtemp"):
                return
            paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
            for p in paths:
                p = os.path.abspath(os.fsdecode(p))
                if any(p.startswith(d) for d in _dirs):
                    _busy.append(1)
                    try:
                        with open(_log, "a") as fh:
                            fh.write(f"{_rank} {event} {p}\\n")
                    finally:
                        _busy.clear()
                    return

        sys.addaudithook(_hook)
''')

ARGS = ["--epochs", "1", "--input-size", "32", "--device", "cpu", "--augment", "none", "--lr", "0.01",
        "--threads", "1"]


@pytest.fixture(scope="module")
def synth_8(tmp_path_factory) -> Path:
    """10 subjects x 8 images at 32 px: 40 training images, two full steps of 16 (or of 2 x 8)."""
    from toolchain.data.synth import generate

    return generate(tmp_path_factory.mktemp("synth8") / "s", subjects=10, images_per_subject=8, size=32, seed=0)


def torchrun(tmp: Path, args: list[str], watch: list[Path], timeout_s: int = 300) -> dict[str, list[str]]:
    """Run ``python -m torch.distributed.run --nproc-per-node 2 ARGS``; return the writes seen, by rank."""
    audit_dir = tmp / "audit"
    audit_dir.mkdir(exist_ok=True)
    (audit_dir / "sitecustomize.py").write_text(AUDIT)
    log = tmp / "writes.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUDIT_LOG": str(log),
           "AUDIT_DIRS": os.pathsep.join(str(p.resolve()) for p in watch),
           "PYTHONPATH": os.pathsep.join([str(audit_dir), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    writes: dict[str, list[str]] = {}
    for line in log.read_text().splitlines() if log.is_file() else []:
        rank, rest = line.split(" ", 1)
        writes.setdefault(rank, []).append(rest)
    return writes


def _update_distance(a: Path, b: Path) -> tuple[float, float]:
    """(||Δa - Δb|| / ||Δa||, cosine(Δa, Δb)) of two bundles' trunk weight updates from the seed-0 init."""
    import torch
    from safetensors.torch import load_file

    from toolchain.models.bundle import load_card, new_model

    init, _ = new_model(load_card("tiny_ocular"), seed=0, input_size=32)
    w0 = init.state_dict()
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    keys = [k for k, v in w0.items() if v.dtype.is_floating_point and "running" not in k and k in wa]
    assert len(keys) > 10
    da = torch.cat([(wa[k] - w0[k]).flatten().double() for k in keys])
    db = torch.cat([(wb[k] - w0[k]).flatten().double() for k in keys])
    return float((da - db).norm() / da.norm()), float(torch.nn.functional.cosine_similarity(da, db, dim=0))


def test_torchrun_two_cpu_processes_match_one_process_and_only_rank0_writes(synth_8, tmp_path):
    from typer.testing import CliRunner

    from toolchain.cli import app

    one = tmp_path / "one"
    r = CliRunner().invoke(app, ["train", "tiny_ocular", "--data", str(synth_8), "--out", str(one), *ARGS,
                                 "--batch-size", "16"])
    assert r.exit_code == 0, r.output
    two = tmp_path / "two"
    writes = torchrun(tmp_path, ["-m", "toolchain.cli", "train", "tiny_ocular", "--data", str(synth_8), "--out",
                                 str(two), *ARGS, "--batch-size", "8"], [two])
    assert set(writes) == {"0"}, {k: v[:5] for k, v in writes.items()}  # rank 1 wrote nothing under --out
    assert any("bundle" in w for w in writes["0"]) and any("checkpoint" in w for w in writes["0"])

    tr = json.loads((two / "bundle" / "model.json").read_text())["provenance"]["training"]
    assert tr["world_size"] == 2
    seen = json.loads((one / "bundle" / "model.json").read_text())["provenance"]["training"]["history"][0]
    assert tr["history"][0]["train_images"] == seen["train_images"] == 32  # 2 steps of 16 = 2 steps of 2 x 8
    rel, cos = _update_distance(one / "bundle", two / "bundle")
    assert rel < 0.7 and cos > 0.85, (rel, cos)  # see the module docstring: 0.42 / 0.91 measured, 1.70 if broken


PRUNE_AND_DISTILL = textwrap.dedent('''
    """Under torchrun: a prune fine-tune and a distillation through the library, as the pipeline calls them."""
    import sys
    from pathlib import Path

    from toolchain.compress import run as C
    from toolchain.compress.distill import parse_losses
    from toolchain.train import distributed as D
    from toolchain.train.config import TrainConfig, finetune_config

    teacher, data, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    spec = C.DataSpec(root=data)
    p = C.prune_unstructured(teacher, out / "pruned", "layer-magnitude", 2.0, data=spec,
                             cfg=finetune_config(1, batch_size=8, lr=0.01, threads=1, augment="none"), seed=0)
    losses, ce = parse_losses(["feature-cosine"])  # the init bundle has no classification head for hinton
    d = C.distill(teacher, "tiny_ocular", out / "kd", spec, TrainConfig(epochs=1, batch_size=8, lr=0.01, threads=1,
                  augment="none"), losses=losses, ce_weight=ce, multiplier=0.5)
    for res in (p, d):
        assert (res.bundle is None) == (D.info().rank != 0), (D.info(), res.bundle)
        assert res.fit is not None and res.fit.world_size == 2
    D.shutdown()
''')


@pytest.mark.slow
def test_prune_finetune_and_distillation_run_under_torchrun_and_only_rank0_writes(synth_8, tiny_bundle, tmp_path):
    script = tmp_path / "compress_ddp.py"
    script.write_text(PRUNE_AND_DISTILL)
    out = tmp_path / "out"
    writes = torchrun(tmp_path, [str(script), str(tiny_bundle), str(synth_8), str(out)], [out])
    assert set(writes) == {"0"}, {k: v[:5] for k, v in writes.items()}
    from toolchain.models.bundle import load_bundle

    for name, kind in (("pruned", "unstructured"), ("kd", "distill")):
        meta = load_bundle(out / name / "bundle").meta
        assert meta["provenance"]["training"]["world_size"] == 2
        assert (meta["provenance"].get("recipe") or {}).get("kind") == kind
        assert (out / name / "splits.json").is_file()
