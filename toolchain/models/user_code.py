"""The user's own architecture (``--arch path/to/file.py:Name``) and the choice of one output (``--output``).

**Whose code runs, and when.** The file is the user's Python code. It is imported only because the user named it
(``--arch file.py:Name``, or a card whose ``[architecture] file`` names it); the bundle then records its sha256 and
keeps a copy (``code/<file name>``), so later steps (width/depth pruning, fine-tuning, export, evaluation) rebuild
the network from that copy. Loading such a bundle runs that copy: only load bundles you would run as code. A copy
whose sha256 no longer matches ``model.json`` is refused, never run.

The file must be self-contained: it may import installed packages, not sibling files (only the one file is kept).
``Name`` is an ``nn.Module`` subclass or a function returning one (insightface's ``iresnet50``), called with the
``kwargs`` of the architecture (``--arch-kwargs``).

Loaded code is kept per process, keyed by its sha256 (:func:`register`): content-addressed, so two files with the same
class name never mix, and a derived bundle (:func:`copy_into`) writes the very bytes its parent was built from.

**Outputs.** A network that returns a tuple, list or dict has no single feature: :func:`select_output` makes it
return one entry (``--output NAME|INDEX``) without renaming any parameter (the module's class is swapped for a
subclass whose ``forward`` picks the entry), so state dicts load unchanged. :func:`describe` lists what a network
returns, for the error that asks for ``--output``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from toolchain.errors import BundleError, CardError

SOURCE = "file"
CODE_DIR = "code"
#: One Python file, not a folder of them: bigger than this is not an architecture definition.
MAX_CODE_BYTES = 4 << 20

_MODULES: dict[str, ModuleType] = {}  # sha256 -> the imported module
_TEXT: dict[str, bytes] = {}  # sha256 -> the file's bytes (what a derived bundle copies)


def parse_spec(spec: str) -> tuple[Path, str] | None:
    """``path/to/file.py:Name`` -> (path, Name); anything else -> None.

    >>> parse_spec("models/iresnet.py:iresnet50")
    (PosixPath('models/iresnet.py'), 'iresnet50')
    >>> parse_spec("torchvision:resnet18") is None
    True
    """
    file, sep, name = spec.rpartition(":")
    if not sep or not file.endswith(".py"):
        return None
    return Path(file), name


def _safe_name(filename: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(filename).name)
    return name if re.match(r"^[A-Za-z0-9_]", name) and name.endswith(".py") else "architecture.py"


def register(data: bytes, filename: str, error: type[Exception] = CardError) -> str:
    """Import ``data`` (the text of ``filename``) once per process; return its sha256."""
    sha = hashlib.sha256(data).hexdigest()
    if sha in _MODULES:
        return sha
    mod_name = f"_toolchain_user_arch_{sha[:16]}"
    spec = importlib.util.spec_from_loader(mod_name, loader=None, origin=filename)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    module.__file__ = filename
    sys.modules[mod_name] = module  # dataclasses and typing look their module up there
    try:
        code = compile(data, filename, "exec")
        exec(code, module.__dict__)  # noqa: S102 - the user's own file, named by the user (module docstring)
    except ImportError as e:
        del sys.modules[mod_name]
        raise error(f"{filename} cannot be imported: {e}. The architecture file must be self-contained (installed "
                    "packages only, no sibling files: only this one file is kept in the bundle)") from None
    except Exception as e:  # noqa: BLE001 - anything the user's code raises at import
        del sys.modules[mod_name]
        raise error(f"{filename} fails when imported: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None
    _MODULES[sha], _TEXT[sha] = module, bytes(data)
    return sha


def load_file(path: Path, error: type[Exception] = CardError) -> dict[str, Any]:
    """Read and import the user's file; the ``code`` record a bundle keeps (copy name, sha256, where it came from)."""
    path = Path(path)
    if not path.is_file():
        raise error(f"architecture file {path} does not exist")
    if path.stat().st_size > MAX_CODE_BYTES:
        raise error(f"architecture file {path} is {path.stat().st_size:,} bytes; at most {MAX_CODE_BYTES:,}")
    data = path.read_bytes()
    sha = register(data, str(path), error)
    return {"file": f"{CODE_DIR}/{_safe_name(path.name)}", "sha256": sha, "origin": str(path.resolve())}


def load_from_bundle(folder: Path, code: dict[str, Any]) -> None:
    """Import a bundle's copy of its architecture file, refusing a copy whose sha256 is not model.json's."""
    file = Path(folder) / str(code.get("file", ""))
    register(checked_copy(folder, code), str(file), BundleError)


def checked_copy(folder: Path, code: dict[str, Any]) -> bytes:
    """The bytes of a bundle's copy of its architecture file, after checking its name and sha256 (not run)."""
    rel = str(code.get("file", ""))
    if not re.fullmatch(rf"{CODE_DIR}/[A-Za-z0-9_][A-Za-z0-9._-]*\.py", rel):
        raise BundleError(f"{folder}/model.json names architecture code {rel!r}; expected {CODE_DIR}/NAME.py")
    file = Path(folder) / rel
    if not file.is_file():
        raise BundleError(f"{file} is missing: the bundle's copy of its architecture code (from {code.get('origin')}) "
                          "is needed to rebuild the network; re-copy the whole bundle folder")
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != code.get("sha256"):
        raise BundleError(f"{file} does not match the sha256 in model.json: the architecture code was modified "
                          "after the bundle was written; restore it, or import the model again with --arch FILE.py:NAME")
    return data


