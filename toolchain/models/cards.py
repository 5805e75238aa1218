"""Model cards (TOML): architecture, input and preprocessing, feature layer. No weights.

A card is named by its file stem in ``toolchain/models/cards/`` (``resnet50_ocular``), given
as a path to a ``.toml`` file, or written ``torchvision:NAME`` for any torchvision
classification architecture or ``timm:NAME`` for any timm one (its classifier becomes the feature head;
timm is an optional extra: ``pip install 'toolchain[timm]'``).

A card's ``[architecture]`` may give constructor ``kwargs`` and a ``head`` (see
:mod:`toolchain.models.feature_head`); ``[features] layer = "NAME"`` takes the features from that module.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from toolchain.errors import CardError
from toolchain.tomlio import read_toml

#: ``SOURCE:NAME`` card prefixes -> an example name
LIBRARY_SOURCES = {"torchvision": "torchvision:efficientnet_b0", "timm": "timm:mobilenetv3_small_100"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Card:
    name: str
    architecture: dict[str, Any]
    input_size: int = 224  # the height (the side of a square input)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    feature_dim: int | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    input_width: int | None = None  # None: square
    channels: int = 3
    color: str = "rgb"
    scale: float = 255.0
    #: the card states its own mean and std ([input] mean/std); False: ImageNet's, assumed (an import warns)
    input_declared: bool = False

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.input_size, self.input_width or self.input_size


def builtin_card_names() -> list[str]:
    folder = resources.files("toolchain.models") / "cards"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


#: The keys a card may have, per table (None: the top level). Anything else is an error, so a field at the wrong
#: level (``input_size`` at the top, ``std`` under ``[architecture]``) is never silently ignored.
CARD_KEYS: dict[str | None, frozenset[str]] = {
    None: frozenset({"name", "description", "architecture", "input", "features"}),
    "architecture": frozenset({"source", "name", "kwargs", "head", "file", "output"}),
    "input": frozenset({"size", "mean", "std", "channels", "color", "scale"}),
    "features": frozenset({"dim", "layer"}),
}
#: Where a misplaced preprocessing key belongs, for the message.
_BELONGS = {"input_size": "[input] size", "size": "[input] size", "mean": "[input] mean", "std": "[input] std",
            "dim": "[features] dim", "layer": "[features] layer", "feature_dim": "[features] dim"}


def _check_keys(data: dict[str, Any], where: str) -> None:
    for table, allowed in CARD_KEYS.items():
        body = data if table is None else data.get(table, {})
        if not isinstance(body, dict):
            raise CardError(f"model card {where}: [{table}] must be a table, not {type(body).__name__}")
        for key in body:
            if key not in allowed:
                at = "at the top level" if table is None else f"in [{table}]"
                hint = f"; it belongs in {_BELONGS[key]}" if key in _BELONGS else ""
                raise CardError(f"model card {where}: unknown key {key!r} {at}{hint}; allowed there: "
                                f"{', '.join(sorted(allowed))}")


def _triple(value: Any, field: str, low: float, high: float, low_open: bool = False, n: int = 3) -> tuple[float, ...]:
    from toolchain.bounds import check_float

    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise CardError(f"{field} must be {n} number(s) ({'R, G, B' if n == 3 else 'one per channel'}), not {value!r}"[:200])
    return tuple(check_float(v, f"{field}[{i}]", low, high, low_open=low_open, error=CardError)
                 for i, v in enumerate(value))  # type: ignore[return-value]


def _from_toml(data: dict[str, Any], where: str) -> Card:
    from toolchain.bounds import INPUT_SIZE_PX, check_int

    _check_keys(data, where)
    try:
        arch = dict(data["architecture"])
        arch.setdefault("source", "file" if "file" in arch else "torchvision")
        _user_code(arch, where)
        layer = data.get("features", {}).get("layer")
        if layer:
            arch["head"] = {"kind": "layer", "module": str(layer)}
        inp = data.get("input", {})
        dim = data.get("features", {}).get("dim")
        from toolchain.inputspec import SCALE_RANGE, check_color, default_color, imagenet_default, normalization_limit

        channels = inp.get("channels", 3)
        if channels not in (1, 3) or isinstance(channels, bool):
            raise CardError(f"model card {where}: [input] channels is {channels!r}; allowed: 1 or 3")
        size = inp.get("size", 224)  # 112 (square) or [H, W]
        hw = list(size) if isinstance(size, list) and len(size) == 2 else [size, size]
        h, w = (check_int(v, f"model card {where}: [input] size", *INPUT_SIZE_PX, error=CardError) for v in hw)
        d_mean, d_std = imagenet_default(channels)
        from toolchain.bounds import check_float

        scale = check_float(inp.get("scale", 255.0), f"model card {where}: [input] scale", *SCALE_RANGE, error=CardError)
        limit = normalization_limit(scale)  # mean/std in raw pixel units when scale is 1

        return Card(
            name=str(data["name"]),
            architecture=arch,
            input_size=h, input_width=w if w != h else None, channels=channels,
            color=check_color(inp.get("color", default_color(channels)), channels, CardError),
            scale=scale,
            input_declared="mean" in inp and "std" in inp,
            # pixels / scale are normalised by (x - mean) / std: std 0 divides by zero, NaN/Inf poison every output
            mean=_triple(inp.get("mean", d_mean), f"model card {where}: [input] mean", -limit, limit, n=channels),
            std=_triple(inp.get("std", d_std), f"model card {where}: [input] std", 0.0, limit, low_open=True,
                        n=channels),
            feature_dim=None if dim is None else check_int(dim, f"model card {where}: [features] dim", 1, 1 << 20,
                                                           error=CardError),
            description=str(data.get("description", "")),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CardError(f"model card {where} is malformed ({e!r}); it needs name, [architecture] name, [input]") from None


def _user_code(arch: dict[str, Any], where: str) -> None:
    """``[architecture] file = "iresnet.py"`` (relative to the card) + ``name``: the user's own class, imported now
    because the card names it (:mod:`toolchain.models.user_code`); ``architecture["code"]`` records the file."""
    from toolchain.models import user_code

    if arch["source"] != user_code.SOURCE and "file" not in arch:
        return
    if arch["source"] != user_code.SOURCE or not isinstance(arch.get("file"), str):
        raise CardError(f"model card {where}: [architecture] file = \"PATH.py\" (a string) goes with source = "
                        f"\"{user_code.SOURCE}\" (the default when file is given), not source = {arch['source']!r}")
    file = Path(arch.pop("file"))
    if not file.is_absolute() and where.endswith(".toml"):
        file = Path(where).parent / file
    arch["code"] = user_code.load_file(file)
    if arch.get("output") is not None:
        arch["output"] = user_code.parse_output(str(arch["output"]))


def load_card(name_or_path: str) -> Card:
    """Resolve a built-in card name, a ``.toml`` path, ``torchvision:NAME``, ``timm:NAME`` or the user's own
    class ``path/to/file.py:Name``."""
    from toolchain.models import user_code

    if (spec := user_code.parse_spec(name_or_path)) is not None:
        file, cls = spec
        if not cls:
            raise CardError(f"{name_or_path}: name the class or function after the colon, e.g. {file}:MyNet")
        return Card(name=re.sub(r"[^A-Za-z0-9._-]", "_", cls)[:128],
                    architecture={"source": user_code.SOURCE, "name": cls, "code": user_code.load_file(file)},
                    description=f"{cls} from {file.name} (the user's own code)")
    source, sep, arch = name_or_path.partition(":")
    if sep and source in LIBRARY_SOURCES:
        if not arch:
            raise CardError(f"{source}:NAME needs an architecture name, e.g. {LIBRARY_SOURCES[source]}")
        return Card(name=arch if source == "torchvision" else f"{source}_{arch}",
                    architecture={"source": source, "name": arch},
                    description=f"{source} {arch}, classifier replaced by the feature head")
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise CardError(f"model card file {path} does not exist")
        return _from_toml(read_toml(path, CardError, "model card"), str(path))
    names = builtin_card_names()
    if name_or_path not in names:
        raise CardError(
            f"unknown model card {name_or_path!r}; built-in cards: {', '.join(names)}; "
            "or pass a .toml path, torchvision:NAME or timm:NAME"
        )
    text = (resources.files("toolchain.models") / "cards" / f"{name_or_path}.toml").read_text()
    return _from_toml(tomllib.loads(text), name_or_path)
