"""What compression bought: parameters, non-zeros, compression ratio, FLOPs, bytes on disk, artifact sizes.

* ``parameters`` / ``nonzero_parameters``: of the deployed network (the trunk; the training head
  is not shipped). ``compression_deployed = parameters_ref / nonzero_parameters`` against a
  reference (default: the model itself, i.e. total / non-zero); ``compression_ratio`` is the
  same number under its older name.
* ``shrinkbench_parameters`` / ``shrinkbench_nonzero_parameters``: of the whole model, the
  classification head included, as ShrinkBench's ``metrics/size.py`` ``model_size`` counts;
  ``compression_shrinkbench = shrinkbench_parameters_ref / shrinkbench_nonzero_parameters``
  (ShrinkBench's ``experiment/prune.py`` ``pruning_metrics``: ``size / size_nz``). A model without
  a head gives the same number both ways.
* ``flops``: dense FLOPs of one image (``torch.utils.flop_counter``; a multiply-add counts 2).
  ``effective_flops`` scales each convolution / linear layer by the fraction of its weights that
  are non-zero (what a sparse kernel would execute); ``theoretical_speedup = flops_ref /
  effective_flops`` (ShrinkBench's definition). Unstructured sparsity makes no runtime here
  faster (see FINDINGS): it is a bound, not a measurement.
* ``dense_bytes``: the safetensors file of the deployed network; ``gzip_bytes``: the same,
  gzip-compressed (level 6) — zeros compress, so this is what sparsity buys on disk.
"""

from __future__ import annotations

import gzip
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import nn

from toolchain.inputspec import chw
from toolchain.compress.pruning.masks import (
    count_parameters,
    deployed,
    shrinkbench_size,
)


@dataclass
class Measurement:
    parameters: int
    nonzero_parameters: int
    compression_ratio: float
    flops: int
    effective_flops: int
    theoretical_speedup: float
    dense_bytes: int
    gzip_bytes: int
    input_size: int
    reference: dict[str, int] | None = None
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    shrinkbench_parameters: int = 0
    shrinkbench_nonzero_parameters: int = 0
    compression_shrinkbench: float = 1.0
    input_chw: list[int] | None = None  # (C, H, W) the FLOPs were counted at; input_size is H

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero_parameters / max(self.parameters, 1)

    @property
    def compression_deployed(self) -> float:
        return self.compression_ratio

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "sparsity": round(self.sparsity, 6),
                "compression_ratio": round(self.compression_ratio, 4),
                "compression_deployed": round(self.compression_ratio, 4),
                "compression_shrinkbench": round(self.compression_shrinkbench, 4),
                "theoretical_speedup": round(self.theoretical_speedup, 4)}


@torch.no_grad()
def count_flops(model: nn.Module, input_size: Any) -> tuple[int, int]:
    """(dense, effective) FLOPs of one image through the deployed network; ``input_size``: an int (square RGB),
    (H, W) (RGB) or (C, H, W).

    Effective FLOPs scale each conv/linear layer's count by its weights' density.

    >>> lin = nn.Sequential(nn.Flatten(), nn.Linear(3, 2, bias=False))
    >>> lin[1].weight.data = torch.tensor([[1., 0, 0], [0, 0, 2]])
    >>> count_flops(lin, 1)  # 2 * 3 inputs * 2 outputs = 12 dense; 2 of 6 weights non-zero -> 4
    (12, 4)
    """
    import logging

    # "triton not found" on CPU, logged when the module is first imported: silence it before that
    logging.getLogger("torch.utils.flop_counter").setLevel(logging.ERROR)
    from torch.utils.flop_counter import FlopCounterMode
    net = deployed(model)
    was = net.training
    net.eval()
    mode = FlopCounterMode(display=False)
    with mode:
        net(torch.zeros(1, *chw(input_size)))
    dense = int(mode.get_total_flops())
    per_module = mode.get_flop_counts()  # keys: "<RootClass>.<module path>"
    root = type(net).__name__
    effective = float(dense)
    for name, m in net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Linear)):
            flops = sum(per_module.get(f"{root}.{name}" if name else root, {}).values())
            density = float(torch.count_nonzero(m.weight)) / m.weight.numel()
            effective -= flops * (1.0 - density)  # pools, adds, BN stay dense
    net.train(was)
    return dense, int(round(effective))


