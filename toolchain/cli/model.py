"""`deploy model init|info|cards`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer


from toolchain.cli import app
from toolchain.cli._common import ForceOpt, console, err_console, styled
from toolchain.cli._input import (ChannelsOpt, ColorOpt, InputSizeOpt, MeanOpt, PixelScaleOpt, RgbToGrayOpt, StdOpt,
                                  pixel_kwargs)

model_app = typer.Typer(help="Create and inspect model bundles (model.safetensors + model.json).", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("init")
def init(
    card: Annotated[str, typer.Argument(help="Model card (resnet50_ocular, mobilenet_v2, mobilenet_v3_small, resnet18, "
                                             "tiny_ocular), a card .toml path, torchvision:NAME or timm:NAME.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder to write.")],
    seed: Annotated[int, typer.Option(help="Seed of the random init and BatchNorm re-estimation.")] = 0,
    input_size: InputSizeOpt = None,
    weights: Annotated[str, typer.Option(help="random (seeded, BatchNorm re-estimated) or imagenet (torchvision's local cache only; never downloads).")] = "random",
    channels: ChannelsOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    color: ColorOpt = None,
    pixel_scale: PixelScaleOpt = None,
    rgb_to_gray: RgbToGrayOpt = False,
    force: ForceOpt = False,
) -> None:
    """Write a new model bundle from a model card."""
    from toolchain.errors import BundleError
    from toolchain.inputspec import describe, parse_hw
    from toolchain.models.bundle import init_bundle, load_bundle

    path = init_bundle(card, out, seed=seed, input_size=parse_hw(input_size, BundleError), weights=weights,
                       force=force, **pixel_kwargs(channels, mean, std, color, pixel_scale, rgb_to_gray))
    b = load_bundle(path)
    console.print(f"wrote bundle {path}: {b.name}, {b.meta['weights']['num_parameters']:,} parameters, "
                  f"feature dim {b.feature_dim}, input {describe(b.meta)}, sha256 {b.sha256[:12]}")


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "yes", "1", "on"):
        return True
    if v in ("false", "no", "0", "off"):
        return False
    raise typer.BadParameter(f"expected true or false, not {value!r}")


@model_app.command("import")
def import_(
    checkpoint: Annotated[Path, typer.Argument(help="Weights (.safetensors; .pth/.pt/.ckpt read with weights_only=True), "
                                                   ".onnx, a TorchScript archive or a torch.export .pt2.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder to write.")],
    arch: Annotated[Optional[str], typer.Option(help="Architecture of a weights file: a card (resnet50_ocular, ...), "
                                                      "torchvision:NAME, timm:NAME or a card .toml. For graph files: "
                                                      "optional, gives the input size and normalisation.")] = None,
    key: Annotated[Optional[str], typer.Option(help="Where the state dict is inside the checkpoint (e.g. ema, "
                                                     "state_dict_ema, or a.b for nested dicts). Default: found.")] = None,
    head_name: Annotated[Optional[str], typer.Option("--head-name", help="The classifier module (ONNX: node) to drop; "
                                                     "'none' keeps everything (the output is the feature). Default: found.")] = None,
    feature_layer: Annotated[Optional[str], typer.Option("--feature-layer", help="Take features from this module's "
                                                          "output (ONNX: value), global-average-pooled.")] = None,
    strict: Annotated[str, typer.Option(help="false: load the keys that match and list the rest instead of failing.")] = "true",
    input_size: InputSizeOpt = None,
    name: Annotated[Optional[str], typer.Option(help="Bundle name (default: the card's or the file's).")] = None,
    channels: ChannelsOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    color: ColorOpt = None,
    pixel_scale: PixelScaleOpt = None,
    rgb_to_gray: RgbToGrayOpt = False,
    force: ForceOpt = False,
    arch_kwargs: Annotated[Optional[str], typer.Option("--arch-kwargs", help="Constructor arguments of the "
                                                        "architecture as a JSON object, e.g. '{\"dim\": 512}'.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", help="For a network that returns several outputs "
                                                  "(tuple, dict) or a map: the one to take, by name or index.")] = None,
) -> None:
    """Import a model trained elsewhere as a bundle, and check its features against the original.

    Example: deploy model import run42/best.ckpt --arch resnet50_ocular --out teacher

    Your own class: --arch path/to/file.py:Name (the file is imported because you name it; the bundle keeps a copy).
    """
    from toolchain.errors import ImportModelError
    from toolchain.inputspec import describe
    from toolchain.models.importer import ImportRequest, import_model

    kwargs = None
    if arch_kwargs is not None:
        try:
            kwargs = json.loads(arch_kwargs)
        except json.JSONDecodeError as e:
            raise ImportModelError(f"--arch-kwargs is not JSON ({e.msg} at character {e.pos}); give an object "
                                   "such as '{\"dim\": 512}'") from None

    req = ImportRequest(source=checkpoint, out=out, arch=arch, key=key, head_name=head_name,
                        feature_layer=feature_layer, strict=_bool(strict), input_size=input_size, name=name,
                        force=force, pixels=pixel_kwargs(channels, mean, std, color, pixel_scale, rgb_to_gray),
                        arch_kwargs=kwargs, output=output)
    with err_console.status(f"importing {checkpoint}...") as status:
        def say(msg: str) -> None:
            status.update(msg)
            err_console.log(msg)
        res = import_model(req, progress=say)
    rec = res.record
    for line in _warnings(res.meta):  # the ImageNet default assumed: said once, here and in provenance
        err_console.print(styled(("warning", "yellow"), f": {line}"), soft_wrap=True)  # one line, never wrapped
    v = rec["verification"]
    head = rec.get("head") or {}
    console.print(styled("wrote bundle ", (str(res.path), "bold"),
                         f": {res.meta['name']}, feature dim {res.meta['feature_dim']}, input {describe(res.meta)}"
                         + (" (graph-only: exports and evaluates; cannot be pruned)"
                            if res.meta["architecture"].get("graph_only") else "")))
    if head.get("num_classes"):
        console.print(f"  classifier {head.get('module') or head.get('node')}: {head['num_classes']} classes, "
                      "dropped from the deployed trunk")
    if rec.get("prefix_stripped"):
        console.print(f"  stripped key prefix {rec['prefix_stripped']!r}")
    if rec.get("problems"):
        console.print(styled("  ", ("--strict false", "yellow"), f": {rec['problems']}"))
    console.print(f"  verified against {v['against']}: cosine min {v['cosine_min']:.7f}, max abs {v['max_abs']:.2e} "
                  f"on {v['samples']} seeded inputs; source sha256 {rec['source_sha256'][:12]}")


@model_app.command("info")
def info(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print model.json as is.")] = False,
) -> None:
    """Print a bundle's description (checks its weights against model.json; never runs the bundle's code)."""
    from toolchain.inputspec import describe
    from toolchain.models.bundle import check_bundle_files, read_meta

    m = read_meta(bundle)
    wfile = check_bundle_files(bundle, m)
    if as_json:
        console.print_json(json.dumps(m))
        return
    arch, w, prov = m["architecture"], m["weights"], m.get("provenance") or {}
    rows = [
        ("name", m["name"]),
        ("architecture", f"{arch['source']}:{arch['name']}"
         + (f", {len(arch['layer_shapes'])} resized layers" if arch.get("layer_shapes") else "")
         + (f", removed blocks {arch['removed_blocks']}" if arch.get("removed_blocks") else "")),
        ("feature dim", str(m["feature_dim"])),
        ("input", describe(m)),
        ("parameters", (f"{w['num_parameters']:,}" if "num_parameters" in w else "not recorded")
         + (f" ({w['deployed_parameters']:,} deployed, {w['deployed_nonzero']:,} non-zero)"
            if "deployed_nonzero" in w and "deployed_parameters" in w else "")),
        ("weights", f"{w['file']} ({wfile.stat().st_size:,} bytes), sha256 {w['sha256']}"),
        ("created", prov.get("created", "?")),
        ("parent", str(prov.get("parent_sha256"))),
        ("recipe", json.dumps(prov.get("recipe"))),
        ("metrics", json.dumps(prov.get("metrics"))),
    ]
    if arch.get("code"):  # the user's own class: the copy that loading this bundle runs
        rows.append(("code", f"{arch['code']['file']} (sha256 {arch['code']['sha256'][:12]}, from "
                             f"{arch['code'].get('origin', '?')}); every command that loads this bundle runs it "
                             "(not `model info`): use bundles from people you trust"))
    if arch.get("output") is not None:
        rows.append(("output", f"--output {arch['output']}"))
    for k, v in rows:
        console.print(f"{k:>13}  {v}")
    for line in _warnings(m):
        console.print(styled(("warning", "yellow"), f": {line}"), soft_wrap=True)


def _warnings(meta: dict) -> list[str]:
    imp = (meta.get("provenance") or {}).get("import") or {}
    pre = imp.get("preprocessing") or {}
    return [pre["warning"]] if pre.get("warning") else []


@model_app.command("cards")
def cards() -> None:
    """List the built-in model cards."""
    from toolchain.models.cards import builtin_card_names, load_card

    for name in builtin_card_names():
        c = load_card(name)
        console.print(f"{name:<20} {c.description}")
    console.print("Also: any torchvision classification model as torchvision:NAME, any timm model as timm:NAME "
                  "(pip install 'toolchain[timm]'), or a card .toml path.")
