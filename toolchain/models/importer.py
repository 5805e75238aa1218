"""``deploy model import``: a model trained elsewhere -> a bundle, verified feature for feature.

Kinds of file, chosen by registry from the file (``IMPORTERS``):

* weights (``.safetensors``; ``.pth``/``.pt``/``.ckpt``/``.bin`` read with ``weights_only=True``) with
  ``--arch`` (a card, ``torchvision:NAME``, ``timm:NAME`` or a card ``.toml``): a normal bundle that can be
  pruned, distilled, exported;
* ``.onnx`` (converted by onnx2torch, :mod:`onnx_import`), TorchScript archives and ``torch.export``
  programs (``.pt2``): graph-only bundles (:mod:`graph`).

Weights go through: find the state dict in its wrapper (:mod:`checkpoint`), strip the wrapper prefix,
find the classifier head (``--head-name``, else the final Linear when its width differs from the feature
dimension), compare every key and shape with the architecture (all problems in one error; ``--strict
false`` loads what matches), load, then **verify**: the bundle, read back from disk, must give the
checkpoint model's own features (the input of its classifier, taken with a hook on the full network) on
seeded images. The verification numbers and the source file's sha256 go into ``model.json``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from toolchain import __version__
from toolchain.artifact.compare import cosine_per_sample
from toolchain.artifact.manifest import package_version
from toolchain.errors import ImportModelError, ToolchainError
from toolchain.fsutil import sha256_file
from toolchain.models import feature_head
from toolchain.models.arch import (FeatureModel, base_network, build_model, default_kwargs, load_state,
                                  probe_feature_dim, set_input_channels, smooth_noise)
from toolchain.models.bundle import bundle_meta, load_bundle, save_bundle, save_graph_bundle
from toolchain.models.cards import Card, load_card
from toolchain.models.import_input import check_stem as _check_stem, import_input_spec as _input_spec
from toolchain.models.checkpoint import PICKLE_SUFFIXES, check_tensors, read_checkpoint, strip_prefix
from toolchain.models.graph import open_zip
from toolchain.policy import min_cosine
from toolchain.registry import Registry

VERIFY_SAMPLES = 4
VERIFY_SEED = 4321
#: An imported bundle computes the same operations on the same weights: held to fp32 export parity
#: (policy's one number), anything short of it is a bug.
VERIFY_MIN_COSINE = min_cosine("fp32")
MAX_LISTED = 400
#: ``--strict false`` must still load at least this share of the trunk's tensors: below it the "imported" model
#: is mostly random init, whatever the file held.
MIN_STRICT_FALSE_FRACTION = 0.5


@dataclass
class ImportRequest:
    """What ``deploy model import`` asks for."""

    source: Path
    out: Path
    arch: str | None = None  # card / torchvision:NAME / timm:NAME / .toml (required for weights)
    key: str | None = None
    head_name: str | None = None  # a module (weights) or node (ONNX) name; "none": the output is the feature
    feature_layer: str | None = None  # a module (weights) or value (ONNX) name
    strict: bool = True
    input_size: Any = None  # "H", "HxW", an int or (H, W); stored as (H, W)
    name: str | None = None
    force: bool = False  # replace an existing --out that is not a bundle
    #: the input spec's options (channels, mean, std, color, scale, rgb_to_gray), see ``bundle.input_spec``
    pixels: dict[str, Any] = field(default_factory=dict)
    arch_kwargs: dict[str, Any] | None = None  # --arch-kwargs: constructor arguments (over the card's)
    output: str | int | None = None  # --output NAME|INDEX: the one output of a network that returns several

    def __post_init__(self) -> None:
        self.source, self.out = Path(self.source), Path(self.out)
        for opt, value in (("--feature-layer", self.feature_layer), ("--head-name", self.head_name),
                           ("--key", self.key), ("--name", self.name)):
            if value is not None and not value.strip():
                raise ImportModelError(f"{opt} is empty; give a name, or leave {opt} out")
        from toolchain.models.user_code import parse_output

        self.output = parse_output(self.output)
        if self.arch_kwargs is not None and not isinstance(self.arch_kwargs, dict):
            raise ImportModelError(f"--arch-kwargs must be a JSON object such as '{{\"dim\": 512}}', not "
                                   f"{type(self.arch_kwargs).__name__}")
        if self.input_size is not None:
            from toolchain.inputspec import parse_hw

            if not isinstance(self.input_size, (int, str)):
                self.input_size = "x".join(str(v) for v in self.input_size)
            self.input_size = parse_hw(self.input_size, ImportModelError)


@dataclass
class ImportResult:
    path: Path
    meta: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def record(self) -> dict[str, Any]:
        return self.meta["provenance"]["import"]


Progress = Callable[[str], None]
IMPORTERS: Registry[Callable[[ImportRequest, Progress], ImportResult]] = Registry("model file kind")


def file_kind(path: Path) -> str:
    """``weights``, ``onnx``, ``torchscript`` or ``torch_export``, from the suffix and (zip) contents."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".pt2":
        return "torch_export"
    if suffix in PICKLE_SUFFIXES and zipfile.is_zipfile(path):
        with open_zip(path) as zf:  # TorchScript archives hold code/ and constants.pkl
            if any(n.endswith("/constants.pkl") or "/code/__torch__" in n for n in zf.namelist()):
                return "torchscript"
    if suffix in PICKLE_SUFFIXES or suffix == ".safetensors":
        return "weights"
    raise ImportModelError(f"{path.name}: unknown model file type {suffix!r}; import .safetensors, .pth/.pt/.ckpt "
                           "(a state dict), .onnx, a TorchScript archive or a torch.export .pt2")


