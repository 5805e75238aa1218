"""`deploy model init|info|cards`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from toolchain.cli import app
from toolchain.cli._common import ForceOpt, console

model_app = typer.Typer(help="Create and inspect model bundles (model.safetensors + model.json).", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("init")
def init(
    card: Annotated[str, typer.Argument(help="Model card (resnet50_ocular, mobilenet_v2, mobilenet_v3_small, resnet18, "
                                             "tiny_ocular), a card .toml path, or torchvision:NAME.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder to write.")],
    seed: Annotated[int, typer.Option(help="Seed of the random init and BatchNorm re-estimation.")] = 0,
    input_size: Annotated[Optional[int], typer.Option("--input-size", help="Square input size in pixels (default: the card's).", min=16, max=4096)] = None,
    weights: Annotated[str, typer.Option(help="random (seeded, BatchNorm re-estimated) or imagenet (torchvision's local cache only; never downloads).")] = "random",
    force: ForceOpt = False,
) -> None:
    """Write a new model bundle from a model card."""
    from toolchain.models.bundle import init_bundle, load_bundle

    path = init_bundle(card, out, seed=seed, input_size=input_size, weights=weights, force=force)
    b = load_bundle(path)
    console.print(f"wrote bundle {path}: {b.name}, {b.meta['weights']['num_parameters']:,} parameters, "
                  f"feature dim {b.feature_dim}, input {b.input_size}x{b.input_size}, sha256 {b.sha256[:12]}")


@model_app.command("info")
def info(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print model.json as is.")] = False,
) -> None:
    """Print a bundle's description (checks its weights against model.json)."""
    from toolchain.models.bundle import load_bundle

    b = load_bundle(bundle)
    if as_json:
        console.print_json(json.dumps(b.meta))
        return
    m = b.meta
    arch = m["architecture"]
    rows = [
        ("name", m["name"]),
        ("architecture", f"{arch['source']}:{arch['name']}"
         + (f", {len(arch['layer_shapes'])} resized layers" if arch.get("layer_shapes") else "")
         + (f", removed blocks {arch['removed_blocks']}" if arch.get("removed_blocks") else "")),
        ("feature dim", str(b.feature_dim)),
        ("input", f"{b.input_size}x{b.input_size} RGB, mean {b.mean}, std {b.std}"),
        ("parameters", f"{m['weights']['num_parameters']:,}"
         + (f" ({m['weights']['deployed_parameters']:,} deployed, {m['weights']['deployed_nonzero']:,} non-zero)"
            if "deployed_nonzero" in m["weights"] else "")),
        ("weights", f"{m['weights']['file']} ({m['weights']['size_bytes']:,} bytes), sha256 {b.sha256}"),
        ("created", m["provenance"].get("created", "?")),
        ("parent", str(m["provenance"].get("parent_sha256"))),
        ("recipe", json.dumps(m["provenance"].get("recipe"))),
        ("metrics", json.dumps(m["provenance"].get("metrics"))),
    ]
    for k, v in rows:
        console.print(f"{k:>13}  {v}")


@model_app.command("cards")
def cards() -> None:
    """List the built-in model cards."""
    from toolchain.models.cards import builtin_card_names, load_card

    for name in builtin_card_names():
        c = load_card(name)
        console.print(f"{name:<20} {c.description}")
    console.print("Also: any torchvision classification model as torchvision:NAME, or a card .toml path.")
