"""Model cards (TOML): architecture, input and preprocessing, feature layer. No weights.

A card is named by its file stem in ``toolchain/models/cards/`` (``resnet50_ocular``), given
as a path to a ``.toml`` file, or written ``torchvision:NAME`` for any torchvision
classification architecture or ``timm:NAME`` for any timm one (its classifier becomes the feature head;
timm is an optional extra: ``pip install 'toolchain[timm]'``).

A card's ``[architecture]`` may give constructor ``kwargs`` and a ``head`` (see
:mod:`toolchain.models.feature_head`); ``[features] layer = "NAME"`` takes the features from that module.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from toolchain.errors import CardError

#: ``SOURCE:NAME`` card prefixes -> an example name
LIBRARY_SOURCES = {"torchvision": "torchvision:efficientnet_b0", "timm": "timm:mobilenetv3_small_100"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Card:
    name: str
    architecture: dict[str, Any]
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    feature_dim: int | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def builtin_card_names() -> list[str]:
    folder = resources.files("toolchain.models") / "cards"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _from_toml(data: dict[str, Any], where: str) -> Card:
    try:
        arch = dict(data["architecture"])
        arch.setdefault("source", "torchvision")
        layer = data.get("features", {}).get("layer")
        if layer:
            arch["head"] = {"kind": "layer", "module": str(layer)}
        inp = data.get("input", {})
        return Card(
            name=str(data["name"]),
            architecture=arch,
            input_size=int(inp.get("size", 224)),
            mean=tuple(float(v) for v in inp.get("mean", IMAGENET_MEAN)),
            std=tuple(float(v) for v in inp.get("std", IMAGENET_STD)),
            feature_dim=data.get("features", {}).get("dim"),
            description=str(data.get("description", "")),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CardError(f"model card {where} is malformed ({e!r}); it needs name, [architecture] name, [input]") from None


def load_card(name_or_path: str) -> Card:
    """Resolve a built-in card name, a ``.toml`` path, or ``torchvision:NAME``."""
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
        try:
            return _from_toml(tomllib.loads(path.read_text()), str(path))
        except tomllib.TOMLDecodeError as e:
            raise CardError(f"model card {path} is not valid TOML: {e}") from None
    names = builtin_card_names()
    if name_or_path not in names:
        raise CardError(
            f"unknown model card {name_or_path!r}; built-in cards: {', '.join(names)}; "
            "or pass a .toml path, torchvision:NAME or timm:NAME"
        )
    text = (resources.files("toolchain.models") / "cards" / f"{name_or_path}.toml").read_text()
    return _from_toml(tomllib.loads(text), name_or_path)