def import_model(req: ImportRequest, progress: Progress | None = None) -> ImportResult:
    """Import ``req.source`` as a bundle in ``req.out``. Raises ImportModelError with what to do."""
    from toolchain.fsutil import check_output_dir

    src = Path(req.source)
    if not src.is_file():
        raise ImportModelError(f"{src} does not exist")
    check_output_dir(req.out, "bundle", req.force, "--out")  # before minutes of work, not after
    return IMPORTERS.get(file_kind(src))(req, progress or (lambda msg: None))


# ---------------------------------------------------------------- verification inputs and numbers

def seeded_images(n: int, size: Any, seed: int = VERIFY_SEED) -> torch.Tensor:
    """Normalised-space smooth noise (N, C, H, W) of a size-like ``size``: random but image-like (2x up-sampled)."""
    return smooth_noise(n, size, torch.Generator().manual_seed(seed))


def compare(reference: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    """Per-sample cosine (min) and max-abs difference of two (N, D) feature arrays."""
    ref, got = np.asarray(reference, np.float64), np.asarray(got, np.float64)
    if ref.shape != got.shape:
        return {"status": "failed", "reason": f"shape {list(got.shape)} vs {list(ref.shape)}"}
    cos = cosine_per_sample(ref, got).tolist()
    out = {"samples": len(ref), "cosine_min": min(cos), "max_abs": float(np.abs(ref - got).max()),
           "reference_max_abs": float(np.abs(ref).max())}
    out["status"] = "passed" if out["cosine_min"] >= VERIFY_MIN_COSINE else "failed"
    return out


# ---------------------------------------------------------------- weights + architecture

def _head_for(full: nn.Module, card: Card, req: ImportRequest, tensors: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """(head dict, what was found) for the checkpoint against the full network."""
    source = card.architecture.get("source", "torchvision")
    if req.feature_layer:
        feature_head.find_module(full, req.feature_layer, "--feature-layer")
        return {"kind": "layer", "module": req.feature_layer}, {"rule": "--feature-layer"}
    if req.head_name == "none":
        return {"kind": "none"}, {"rule": "--head-name none: the network's output is the feature"}
    auto = card.architecture.get("head") or feature_head.default_head(full, source)
    if req.head_name:
        mod = feature_head.find_module(full, req.head_name, "--head-name")
        _check_last(full, req.head_name)
        kind = auto["kind"] if req.head_name == auto.get("module") else "drop"
        return {"kind": kind, "module": req.head_name}, {"rule": "--head-name", "type": type(mod).__name__}
    if auto["kind"] == "drop" and isinstance(full.get_submodule(auto["module"]), nn.Linear):
        w = tensors.get(f"{auto['module']}.weight")
        dim = card.feature_dim or full.get_submodule(auto["module"]).in_features
        if w is not None and w.ndim == 2 and int(w.shape[0]) == int(dim):
            return {"kind": "none"}, {"rule": f"final Linear {auto['module']} outputs {dim} = the feature "
                                              "dimension: kept as part of the trunk (an embedding layer)"}
        return auto, {"rule": f"final Linear {auto['module']} (out-features differ from the feature dimension {dim})"}
    return auto, {"rule": f"default head of {card.architecture['name']} ({auto['kind']} {auto.get('module')})"}


def _check_last(full: nn.Module, head: str) -> None:
    """``--head-name`` must name the classifier at the end: no layer with weights may come after it.

    Why: cutting at the first conv fed the stem's input to a batch norm of 16 channels (a traceback); cutting in
    the middle would silently drop most of the network.
    """
    names = [n for n, m in full.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    own = [i for i, n in enumerate(names) if n == head or n.startswith(head + ".")]
    after = names[max(own) + 1:] if own else names
    if after:
        raise ImportModelError(f"--head-name {head!r} is not the classifier at the end of the network: "
                               f"{len(after)} layer(s) with weights follow it ({', '.join(after[:4])}"
                               f"{', ...' if len(after) > 4 else ''}); name the final classifier, or take "
                               "features from an inner layer with --feature-layer")


def _fit_module(full: nn.Module, name: str, tensors: dict[str, torch.Tensor]) -> None:
    """Re-create a Linear/Conv head with the checkpoint's shape (e.g. 550 classes) so the full network loads it."""
    mod = full.get_submodule(name)
    w = tensors.get(f"{name}.weight")
    if w is None and not isinstance(mod, nn.Sequential):
        return
    if isinstance(mod, nn.Linear) and w.ndim == 2 and tuple(w.shape) != tuple(mod.weight.shape):
        feature_head.replace_module(full, name, nn.Linear(int(w.shape[1]), int(w.shape[0]), f"{name}.bias" in tensors))
    elif isinstance(mod, nn.Sequential):
        for child, _ in mod.named_children():
            _fit_module(full, f"{name}.{child}", tensors)
    elif isinstance(mod, nn.Conv2d) and w.ndim == 4 and tuple(w.shape) != tuple(mod.weight.shape):
        feature_head.replace_module(full, name, nn.Conv2d(int(w.shape[1]) * mod.groups, int(w.shape[0]), mod.kernel_size,
                                                    mod.stride, mod.padding, mod.dilation, mod.groups,
                                                    f"{name}.bias" in tensors))


def _num_classes(full: nn.Module, head: dict) -> int | None:
    if head.get("kind") not in ("drop", "pool"):
        return None
    mod = full.get_submodule(head["module"])
    layers = [m for m in mod.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not layers:
        return None
    last = layers[-1]
    return int(last.out_features if isinstance(last, nn.Linear) else last.out_channels)


class _Capture:
    """The checkpoint model's features: the head module's input (drop), pooled (pool), or a layer's output."""

    def __init__(self, full: nn.Module, head: dict) -> None:
        self.value: torch.Tensor | None = None
        self.kind = kind = head.get("kind")
        if kind in ("drop", "pool"):
            self.handle = full.get_submodule(head["module"]).register_forward_pre_hook(self._pre)
        elif kind == "layer":
            self.handle = full.get_submodule(head["module"]).register_forward_hook(self._post)
        else:
            self.handle = full.register_forward_hook(self._post)

    def _pre(self, module: nn.Module, args: tuple) -> None:
        self.value = args[0]

    def _post(self, module: nn.Module, args: tuple, out: Any) -> None:
        self.value = out

    def features(self) -> torch.Tensor:
        assert self.value is not None
        if self.kind == "none":  # the network's own output: a map picked with --output is compared as a map
            return self.value
        return feature_head.global_pool(self.value)


def _problems(expected: dict[str, tuple], got: dict[str, torch.Tensor], dropped: set[str],
              outside: list[str]) -> dict[str, list[str]]:
    missing = sorted(k for k in expected if k not in got)
    unexpected = sorted([k for k in got if k not in expected and k not in dropped] + outside)
    mismatched = sorted(f"{k}: checkpoint {list(got[k].shape)} vs architecture {list(expected[k])}"
                        for k in expected if k in got and tuple(got[k].shape) != tuple(expected[k]))
    return {"missing": missing, "unexpected": unexpected, "shape_mismatched": mismatched}


def _problem_text(problems: dict[str, list[str]]) -> str:
    parts = []
    for kind, keys in problems.items():
        if keys:
            shown = keys[:MAX_LISTED]
            more = f" ... and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else ""
            parts.append(f"{len(keys)} {kind.replace('_', '-')}: " + ", ".join(shown) + more)
    return "; ".join(parts)


@IMPORTERS.register("weights")
def import_weights(req: ImportRequest, say: Progress) -> ImportResult:
    if not req.arch:
        raise ImportModelError(f"{req.source.name} holds weights only: say which architecture with --arch "
                               "(a card such as resnet50_ocular, torchvision:NAME, timm:NAME or a card .toml)")
    card = load_card(req.arch)
    source = card.architecture.get("source", "torchvision")
    name = card.architecture["name"]
    user_kwargs = {**dict(card.architecture.get("kwargs") or {}), **(req.arch_kwargs or {})}
    code = card.architecture.get("code")
    output = req.output if req.output is not None else card.architecture.get("output")
    ckpt = read_checkpoint(req.source, req.key)
    check_tensors(ckpt.tensors, req.source.name)
    say(f"read {len(ckpt.tensors)} tensors" + (f" from {ckpt.wrapper_key!r}" if ckpt.wrapper_key else ""))
    # The checkpoint model: the library's own network (auxiliary classifiers included), fitted to the file.
    full = base_network(source, name, user_kwargs, code)
    spec, preprocessing = _input_spec(req, card)
    set_input_channels(full, spec["channels"])
    if output is not None:
        from toolchain.models.user_code import select_output

        select_output(full, output)
    tensors, prefix, outside = strip_prefix(ckpt.tensors, full.state_dict().keys())
    _check_stem(full, tensors, spec["channels"], req)
    head, found = _head_for(full, card, req, tensors)
    if head.get("kind") in ("drop", "pool"):
        _fit_module(full, head["module"], tensors)
    num_classes = _num_classes(full, head)
    arch = {"source": source, "name": name, "kwargs": {**default_kwargs(source, name), **user_kwargs},
            "head": head, "layer_shapes": {}, "removed_blocks": [], "num_classes": None,
            **({"code": code} if code else {}), **({"output": output} if output is not None else {})}
    if head["kind"] == "none":  # a kept final layer may have its own width (an embedding): adopt the file's
        for mod_name, mod in full.named_modules():
            w = tensors.get(f"{mod_name}.weight")
            if isinstance(mod, nn.Linear) and w is not None and w.ndim == 2 and tuple(w.shape) != tuple(mod.weight.shape):
                feature_head.replace_module(full, mod_name, nn.Linear(int(w.shape[1]), int(w.shape[0]), mod.bias is not None))
                arch["layer_shapes"][mod_name] = {"in": int(w.shape[1]), "out": int(w.shape[0])}
    trunk_model = build_model(arch)
    set_input_channels(trunk_model.trunk, spec["channels"])  # recorded in layer_shapes by save_bundle
    trunk_keys = {k[len("trunk."):]: tuple(v.shape) for k, v in trunk_model.state_dict().items()}
    full_keys = {k: tuple(v.shape) for k, v in full.state_dict().items()}
    dropped = {k for k in tensors if k in full_keys and k not in trunk_keys}
    problems = _problems(trunk_keys, tensors, dropped, outside)
    text = _problem_text(problems)
    if text and req.strict:
        raise ImportModelError(f"{req.source.name} does not match {source}:{name} ({found['rule']}): {text}. "
                               "Check --arch; pick the weights with --key, the classifier with --head-name; or "
                               "--strict false to load what matches")
    if text:
        say(f"--strict false: {text}")
    usable = {k: v for k, v in tensors.items() if k in trunk_keys and tuple(v.shape) == trunk_keys[k]}
    if len(usable) < MIN_STRICT_FALSE_FRACTION * len(trunk_keys):
        raise ImportModelError(f"--strict false: {req.source.name} gives {len(usable)} of the {len(trunk_keys)} "
                               f"tensors of {source}:{name} ({len(usable) / max(len(trunk_keys), 1):.0%}; at least "
                               f"{MIN_STRICT_FALSE_FRACTION:.0%} needed), so it would be an untrained model; check "
                               "--arch and --key")
    load_state(trunk_model.trunk, usable, strict=False)
    # The checkpoint model gets the same tensors (plus its head), so both sides agree even under --strict false.
    ref_state = {**{k: v for k, v in trunk_model.trunk.state_dict().items() if k in full_keys},
                 **{k: v for k, v in tensors.items() if k in full_keys and tuple(v.shape) == full_keys[k]}}
    load_state(full, ref_state, strict=False)
    head_weights = None
    if head["kind"] == "drop" and isinstance(full.get_submodule(head["module"]), nn.Linear):
        lin = full.get_submodule(head["module"])
        if f"{head['module']}.weight" in tensors:
            head_weights = lin
    full.eval()
    trunk_model.eval()
    size = (spec["channels"], *(req.input_size or card.input_hw))
    x = seeded_images(VERIFY_SAMPLES, size)
    dim = _probe(trunk_model, x, f"{source}:{name}", head, output, req.strict)
    model: FeatureModel = trunk_model
    if head_weights is not None and head_weights.in_features == dim:
        # Kept for training (fine-tuning, KD logits); the deployed trunk never runs it.
        model = FeatureModel(trunk_model.trunk, head_weights.out_features, dim)
        model.head.load_state_dict(head_weights.state_dict())
        arch["num_classes"] = head_weights.out_features
        model.eval()
    record = {
        "source_file": req.source.name, "source_sha256": sha256_file(req.source), "kind": "weights",
        "arch": req.arch, "wrapper_key": ckpt.wrapper_key, "other_wrapper_keys": ckpt.candidates,
        "prefix_stripped": prefix or None, "strict": req.strict,
        "head": {**head, "found_by": found["rule"], "num_classes": num_classes,
                 "kept_as_training_head": arch["num_classes"] is not None},
        "dropped_tensors": len(dropped), "dropped_modules": sorted({k.rsplit(".", 1)[0] for k in dropped})[:40],
        "problems": problems if text else None, "preprocessing": preprocessing,
    }
    cap = _Capture(full, head)
    with torch.no_grad():
        _run(full, x, f"{source}:{name}", req.strict)
        ref = cap.features().numpy()
        got = _run(model, x, f"{source}:{name}", req.strict).numpy()
    cap.handle.remove()
    check = compare(ref, got)
    if check["status"] != "passed":
        raise ImportModelError(f"import check failed: the bundle's features differ from the checkpoint model's "
                               f"({check}); this is a toolchain bug for {source}:{name}, please report it")
    meta = bundle_meta(req.name or card.name, card.description or f"imported from {req.source.name}", arch, dim,
                       size, spec["mean"], spec["std"], color=spec["color"], scale=spec["scale"],
                       rgb_to_gray=spec["rgb_to_gray"], init=None, imported=True)
    meta["card"] = card.name
    say(f"features verified: cosine {check['cosine_min']:.7f}, max-abs {check['max_abs']:.2e}")
    return _save_and_reverify(model, meta, record, check, req, x, got)


def _run(net: nn.Module, x: torch.Tensor, what: str, strict: bool = True) -> Any:
    """``net(x)``; a network whose layers do not connect (a wrong architecture, an input size it cannot take) is one
    ImportModelError, not torch's ``mat1 and mat2 shapes cannot be multiplied``."""
    try:
        with torch.no_grad():
            return net(x)
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        hint = ("--strict false kept the architecture's own random layers where the file's shapes differ, so its "
                "layers no longer connect: the file is not this architecture; " if not strict else "")
        raise ImportModelError(f"{what} does not run on a {list(x.shape[1:])} input with these weights "
                               f"({type(e).__name__}: {first}); {hint}check --arch, --arch-kwargs and "
                               "--input-size") from None


def _probe(model: nn.Module, x: torch.Tensor, what: str, head: dict, output: str | int | None, strict: bool) -> int:
    """The number of feature values per image; refuses several outputs (without --output) and, unless --output
    picked it, a map: a detector's or segmenter's map is not one feature vector, and pooling it would hide that."""
    from toolchain.models import user_code

    model.eval()
    out = _run(model, x[:1], what, strict)
    if user_code.is_several(out):
        raise ImportModelError(f"{what} returns {len(out)} outputs ({user_code.describe(out)}); pick the feature "
                               "with --output NAME|INDEX")
    if head.get("kind") == "none" and out.dim() > 2 and output is None:
        raise ImportModelError(f"{what} returns a map of shape {list(out.shape)}, not one feature vector per image; "
                               "--output 0 takes it as it is (compared as a map, over all its values), or "
                               "--feature-layer NAME takes a pooled inner layer")
    return int(out[0].numel())


def _save_and_reverify(model: FeatureModel, meta: dict, record: dict, check: dict, req: ImportRequest,
                       x: torch.Tensor, got: np.ndarray, graph_file: Path | None = None) -> ImportResult:
    import shutil

    record["verification"] = {**check, "seed": VERIFY_SEED, "inputs": "seeded smooth noise in normalised space",
                              "against": record.get("verified_against", "the checkpoint model (PyTorch)")}
    meta["provenance"]["import"] = record
    meta["provenance"]["toolchain_version"] = __version__
    if graph_file is not None:  # what save_bundle records for weights, for `deploy model info` and reports
        params = list(model.trunk.parameters()) + [b for b in model.trunk.buffers() if b.is_floating_point()]
        n = int(sum(p.numel() for p in model.trunk.parameters()))
        meta["weights"] = {"num_parameters": n, "deployed_parameters": n,
                           "deployed_nonzero": int(sum(int(p.count_nonzero()) for p in model.trunk.parameters())),
                           "num_tensors": len(params)}
    path = (save_graph_bundle(graph_file, meta, req.out, force=req.force) if graph_file is not None
            else save_bundle(model, meta, req.out, force=req.force))
    b = load_bundle(path)
    with torch.no_grad():
        again = b.model(x).numpy()
    if not np.allclose(again, got, rtol=1e-5, atol=1e-6):
        shutil.rmtree(path, ignore_errors=True)
        raise ImportModelError("the bundle read back from disk does not reproduce the imported features; "
                               "nothing was kept (a toolchain bug, please report it)")
    return ImportResult(path, b.meta)


# ---------------------------------------------------------------- graph-only files

def _preprocessing(req: ImportRequest, file_chw: tuple | None) -> tuple[str, str, tuple[int, int, int], dict, dict]:
    """(name, description, (C, H, W), input spec, its provenance record) of a graph-only import: the file's
    own channels and size where it fixes them, else the options', else the card's."""
    card = load_card(req.arch) if req.arch else None
    c, h, w = file_chw if file_chw is not None else (None, None, None)
    hw = req.input_size or ((h, w) if h and w else None) or (card.input_hw if card else None)
    if not hw:
        raise ImportModelError(f"{req.source.name} does not say its input size: give --input-size (H or HxW)")
    if h and w and (h, w) != tuple(hw):
        raise ImportModelError(f"{req.source.name} takes {h}x{w} images, not --input-size {hw[0]}x{hw[1]}")
    spec, record = _input_spec(req, card, c)
    name = req.name or (card.name if card else req.source.stem)
    return name, (card.description if card else ""), (spec["channels"], *hw), spec, record


@IMPORTERS.register("onnx")
def import_onnx(req: ImportRequest, say: Progress) -> ImportResult:
    from toolchain.models import onnx_import

    model_proto = onnx_import.load(req.source)
    shape = onnx_import.input_shape(model_proto)
    if len(shape) != 4 or (shape[1] not in (None, 1, 3)):
        raise ImportModelError(f"{req.source.name} takes input of shape {shape}; a feature extractor takes (N, C, H, W) "
                               "with C 1 or 3")
    name, desc, size, spec, preprocessing = _preprocessing(req, (shape[1], shape[2], shape[3]))
    picked = onnx_import.choose_output(model_proto, req.source.name, req.output,
                                       cut=bool(req.head_name or req.feature_layer))
    head = (onnx_import.OnnxHead(picked) if picked is not None
            else onnx_import.find_head(model_proto, req.head_name, req.feature_layer))
    say(f"ONNX classifier: {head.head_node or 'none'}; features from {head.feature_value or 'the graph output'}")
    arch = {"source": "onnx", "name": req.source.stem, "feature_value": head.feature_value,
            "head": {"node": head.head_node, "num_classes": head.num_classes}, "graph_only": True,
            **({"pool": False} if picked is not None else {})}  # --output: feature_value is that output
    import tempfile

    from toolchain.models.graph import build_graph_trunk

    # The bundle keeps one self-contained file: external data (torch's exporter writes NAME.onnx.data) inlined.
    tmpdir = tempfile.TemporaryDirectory()
    graph_file = Path(tmpdir.name) / "model.onnx"
    try:
        import onnx

        onnx.save(model_proto, str(graph_file), save_as_external_data=False)
    except ValueError as e:
        raise ImportModelError(f"{req.source.name} is too large for one ONNX file ({e}); not supported") from None
    trunk = build_graph_trunk(arch, graph_file, size)
    model = FeatureModel(trunk).eval()
    x = seeded_images(VERIFY_SAMPLES, size)
    with torch.no_grad():
        got = model(x).numpy()
    ref, runtime = onnx_import.ort_features(req.source, head.feature_value, x.numpy(), picked is None)
    check = compare(ref, got)
    if check["status"] != "passed":
        raise ImportModelError(f"onnx2torch's conversion of {req.source.name} does not match ONNX Runtime "
                               f"(cosine {check.get('cosine_min')}); not imported")
    record = {"source_file": req.source.name, "source_sha256": sha256_file(req.source), "kind": "onnx",
              "converter": f"onnx2torch {package_version('onnx2torch')}", "head": arch["head"],
              "verified_against": f"{runtime} on the original file", "preprocessing": preprocessing}
    meta = bundle_meta(name, desc or f"imported from {req.source.name}", arch, got[0].size, size, spec["mean"],
                       spec["std"], color=spec["color"], scale=spec["scale"], rgb_to_gray=spec["rgb_to_gray"],
                       init=None, imported=True)
    say(f"parity against {runtime}: cosine {check['cosine_min']:.7f}")
    try:
        return _save_and_reverify(model, meta, record, check, req, x, got, graph_file=graph_file)
    finally:
        tmpdir.cleanup()


def _import_program(source: str) -> Callable[[ImportRequest, Progress], ImportResult]:
    def run(req: ImportRequest, say: Progress) -> ImportResult:
        from toolchain.models.graph import GRAPH_SOURCES, build_graph_trunk

        if req.head_name not in (None, "none") or req.feature_layer:
            raise ImportModelError(f"a {GRAPH_SOURCES.get(source).what} is a fixed graph: --head-name and "
                                   "--feature-layer cannot cut it; save a program that returns the features")
        from toolchain.models.graph import pt2_input_size

        name, desc, size, spec, preprocessing = _preprocessing(
            req, pt2_input_size(req.source) if source == "torch_export" else None)
        arch = {"source": source, "name": req.source.stem, "graph_only": True, "head": {"kind": "none"},
                **({"output": req.output} if req.output is not None else {})}
        trunk = build_graph_trunk(arch, req.source, size)
        model = FeatureModel(trunk).eval()
        x = seeded_images(VERIFY_SAMPLES, size)
        ref = _reference_program(source, req.source, x, req.output)
        with torch.no_grad():
            got = model(x).numpy()
        check = compare(ref, got)
        if check["status"] != "passed":
            raise ImportModelError(f"{req.source.name}: the converted program differs from the original "
                                   f"(cosine {check.get('cosine_min')}); not imported")
        if got.ndim != 2 and req.output is None:
            raise ImportModelError(f"{req.source.name} returns a map of shape {list(got.shape)}, not one feature "
                                   "vector per image; --output 0 takes it as it is (compared as a map, over all its "
                                   "values)")
        record = {"source_file": req.source.name, "source_sha256": sha256_file(req.source), "kind": source,
                  "verified_against": f"the original {GRAPH_SOURCES.get(source).what} run by torch",
                  "preprocessing": preprocessing}
        meta = bundle_meta(name, desc or f"imported from {req.source.name}", arch, got[0].size, size, spec["mean"],
                           spec["std"], color=spec["color"], scale=spec["scale"], rgb_to_gray=spec["rgb_to_gray"],
                           init=None, imported=True)
        return _save_and_reverify(model, meta, record, check, req, x, got, graph_file=req.source)
    return run


def _reference_program(source: str, path: Path, x: torch.Tensor, output: str | int | None = None) -> np.ndarray:
    """The original program, run as torch loads it (one sample at a time: programs are often batch-1)."""
    from toolchain.models import graph

    if source == "torchscript":
        prog = torch.jit.load(str(path), map_location="cpu").eval()
    else:
        graph.check_pt2(path)
        try:
            prog = graph.export_load(path).module()
        except Exception as e:  # noqa: BLE001 - a damaged archive fails inside torch's zip reader in many ways
            raise ImportModelError(f"{path.name} cannot be loaded as a torch.export program "
                                   f"({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    from toolchain.models.user_code import pick

    try:
        with torch.no_grad():
            return np.concatenate([pick(prog(x[i:i + 1]), output, path.name, ImportModelError).numpy()
                                   for i in range(len(x))])
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        raise ImportModelError(f"{path.name}: the program fails on a {tuple(x.shape[1:])} image "
                               f"({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None


IMPORTERS.add("torchscript", _import_program("torchscript"))
IMPORTERS.add("torch_export", _import_program("torch_export"))


__all__ = ["ImportRequest", "ImportResult", "import_model", "IMPORTERS", "ToolchainError"]
