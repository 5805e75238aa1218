"""Graph-only bundles: a TorchScript program, a ``torch.export`` program (``.pt2``) or an ONNX file kept as
is, with a ``model.json`` beside it. They export and evaluate like any bundle; they cannot be width- or
depth-pruned (or re-saved with new weights): there is no architecture to rebuild, only a fixed graph.

What loading executes (checked against torch 2.14's sources):

* **TorchScript** (``torch.jit.load``): the archive's ``data.pkl``/``constants.pkl`` are read by
  TorchScript's own C++ unpickler, which builds only tensors, containers and the TorchScript classes
  compiled from the archive's ``code/``; it never imports or calls a Python global, so no pickle payload
  can run Python code. Running the model runs its TorchScript code: a restricted language that can still
  call any registered torch operator (some read files, e.g. ``aten::from_file``). Safe to load; run only
  programs you would run as code.
* **torch.export** (``torch.export.load``): *not* safe as is — ``pt2_archive/_package.py`` reads pickled
  weights and constants with ``torch.load(weights_only=False)`` and ``pickle.loads``. :func:`check_pt2`
  therefore opens the archive first and loads every pickled entry with ``weights_only=True``; any entry
  that needs more (a custom object, an opaque script object) refuses the file before ``torch.export.load``
  sees it. The graph itself is JSON naming torch operators.
* **ONNX** (``onnx.load``): protobuf, no code; converted to PyTorch by onnx2torch (:mod:`onnx_import`).
"""

from __future__ import annotations

import io
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from toolchain.errors import BundleError, ImportModelError
from toolchain.registry import Registry


class PerSample(nn.Module):
    """Runs a batch-1 program sample by sample: exported/converted graphs are often specialised to batch 1,
    while evaluation feeds batches. At batch 1 (what every exporter traces) it is a plain call."""

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> "PerSample":
        # An ExportedProgram's module refuses train(): a fixed program has no training mode to switch.
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:
            return self.program(x)
        return torch.cat([self.program(x[i:i + 1]) for i in range(x.shape[0])])


@dataclass(frozen=True)
class GraphSource:
    """One graph format: the file name it is stored under in a bundle and how it becomes a module."""

    file: str
    load: Callable[[Path, dict[str, Any], int], nn.Module]  # (file, architecture, input size) -> module
    what: str


GRAPH_SOURCES: Registry[GraphSource] = Registry("graph-only bundle source")


def _sample(size: Any) -> tuple[torch.Tensor]:
    from toolchain.inputspec import chw

    return (torch.zeros(1, *chw(size)),)


def load_torchscript(path: Path, arch: dict[str, Any], size: int) -> nn.Module:
    """TorchScript -> an ExportedProgram's module (``torch._export.converter``), so torch.export-based
    converters (TFLite, ONNX) can take it too; tracing for Core ML works on either."""
    from torch._export.converter import TS2EPConverter

    try:
        ts = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as e:
        raise ImportModelError(f"{path} is not a TorchScript archive ({str(e).splitlines()[0][:160]})") from None
    ts.eval()
    try:
        with warnings.catch_warnings():  # "manually populate num_batches_tracked": unused buffers
            warnings.simplefilter("ignore")
            program = TS2EPConverter(ts, _sample(size)).convert().module()
    except Exception as e:  # noqa: BLE001 - converter internals
        raise ImportModelError(f"TorchScript program {path.name} cannot be converted to a torch.export program "
                               f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); save it with "
                               "torch.export.save instead and import the .pt2") from None
    return PerSample(program)


def open_zip(path: Path) -> zipfile.ZipFile:
    """A model archive (``.pt2``, TorchScript) opened as a zip; a damaged one is one :class:`ImportModelError`.

    Why: ``zipfile`` decodes entry names flagged UTF-8 eagerly, so an archive with non-UTF-8 names raised
    ``UnicodeDecodeError`` (a traceback) before anything was read.
    """
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, UnicodeDecodeError, ValueError, EOFError, NotImplementedError) as e:
        raise ImportModelError(f"{path.name} is not a readable model archive (a zip file): "
                               f"{type(e).__name__}: {str(e)[:160]}") from None


