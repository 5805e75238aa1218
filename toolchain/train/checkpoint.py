"""Training checkpoints: ``checkpoint.safetensors`` (every tensor) + ``checkpoint.json`` (everything else).

Tensor names are prefixed: ``model.*`` (the FeatureModel, head included), ``best.*`` (the best
epoch's model so far), ``optim.<param index>.<key>`` (optimizer state), ``extra.<i>`` (hook
parameters), ``hooks.*`` (hook state, e.g. pruning masks), ``rng.torch`` / ``rng.cuda``.
The JSON holds the epoch reached, the global step, the history, the config, optimizer
hyper-parameters and the sha256 of the tensor file. Both files are written atomically, the
tensors first; the JSON names the tensors' hash, so a crash between the two renames is
detected on resume instead of silently mixing two epochs. Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from toolchain import jsonio
from toolchain.errors import CheckpointError
from toolchain.fsutil import atomic_write_bytes, atomic_write_json, sha256_file

TENSORS_FILE = "checkpoint.safetensors"
STATE_FILE = "checkpoint.json"
CHECKPOINT_FORMAT = "toolchain.checkpoint"


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``opt.state_dict()`` into tensors (for safetensors) and JSON-able rest."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, kv in rest.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(kv)
    opt.load_state_dict({"state": state, "param_groups": rest["param_groups"]})


def save_checkpoint(out_dir: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    out_dir = Path(out_dir)
    blob = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata={"format": CHECKPOINT_FORMAT})
    atomic_write_bytes(out_dir / TENSORS_FILE, blob)
    # the hash of the bytes just written (what sha256_file would read back), without reading 280 MB again
    atomic_write_json(out_dir / STATE_FILE, {"format": CHECKPOINT_FORMAT, **state,
                                             "tensors_sha256": hashlib.sha256(blob).hexdigest()})
    return out_dir / STATE_FILE


def load_checkpoint(out_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    out_dir = Path(out_dir)
    sf, jf = out_dir / TENSORS_FILE, out_dir / STATE_FILE
    if not jf.is_file() or not sf.is_file():
        raise CheckpointError(f"--resume: no checkpoint in {out_dir} ({STATE_FILE} + {TENSORS_FILE}); "
                              "start without --resume")
    try:
        state = jsonio.read_object(jf, max_bytes=64 << 20, error=CheckpointError, what="checkpoint state")
    except CheckpointError as e:
        raise CheckpointError(f"{e}; delete the checkpoint to start over") from None
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{jf} is not a training checkpoint")
    if sha256_file(sf) != state.get("tensors_sha256"):
        raise CheckpointError(f"{sf} does not match {jf} (interrupted between the two writes?); "
                              "delete both to start over")
    try:
        tensors = load_file(str(sf))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{sf} is not a readable safetensors file ({e})") from None
    return tensors, state
