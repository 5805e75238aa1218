"""Model bundles: ``model.safetensors`` + ``model.json``. Everything after training consumes these.

``model.json`` holds the architecture (with the widths/removed blocks that rebuild a pruned
network), input size and normalisation, feature dimension, the weights' sha256 and
provenance. Loading checks the hash, then every tensor's name and shape, and never
unpickles anything.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from toolchain import __version__, jsonio
from toolchain.errors import BundleError, WeightsError
from toolchain.fsutil import atomic_dir, check_output_dir, sha256_file
from toolchain.models import feature_head
from toolchain.models.arch import (
    FeatureModel,
    build_model,
    changed_shapes,
    default_kwargs,
    layer_shapes,
    load_state,
    probe_feature_dim,
    recalibrate_batchnorm,
    base_network,
    set_input_channels,
)
from toolchain.models.cards import Card, load_card
from toolchain.models.meta import validate_meta
from toolchain.inputspec import DEFAULT_SCALE, SizeLike, chw, default_color, meta_chw

BUNDLE_FORMAT = "toolchain.bundle"
BUNDLE_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"


@dataclass
class Bundle:
    """A loaded bundle: the model (eval mode) and its metadata."""

    path: Path
    meta: dict[str, Any]
    model: FeatureModel

    @property
    def sha256(self) -> str:
        return self.meta["weights"]["sha256"]

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def input_size(self) -> int:
        """The input height (the side of a square input; older code's one number)."""
        return int(self.meta["input"]["size"][0])

    @property
    def input_hw(self) -> tuple[int, int]:
        return meta_chw(self.meta)[1:]  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        return meta_chw(self.meta)[0]

    @property
    def input_chw(self) -> tuple[int, int, int]:
        """(C, H, W): what every consumer (data loader, pruning, exporters) sizes its tensors by."""
        return meta_chw(self.meta)

    @property
    def color(self) -> str:
        return str(self.meta["input"].get("color", default_color(self.channels)))

    @property
    def scale(self) -> float:
        return float(self.meta["input"].get("scale", DEFAULT_SCALE))

    @property
    def pixel_options(self) -> dict[str, Any]:
        """The data loader's keyword arguments for this model's input (channel order, scale, RGB->gray)."""
        return pixel_options(self.meta)

    @property
    def mean(self) -> list[float]:
        return list(self.meta["input"]["mean"])

    @property
    def std(self) -> list[float]:
        return list(self.meta["input"]["std"])

    @property
    def feature_dim(self) -> int:
        return int(self.meta["feature_dim"])


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _imagenet_state(arch_name: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights from its local cache; never downloads."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(arch_name).DEFAULT
    except (ValueError, KeyError):
        raise WeightsError(f"torchvision has no pretrained weights for {arch_name!r}") from None
    filename = weights.url.rsplit("/", 1)[-1]
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.is_file():
        raise WeightsError(
            f"ImageNet weights for {arch_name} are not in torchvision's cache. This tool never downloads: "
            f"fetch {weights.url} on a connected machine and put it at {path} (or set TORCH_HOME), then retry."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means an unusable file
        raise WeightsError(f"{path} is not a readable torchvision checkpoint ({e}); delete it and fetch it again") from None


def card_architecture(card: Card) -> dict[str, Any]:
    """The ``architecture`` dict of a new bundle: source, name, constructor kwargs and the feature head,
    all explicit, so model.json says how the trunk was made."""
    source = card.architecture.get("source", "torchvision")
    name = card.architecture["name"]
    kwargs = {**default_kwargs(source, name), **dict(card.architecture.get("kwargs") or {})}
    head = card.architecture.get("head")
    user = {k: card.architecture[k] for k in ("code", "output") if card.architecture.get(k) is not None}
    if head is None:
        head = feature_head.default_head(base_network(source, name, kwargs, user.get("code")), source)
    return {"source": source, "name": name, "kwargs": kwargs, "head": dict(head),
            "layer_shapes": {}, "removed_blocks": [], "num_classes": None, **user}


def _trunk_from(net: torch.nn.Module, arch: dict[str, Any]) -> torch.nn.Module:
    """A loaded base network turned into the trunk ``arch`` describes (head applied, graph cut)."""
    feature_head.apply_head(net, arch["head"])
    return feature_head.cut(net, arch["head"], arch["source"])


def pixel_options(meta: dict[str, Any]) -> dict[str, Any]:
    """:class:`~toolchain.data.images.ImageDataset` / ``load_image`` keyword arguments of a model.json's input."""
    inp = meta["input"]
    c = meta_chw(meta)[0]
    return {"color": inp.get("color", default_color(c)), "scale": float(inp.get("scale", DEFAULT_SCALE)),
            "rgb_to_gray": bool(inp.get("rgb_to_gray", False))}


def new_model(card: Card, seed: int = 0, input_size: SizeLike | None = None, weights: str = "random",
              **pixels: Any) -> tuple[FeatureModel, dict[str, Any]]:
    """Build a card's model with seeded random (BN-recalibrated) or ImageNet weights, plus its model.json.

    ``input_size``: an int (square) or (H, W), default the card's. ``pixels``: the input spec's overrides
    (``channels``, ``mean``, ``std``, ``color``, ``scale``, ``rgb_to_gray``; see :func:`input_spec`).
    """
    from toolchain.inputspec import hw

    h, w = hw(input_size if input_size is not None else card.input_hw)
    if min(h, w) < 16:
        raise BundleError(f"--input-size {h}x{w} is too small (at least 16 pixels)")
    spec = input_spec(card, **pixels)
    size = (spec["channels"], h, w)
    arch = card_architecture(card)
    torch.manual_seed(seed)
    if weights == "imagenet":
        if arch["source"] != "torchvision":
            raise WeightsError(f"--weights imagenet needs a torchvision architecture, not {arch['name']}")
        net = base_network("torchvision", arch["name"], arch["kwargs"])
        missing = load_state(net, _imagenet_state(arch["name"]), strict=False).missing_keys
        if missing:  # unexpected keys are the auxiliary classifiers a no-aux trunk leaves out
            raise WeightsError(f"torchvision's {arch['name']} weights lack {', '.join(missing[:5])}: delete the cached file and fetch it again")
        set_input_channels(net, spec["channels"])  # a 1-channel stem gets the sum of the RGB filters
        net = _trunk_from(net, arch)
        model = FeatureModel(net)
    elif weights == "random":
        model = build_model(arch)
        set_input_channels(model.trunk, spec["channels"])
    else:
        raise WeightsError(f"unknown --weights {weights!r}; known: random, imagenet")
    if weights == "random":
        recalibrate_batchnorm(model, size, seed=seed)
    model.eval()
    dim = probe_feature_dim(model, size)
    meta = bundle_meta(card.name, card.description, arch, dim, size, spec["mean"], spec["std"],
                       init={"weights": weights, "seed": seed, "bn_recalibrated": weights == "random"},
                       color=spec["color"], scale=spec["scale"], rgb_to_gray=spec["rgb_to_gray"])
    meta["card"] = card.name
    return model, meta


def input_spec(card: Card | None, channels: int | None = None, mean: Any = None, std: Any = None,
               color: str | None = None, scale: float | None = None, rgb_to_gray: bool = False) -> dict[str, Any]:
    """The input spec of a new bundle: the user's options over the card's, checked (channels 1 or 3, one mean
    and std per channel, a channel order that fits). A card's 3-value ImageNet default becomes its 1-channel
    equivalent for ``channels=1``; a card that declared 3-channel statistics needs ``--mean/--std`` then."""
    from toolchain.bounds import check_float
    from toolchain.inputspec import (CHANNELS, SCALE_RANGE, check_color, imagenet_default, normalization_limit,
                                     per_channel)

    c = int(channels if channels is not None else (card.channels if card else 3))
    if c not in CHANNELS:
        raise BundleError(f"--channels {c}: a model takes 1 (grayscale) or 3 (colour) channels")
    card_c = card.channels if card else 3
    if card is None:
        base_mean, base_std = imagenet_default(c)  # the caller records that this was assumed
    elif c == card_c:
        base_mean, base_std = card.mean, card.std
    elif (not card.input_declared or (tuple(card.mean), tuple(card.std)) == imagenet_default(card_c)):
        base_mean, base_std = imagenet_default(c)  # ImageNet's statistics, for this many channels
    else:
        base_mean = base_std = None
    sc = check_float(scale if scale is not None else (card.scale if card else DEFAULT_SCALE), "--pixel-scale",
                     *SCALE_RANGE, error=BundleError)
    limit = normalization_limit(sc)  # mean/std in raw pixel units when --pixel-scale is 1
    m = per_channel(mean, c, "--mean", BundleError, limit=limit) or base_mean
    s = per_channel(std, c, "--std", BundleError, positive=True, limit=limit) or base_std
    if m is None or s is None:
        raise BundleError(f"the card's mean/std are for {card_c} channel(s); give --mean and --std for {c}")
    col = check_color(color or (card.color if card and c == card_c else default_color(c)), c, BundleError)
    if rgb_to_gray and c != 1:
        raise BundleError("--rgb-to-gray is for a 1-channel model (--channels 1)")
    return {"channels": c, "mean": tuple(m), "std": tuple(s), "color": col, "scale": sc, "rgb_to_gray": bool(rgb_to_gray)}


def bundle_meta(name: str, description: str, arch: dict[str, Any], feature_dim: int, size: SizeLike,
                mean: Any, std: Any, color: str | None = None, scale: float = DEFAULT_SCALE,
                rgb_to_gray: bool = False, **provenance: Any) -> dict[str, Any]:
    """A new bundle's model.json (without ``weights``, which :func:`save_bundle` fills in).

    ``size``: an int (square RGB), (H, W) or (C, H, W)."""
    c, h, w = chw(size)
    inp: dict[str, Any] = {"size": [h, w], "channels": c, "color": color or default_color(c), "layout": "nchw",
                           "mean": [float(v) for v in mean], "std": [float(v) for v in std], "scale": float(scale),
                           "note": f"pixels divided by scale ({float(scale):g}), then (x - mean) / std"}
    if rgb_to_gray:
        inp["rgb_to_gray"] = True  # colour images are converted (ITU-R 601 luma) for this 1-channel model
    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "name": name,
        "description": description,
        "architecture": arch,
        "feature_dim": int(feature_dim),
        "input": inp,
        "provenance": {"created": _now(), "toolchain_version": __version__, "init": None,
                       "parent_sha256": None, "recipe": None, "training": None, "metrics": None, **provenance},
    }


def save_bundle(model: FeatureModel, meta: dict[str, Any], out: str | Path, base_arch: dict[str, Any] | None = None,
                force: bool = False) -> Path:
    """Write a bundle atomically: a failure leaves no half-written folder.

    ``out`` is replaced only if it is new, empty or a bundle (``force`` replaces anything; see
    :func:`toolchain.fsutil.check_output_dir`). The architecture's ``layer_shapes`` are recomputed from the model against the unpruned
    base, so a width-pruned network records exactly the widths that rebuild it.
    """
    from toolchain.models.graph import require_rebuildable

    require_rebuildable(meta, "saving new weights (pruning, fine-tuning, distilling into it)")
    meta = copy.deepcopy(meta)
    arch = meta["architecture"]
    base = build_model({**arch, "layer_shapes": {}, "removed_blocks": arch.get("removed_blocks", []), "num_classes": None})
    arch["layer_shapes"] = changed_shapes(layer_shapes(base.trunk), layer_shapes(model.trunk))
    arch["num_classes"] = model.head.out_features if model.head is not None else None
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    blob = save(state, metadata={"format": BUNDLE_FORMAT})
    out = Path(out)
    with atomic_dir(out, "bundle", force) as tmp:
        if arch.get("code"):  # the user's architecture file travels with every bundle built from it
            from toolchain.models import user_code

            user_code.copy_into(tmp, arch["code"])
        (tmp / WEIGHTS_FILE).write_bytes(blob)
        meta["weights"] = {"file": WEIGHTS_FILE, "sha256": sha256_file(tmp / WEIGHTS_FILE),
                           "size_bytes": len(blob), "num_tensors": len(state),
                           "num_parameters": int(sum(p.numel() for p in model.parameters())),
                           # What ships (the trunk; the training head stays behind), and its non-zeros:
                           # unstructured pruning keeps the shapes, so the non-zero count is what it bought.
                           "deployed_parameters": int(sum(p.numel() for p in model.trunk.parameters())),
                           "deployed_nonzero": int(sum(int(p.count_nonzero()) for p in model.trunk.parameters()))}
        validate_meta(meta, f"the description of {out}")  # e.g. a card named "my model/v2": refuse, don't write
        (tmp / META_FILE).write_text(jsonio.dumps(meta, indent=2) + "\n")
    return out


#: model.json is a few KB (layer widths of a pruned ResNet50 included); far larger is not one.
MAX_META_BYTES = 4 << 20


def save_graph_bundle(graph_file: str | Path, meta: dict[str, Any], out: str | Path, force: bool = False) -> Path:
    """Write a graph-only bundle: the program file as is (under the source's file name) + model.json
    (``out`` replaced on the same terms as :func:`save_bundle`)."""
    from toolchain.models.graph import GRAPH_SOURCES

    meta = copy.deepcopy(meta)
    name = GRAPH_SOURCES.get(meta["architecture"]["source"]).file
    data = Path(graph_file).read_bytes()
    with atomic_dir(Path(out), "bundle", force) as tmp:
        (tmp / name).write_bytes(data)
        meta["weights"] = {"file": name, "sha256": sha256_file(tmp / name), "size_bytes": len(data),
                           "graph_only": True, **meta.get("weights", {})}
        validate_meta(meta, f"the description of {out}")
        (tmp / META_FILE).write_text(jsonio.dumps(meta, indent=2) + "\n")
    return Path(out)


def read_meta(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path} is not a model bundle folder (expected {META_FILE} + {WEIGHTS_FILE}); "
                          "create one with `deploy model init`")
    mj = path / META_FILE
    if not mj.is_file():
        raise BundleError(f"{path} has no {META_FILE}: not a model bundle (create one with `deploy model init`)")
    try:
        meta = jsonio.read(mj, max_bytes=MAX_META_BYTES, error=BundleError, what="bundle description")
    except BundleError as e:
        raise BundleError(f"{e}; the bundle is corrupt") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{mj} is not a toolchain bundle description (format != {BUNDLE_FORMAT!r})")
    if meta.get("format_version") != BUNDLE_VERSION:
        raise BundleError(f"{mj} has bundle format version {meta.get('format_version')}; this toolchain reads {BUNDLE_VERSION}")
    validate_meta(meta, str(mj))
    return meta


def check_bundle_files(path: str | Path, meta: dict[str, Any], verify_hash: bool = True) -> Path:
    """The weights file of the bundle at ``path`` after checking its size and sha256 against ``meta`` (and the
    sha256 of its architecture code copy, if any), without building or running anything. Returns the weights
    file."""
    path = Path(path)
    wfile = path / meta["weights"].get("file", WEIGHTS_FILE)
    if not wfile.is_file():
        raise BundleError(f"{wfile} is missing; the bundle is incomplete")
    expected_size = meta["weights"].get("size_bytes")
    if expected_size is not None and wfile.stat().st_size != expected_size:
        raise BundleError(f"{wfile} is {wfile.stat().st_size} bytes but model.json says {expected_size}: "
                          "truncated or replaced; re-create or re-copy the bundle")
    if verify_hash and sha256_file(wfile) != meta["weights"]["sha256"]:
        raise BundleError(f"{wfile} does not match the sha256 in model.json: the weights were modified or corrupted")
    if meta["architecture"].get("code"):
        from toolchain.models import user_code

        user_code.checked_copy(path, meta["architecture"]["code"])
    return wfile


def load_bundle(path: str | Path, verify_hash: bool = True) -> Bundle:
    """Load and check a bundle. Errors name the file and the problem; nothing is unpickled.

    A bundle whose architecture is the user's own class (``architecture.code``) runs its copy of that file to
    rebuild the network, as importing a Python package would: load such bundles from people you trust.
    :func:`read_meta` + :func:`check_bundle_files` (what ``deploy model info`` uses) never run it."""
    path = Path(path)
    meta = read_meta(path)
    wfile = check_bundle_files(path, meta, verify_hash)
    from toolchain.models import graph

    if graph.is_graph_only(meta["architecture"]):
        model = FeatureModel(graph.build_graph_trunk(meta["architecture"], wfile, meta_chw(meta)))
        model.eval()
        return Bundle(path=path, meta=meta, model=model)
    try:
        state = load_file(str(wfile))
    except (SafetensorError, OSError, ValueError) as e:
        raise BundleError(f"{wfile} is not a readable safetensors file ({e})") from None
    if meta["architecture"].get("code"):  # the bundle's copy of the user's file, checked against its sha256
        from toolchain.models import user_code

        user_code.load_from_bundle(path, meta["architecture"]["code"])
    try:
        model = build_model(meta["architecture"], int(meta["feature_dim"]))
    except Exception as e:  # noqa: BLE001
        raise BundleError(f"cannot rebuild the architecture in {path / META_FILE}: {e}") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    problems = [f"missing {k}" for k in expected if k not in got]
    problems += [f"unexpected {k}" for k in got if k not in expected]
    problems += [f"{k}: file {got[k]} vs architecture {expected[k]}" for k in expected if k in got and got[k] != expected[k]]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... {len(problems) - 8} more" if len(problems) > 8 else "")
        raise BundleError(f"{wfile} does not match the architecture in model.json: {shown}")
    load_state(model, state, strict=True)
    model.eval()
    try:
        dim = probe_feature_dim(model, meta_chw(meta))
    except Exception as e:  # noqa: BLE001 - e.g. an input size the architecture cannot take
        raise BundleError(f"{path / META_FILE}: the rebuilt model does not run at input "
                          f"{'x'.join(map(str, meta_chw(meta)))}: {type(e).__name__}: {str(e)[:200]}") from None
    if dim != meta["feature_dim"]:  # model.json feeds manifests and the apps: it must say what the weights do
        raise BundleError(f"{path / META_FILE} says feature_dim {meta['feature_dim']}, but the weights produce "
                          f"{dim}-d features; the bundle is inconsistent: re-create it")
    return Bundle(path=path, meta=meta, model=model)


def init_bundle(card_or_name: str, out: str | Path, seed: int = 0, input_size: SizeLike | None = None,
                weights: str = "random", force: bool = False, **pixels: Any) -> Path:
    check_output_dir(out, "bundle", force)  # before the model is built: a refusal costs nothing
    card = load_card(card_or_name)
    model, meta = new_model(card, seed=seed, input_size=input_size, weights=weights, **pixels)
    return save_bundle(model, meta, out, force=force)


def derive_meta(parent: Bundle, **provenance: Any) -> dict[str, Any]:
    """model.json for a bundle derived from ``parent`` (pruned, fine-tuned, distilled...)."""
    meta = copy.deepcopy(parent.meta)
    meta.pop("weights", None)
    meta["provenance"] = {**meta.get("provenance", {}), "created": _now(), "toolchain_version": __version__,
                          "parent_sha256": parent.sha256, **provenance}
    return meta