def check_pt2(path: Path) -> None:
    """Refuse a ``.pt2`` archive whose pickled entries need more than ``torch.load(weights_only=True)``."""
    from toolchain import jsonio

    with open_zip(path) as zf:
        names = zf.namelist()
        for cfg_name in [n for n in names if n.endswith(("_weights_config.json", "_constants_config.json"))]:
            folder = cfg_name.rsplit("/", 1)[0]
            try:
                data = zf.read(cfg_name)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
                raise ImportModelError(f"{path.name}: {cfg_name} cannot be read ({type(e).__name__})") from None
            top = jsonio.loads(data, f"{path.name}:{cfg_name}", error=ImportModelError)
            config = top.get("config", {}) if isinstance(top, dict) else None
            if not isinstance(config, dict):
                raise ImportModelError(f"{path.name}: {cfg_name} has no config table; not a torch.export archive")
            for fqn, entry in config.items():
                if not isinstance(entry, dict):
                    raise ImportModelError(f"{path.name}: {cfg_name} entry {fqn!r} is not a table")
                member = f"{folder}/{entry.get('path_name')}"
                pickled = entry.get("use_pickle") or not str(entry.get("path_name", "")).startswith(("weight_", "tensor_"))
                if not pickled:
                    continue
                try:
                    torch.load(io.BytesIO(zf.read(member)), weights_only=True)
                except Exception as e:  # noqa: BLE001 - anything beyond plain tensors is refused
                    raise ImportModelError(
                        f"{path.name}: entry {fqn!r} needs full unpickling (which can run code): "
                        f"{type(e).__name__}; re-export without custom objects, or import a state dict") from None
        legacy = [n for n in names if "/data/weights/" in n and n.endswith(".pt") or "/data/constants/" in n and n.endswith(".pt")]
        for member in legacy:
            try:
                torch.load(io.BytesIO(zf.read(member)), weights_only=True)
            except Exception as e:  # noqa: BLE001
                raise ImportModelError(f"{path.name}: {member} needs full unpickling ({type(e).__name__}); "
                                       "re-save it with a current torch.export.save") from None


def export_load(path: Path) -> Any:
    """``torch.export.load`` with torch's own fallback warning silenced: on a damaged archive torch logs the
    first loader's full traceback before trying the legacy one, which reads like a crash to a user; the
    caller turns the final failure into one ImportModelError line instead."""
    import logging

    log = logging.getLogger("torch.export")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return torch.export.load(str(path))
    finally:
        log.setLevel(level)


def pt2_input_size(path: Path) -> tuple[int, int, int] | None:
    """The (C, H, W) a ``.pt2`` program was exported with (from its first input's example), if static."""
    check_pt2(path)
    try:
        ep = export_load(path)
        shapes = [n.meta["val"].shape for n in ep.graph.nodes if n.op == "placeholder" and "val" in n.meta
                  and n.name in ep.graph_signature.user_inputs]
    except Exception:  # noqa: BLE001 - load_pt2 reports the real problem
        return None
    if shapes and len(shapes[0]) == 4 and all(isinstance(v, int) for v in shapes[0][1:]):
        return int(shapes[0][1]), int(shapes[0][2]), int(shapes[0][3])
    return None


def load_pt2(path: Path, arch: dict[str, Any], size: int) -> nn.Module:
    check_pt2(path)
    try:
        ep = export_load(path)
    except Exception as e:  # noqa: BLE001
        raise ImportModelError(f"{path} cannot be loaded as a torch.export program "
                               f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    return PerSample(ep.module())


def load_onnx(path: Path, arch: dict[str, Any], size: int) -> nn.Module:
    from toolchain.models import onnx_import

    return PerSample(onnx_import.to_torch(path, arch.get("feature_value"), arch.get("pool", True)))


GRAPH_SOURCES.add("torchscript", GraphSource("model.torchscript.pt", load_torchscript, "TorchScript program"))
GRAPH_SOURCES.add("torch_export", GraphSource("model.pt2", load_pt2, "torch.export program"))
GRAPH_SOURCES.add("onnx", GraphSource("model.onnx", load_onnx, "ONNX graph"))


def is_graph_only(arch: dict[str, Any]) -> bool:
    return arch.get("source") in GRAPH_SOURCES


def require_rebuildable(meta: dict[str, Any], what: str) -> None:
    """Raise a clear error when ``what`` (e.g. "width/depth pruning") needs an architecture a graph lacks."""
    arch = meta.get("architecture", {})
    if is_graph_only(arch):
        kind = GRAPH_SOURCES.get(arch["source"]).what
        raise BundleError(
            f"{meta.get('name', 'this bundle')} is a graph-only bundle ({kind}): {what} needs an architecture "
            "to rebuild, and a fixed graph has none. Import the weights instead: "
            "deploy model import WEIGHTS.pth --arch torchvision:NAME (or a card), then prune that bundle")


def build_graph_trunk(arch: dict[str, Any], file: Path, size: int) -> nn.Module:
    trunk = GRAPH_SOURCES.get(arch["source"]).load(file, arch, size)
    if arch.get("output") is not None and isinstance(trunk, PerSample):  # --output: one of several results
        from toolchain.models.user_code import SelectOutput

        trunk.program = SelectOutput(trunk.program, arch["output"])
    return trunk