def state_bytes(model: nn.Module) -> tuple[int, int]:
    """(dense safetensors bytes, gzip'd bytes) of the deployed network's state."""
    state = {k: v.detach().contiguous().cpu() for k, v in deployed(model).state_dict().items()}
    blob = save(state)
    return len(blob), len(gzip.compress(blob, compresslevel=6))


def measure_model(model: nn.Module, input_size: Any, reference: nn.Module | None = None) -> Measurement:
    """Measure ``model`` (a FeatureModel or any module taking NCHW images), optionally against a reference.

    Args:
        model: the compressed network.
        input_size: square input side in pixels, (H, W) or (C, H, W) (FLOPs scale with H x W).
        reference: the uncompressed network (e.g. the teacher) for ratio and speedup; default: ``model``.
    """
    total, nz = count_parameters(model)
    sb_total, sb_nz = shrinkbench_size(model)
    flops, eff = count_flops(model, input_size)
    dense_b, gz_b = state_bytes(model)
    ref = None
    ref_total, ref_flops, ref_sb_total = total, flops, sb_total
    if reference is not None:
        ref_total, ref_nz = count_parameters(reference)
        ref_sb_total, ref_sb_nz = shrinkbench_size(reference)
        ref_flops, _ = count_flops(reference, input_size)
        ref = {"parameters": ref_total, "nonzero_parameters": ref_nz, "flops": ref_flops,
               "shrinkbench_parameters": ref_sb_total, "shrinkbench_nonzero_parameters": ref_sb_nz}
    return Measurement(total, nz, ref_total / max(nz, 1), flops, eff, ref_flops / max(eff, 1), dense_b, gz_b,
                       chw(input_size)[1], ref, shrinkbench_parameters=sb_total, shrinkbench_nonzero_parameters=sb_nz,
                       compression_shrinkbench=ref_sb_total / max(sb_nz, 1), input_chw=list(chw(input_size)))


def measure_bundle(bundle_dir: str | Path, reference_dir: str | Path | None = None) -> Measurement:
    """:func:`measure_model` on a bundle (and its reference bundle, e.g. the teacher or the parent)."""
    from toolchain.models.bundle import load_bundle

    b = load_bundle(bundle_dir)
    ref = load_bundle(reference_dir).model if reference_dir is not None else None
    return measure_model(b.model, b.input_chw, ref)


def artifact_sizes(outcomes: list[Any]) -> dict[str, dict[str, Any]]:
    """Artifact name -> size and parity, from ``toolchain.export.base.export_bundle`` outcomes."""
    from toolchain.fsutil import size_bytes

    out = {}
    for o in outcomes:
        m = o.manifest  # toolchain.artifact.manifest.Manifest
        out[o.folder.name] = {"format": m.format, "precision": m.precision,
                              "size_bytes": size_bytes(o.folder / m.file), "parity": m.parity.status}
    return out


def measure_artifacts(bundle_dir: str | Path, targets: list[str], out: str | Path, compress: str | None = None,
                      devices: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Export ``bundle_dir`` to each target through ``deploy export`` (parity checked) and report artifact sizes.

    ``compress`` applies to Core ML only (``sparse`` stores the zeros of a pruned bundle losslessly).
    """
    from toolchain.export.base import ExportRequest, export_bundle
    from toolchain.artifact.formats import get_format

    sizes: dict[str, dict[str, Any]] = {}
    for target in targets:
        req = ExportRequest(bundle_dir=Path(bundle_dir), target=target, out=Path(out) / target, devices=devices or [],
                            compress=compress if get_format(target).weight_compression else None)
        sizes.update(artifact_sizes(export_bundle(req)))
    return sizes
