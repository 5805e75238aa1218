"""Reading a user's checkpoint without unpickling code: safetensors, or ``torch.load(weights_only=True)``.

A checkpoint is whatever a training script saved: a bare state dict, or a dict that holds one under
``state_dict`` (PyTorch Lightning, timm), ``model_state_dict``, ``model``, ``ema`` ..., with keys that
carry a wrapper's prefix (``module.`` from DataParallel/DDP, ``model.`` from a LightningModule attribute,
``_orig_mod.`` from ``torch.compile``). :func:`read_checkpoint` finds the tensors; :func:`strip_prefix`
finds the prefix by matching keys against the architecture's own names.

Example: ``{"epoch": 3, "state_dict": {"model.module.fc.weight": w}}`` against an architecture with
``fc.weight`` -> wrapper key ``state_dict``, prefix ``model.module.``, tensors ``{"fc.weight": w}``.
"""

from __future__ import annotations

import pickle
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from toolchain.errors import ImportModelError

#: Where training scripts keep the weights, in the order they are tried (the first that holds tensors wins).
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema", "ema", "ema_state_dict",
                "net", "network", "module", "weights", "params")
#: Bookkeeping tensors some wrappers add that belong to no layer (torch.optim.swa_utils.AveragedModel).
BOOKKEEPING_KEYS = ("n_averaged",)
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".tar")

RESAVE_HINT = (
    "re-save only the weights where the model's code is importable: "
    "torch.save(model.state_dict(), 'weights.pth') or "
    "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors'), then import that file")


@dataclass
class Checkpoint:
    """The tensors found in a checkpoint file and where they were."""

    path: Path
    tensors: dict[str, torch.Tensor]
    wrapper_key: str | None = None  # e.g. "state_dict"; None for a bare state dict
    other_keys: list[str] = field(default_factory=list)  # the wrapper's other entries (epoch, optimizer...)
    candidates: list[str] = field(default_factory=list)  # other wrapper keys that also hold tensors (--key)


def _is_state(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _tensors_only(obj: Mapping) -> dict[str, torch.Tensor]:
    """A state dict with a few non-tensor entries (versions, flags) kept to its tensors."""
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}


def _load_raw(path: Path) -> Any:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise ImportModelError(f"{path} is not a readable safetensors file ({e})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses any class that is not a tensor/container: a whole pickled model or trainer.
        what = str(e).split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
        what = what.split(" was not an allowed global")[0].split(". Please")[0][:160]  # not torch's allow-list advice
        raise ImportModelError(f"{path} needs full unpickling, which can run arbitrary code, so it is refused "
                               f"({what}); {RESAVE_HINT}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise ImportModelError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:160]}); give a .safetensors, .pth, .pt or .ckpt file") from None


def _dig(obj: Any, key: str) -> Any:
    """``--key a.b`` walks nested dicts; a literal key containing dots is tried first."""
    if isinstance(obj, Mapping) and key in obj:
        return obj[key]
    cur = obj
    for part in key.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            keys = ", ".join(sorted(map(str, obj))[:12]) if isinstance(obj, Mapping) else type(obj).__name__
            raise ImportModelError(f"--key {key!r} is not in the checkpoint; its top-level keys: {keys}")
        cur = cur[part]
    return cur


def read_checkpoint(path: str | Path, key: str | None = None) -> Checkpoint:
    """Load a checkpoint's tensors: the bare state dict, the ``--key`` entry, or the first wrapper key found.

    Raises ImportModelError for a full pickle (with how to re-save it), an unreadable file, or no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ImportModelError(f"checkpoint {path} does not exist")
    raw = _load_raw(path)
    if key is not None:
        obj = _dig(raw, key)
        if isinstance(obj, Mapping) and _tensors_only(obj):
            return Checkpoint(path, _tensors_only(obj), key)
        raise ImportModelError(f"--key {key!r} in {path.name} holds {type(obj).__name__}, not a state dict of tensors")
    if _is_state(raw):
        return Checkpoint(path, dict(raw))
    if not isinstance(raw, Mapping):
        raise ImportModelError(f"{path} holds a {type(raw).__name__}, not a state dict; {RESAVE_HINT}")
    found = [k for k in WRAPPER_KEYS if isinstance(raw.get(k), Mapping) and _tensors_only(raw[k])]
    nested = [k for k, v in raw.items() if isinstance(v, Mapping) and k not in found and _tensors_only(v)]
    if found:
        chosen = found[0]
        return Checkpoint(path, _tensors_only(raw[chosen]), chosen,
                          other_keys=sorted(str(k) for k in raw if k != chosen), candidates=found[1:] + nested)
    mostly = _tensors_only(raw)
    if mostly and len(mostly) >= 0.9 * len(raw):  # a state dict with a stray non-tensor entry
        return Checkpoint(path, mostly, other_keys=sorted(str(k) for k in raw if k not in mostly))
    if nested:
        raise ImportModelError(f"{path.name} holds several dicts and none under a usual name "
                               f"({', '.join(WRAPPER_KEYS[:4])}...): choose one with --key ({', '.join(nested)})")
    raise ImportModelError(f"{path.name} has no tensors under any of {', '.join(WRAPPER_KEYS)}; its keys: "
                           f"{', '.join(sorted(map(str, raw))[:12])}; pass --key")


def check_tensors(tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse what cannot be a trained model's weights: bool/complex tensors, NaN or Inf values.

    Why: a ``bool`` weight or a NaN in a classifier head loads without complaint and the bundle verifies
    (the head is dropped, or NaN == NaN passes no check at all), so it was imported as if it were a model.
    """
    for k, t in tensors.items():
        if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or t.dtype in _INT_DTYPES):
            raise ImportModelError(f"{source}: tensor {k!r} is {str(t.dtype).replace('torch.', '')}, not a "
                                   "float (or integer counter) tensor; not a trained model's weights")
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ImportModelError(f"{source}: tensor {k!r} holds {bad} NaN/Inf value(s) of {t.numel()}; "
                                   "a trained model's weights are finite")


_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def strip_prefix(tensors: Mapping[str, torch.Tensor], names: Iterable[str]) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """Remove the wrapper prefix that makes the most keys match ``names`` (the architecture's own keys).

    Returns (renamed tensors, the prefix, keys outside that prefix). Only whole dotted components are cut,
    so ``model.fc.weight`` can become ``fc.weight`` but never ``c.weight``.

    >>> t = {"module.fc.weight": 1, "module.fc.bias": 2, "n_averaged": 0}
    >>> strip_prefix(t, ["fc.weight", "fc.bias"])
    ({'fc.weight': 1, 'fc.bias': 2}, 'module.', [])
    """
    wanted = set(names)
    votes: Counter[str] = Counter()
    for k in tensors:
        parts = k.split(".")
        for i in range(len(parts)):
            if ".".join(parts[i:]) in wanted:
                votes[".".join(parts[:i]) + ("." if i else "")] += 1
                break
    if not votes:
        return dict(tensors), "", []
    best = max(votes.items(), key=lambda kv: (kv[1], -len(kv[0])))[0]
    out: dict[str, torch.Tensor] = {}
    outside: list[str] = []
    for k, v in tensors.items():
        if k in BOOKKEEPING_KEYS:
            continue
        if k.startswith(best):
            out[k[len(best):]] = v
        else:
            outside.append(k)
    return out, best, outside