def copy_into(folder: Path, code: dict[str, Any]) -> None:
    """Write the bytes the network was built from into a bundle being written (``folder/code/NAME.py``)."""
    data = _TEXT.get(code["sha256"])
    if data is None:
        raise BundleError(f"the architecture code {code['file']} (sha256 {code['sha256'][:12]}) is not loaded; "
                          "load the bundle or the --arch file first")
    (Path(folder) / CODE_DIR).mkdir(exist_ok=True)
    (Path(folder) / code["file"]).write_bytes(data)


def build(name: str, kwargs: dict[str, Any], code: dict[str, Any] | None = None) -> nn.Module:
    """The user's network ``name`` from the loaded file ``code`` (random weights)."""
    if not code or code.get("sha256") not in _MODULES:
        raise CardError(f"architecture {SOURCE}:{name} needs its code: give --arch path/to/file.py:{name}, or "
                        "load the bundle that keeps a copy")
    module = _MODULES[code["sha256"]]
    obj = getattr(module, name, None)
    if obj is None or name.startswith("_") or not callable(obj):
        found = sorted(k for k, v in vars(module).items() if isinstance(v, type) and issubclass(v, nn.Module)
                       and v.__module__ == module.__name__)
        raise CardError(f"{code.get('origin', code['file'])} has no class or function {name!r}; its nn.Module "
                        f"classes: {', '.join(found) or 'none'}")
    try:
        net = obj(**kwargs)
    except TypeError as e:
        raise CardError(f"{name}(**{kwargs!r}) fails: {e}; give the constructor's arguments with --arch-kwargs "
                        "'{\"NAME\": VALUE}'") from None
    if not isinstance(net, nn.Module):
        raise CardError(f"{name}(...) returned a {type(net).__name__}, not a torch.nn.Module")
    return net


# ---------------------------------------------------------------- outputs

def parse_output(value: str | int | None) -> str | int | None:
    """``--output``: an index (digits) or a name.

    >>> parse_output("1"), parse_output("embedding"), parse_output(None)
    (1, 'embedding', None)
    """
    if value is None or isinstance(value, int):
        return value
    value = value.strip()
    if not value:
        raise CardError("--output is empty; give an output's name or index")
    return int(value) if value.isdigit() else value


def _entries(out: Any) -> list[tuple[str | int, Any]]:
    if isinstance(out, dict):
        return list(out.items())
    if isinstance(out, (tuple, list)):
        return list(enumerate(out))
    return [(0, out)]


def _shape(v: Any) -> str:
    return str(list(v.shape)) if isinstance(v, torch.Tensor) else type(v).__name__


def describe(out: Any) -> str:
    """What a network returned, for messages: ``0: [1, 512], 1: [1, 10]`` or ``'emb': [1, 512]``.

    >>> describe((torch.zeros(1, 4), torch.zeros(1, 2, 3, 3)))
    '0: [1, 4], 1: [1, 2, 3, 3]'
    """
    return ", ".join(f"{k!r}: {_shape(v)}" if isinstance(k, str) else f"{k}: {_shape(v)}" for k, v in _entries(out))


def is_several(out: Any) -> bool:
    return isinstance(out, (tuple, list, dict))


def pick(out: Any, output: str | int | None, what: str, error: type[Exception] = CardError) -> torch.Tensor:
    """The one tensor of ``out`` that ``output`` names (``None``: ``out`` must be one tensor)."""
    if output is None:
        if isinstance(out, torch.Tensor):
            return out
        raise error(f"{what} returns {len(_entries(out))} outputs ({describe(out)}); pick the feature with "
                    "--output NAME|INDEX")
    entries = dict(_entries(out)) if is_several(out) else None
    if entries is None:
        if output == 0:
            return out
        raise error(f"{what} returns one tensor ({_shape(out)}); --output {output!r} names nothing (use 0, or "
                    "leave --output out)")
    if isinstance(out, dict) and isinstance(output, int) and output not in entries:
        output = list(entries)[output] if output < len(entries) else output  # dicts keep their order
    if output not in entries:
        raise error(f"{what} has no output {output!r}; it returns {describe(out)}")
    value = entries[output]
    if not isinstance(value, torch.Tensor):
        raise error(f"{what}'s output {output!r} is a {type(value).__name__}, not a tensor; it returns {describe(out)}")
    return value


def select_output(net: nn.Module, output: str | int) -> nn.Module:
    """Make ``net`` return only its output ``output``, in place, keeping every parameter name.

    Why a class swap and not a wrapper module: a wrapper would prefix every state-dict key (``net.``), so a
    checkpoint of the user's class would no longer load; a forward hook would be lost by tracers that trace
    ``forward`` itself."""
    base = type(net)
    if getattr(base, "_toolchain_output", None) is not None:
        base = base.__mro__[1]

    def forward(self: nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = base.forward(self, *args, **kwargs)
        return pick(out, output, base.__name__, RuntimeError)

    net.__class__ = type(base.__name__, (base,), {"forward": forward, "_toolchain_output": output,
                                                    "__module__": base.__module__})
    return net


class SelectOutput(nn.Module):
    """A fixed graph (TorchScript, ``torch.export``) returning several outputs, reduced to one (``--output``)."""

    def __init__(self, program: nn.Module, output: str | int) -> None:
        super().__init__()
        self.program = program
        self.output = output

    def train(self, mode: bool = True) -> "SelectOutput":
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pick(self.program(x), self.output, "the program", RuntimeError)
