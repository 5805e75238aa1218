"""coremltools torch-frontend op overrides, registered by the Core ML exporter before it converts.

coremltools 9.0's ``aten::Int`` / ``aten::Bool`` converter (``frontend/torch/ops.py`` ``_cast``) calls
``int(x.val)`` on a compile-time constant. When the constant is a shape value traced as a 1-element array
(``x.view(x.size(0), -1)``, torchvision ``shufflenet_v2_*``'s channel shuffle), NumPy 2.4 refuses:
``TypeError: only 0-dimensional arrays can be converted to Python scalars`` (NumPy deprecated the
conversion in 1.25 and made it an error in 2.4). Upstream: apple/coremltools#2633, fixed by PR #2632 after
the 9.0 release. Pinning NumPy < 2.4 would hold back every other package; the override below is the same
fix as upstream's (take the one element with ``.item()``), registered with ``override=True`` so it replaces
only these two converters, and is a no-op once coremltools ships the fix (the behaviour is identical).

Example: a constant ``np.array([8])`` cast by ``aten::Int`` becomes the scalar const ``8``.

It also replaces ``aten::prelu`` (:func:`prelu`): upstream's refuses a per-channel PReLU after a Linear on every
Core ML target; this one computes it at rank 4.

The same module replaces one graph pass. ``common::fuse_elementwise_to_batchnorm`` folds a ``mul`` by a
(1, C, 1, 1) constant followed by an ``add`` into a ``batch_norm`` with mean 0 and variance 1, but leaves its
epsilon at the default 1e-5, so the fused op multiplies by ``gamma / sqrt(1 + 1e-5)``: a 5e-6 gain error
on every Core ML export, because the deploy module's input normalisation (``x * scale + bias``) is exactly
that pattern. Most networks do not notice; timm's EfficientNet-B0 with random weights amplifies it to cosine
0.99946 against PyTorch (fp32 parity asks 0.99999; measured in ``benchmarks/architectures.py``).
:func:`pass_pipeline` is coremltools' default pipeline with that pass swapped for
:class:`fuse_elementwise_to_batchnorm_exact`, the same fusion with variance ``1 - epsilon`` so the divisor
is 1. No upstream issue was found for it (searched 2026-12-03).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_REGISTERED = False
#: coremltools' pass that :func:`pass_pipeline` replaces, and the name of the replacement.
UPSTREAM_FUSE_PASS = "common::fuse_elementwise_to_batchnorm"
EXACT_FUSE_PASS = "toolchain::fuse_elementwise_to_batchnorm_exact"


def scalar(val: Any, dtype: type) -> Any:
    """The one element of a scalar or 1-element array as a Python ``dtype``.

    >>> scalar(np.array([8]), int), scalar(np.array(1.0), bool)
    (8, True)
    """
    arr = np.asarray(val)
    if arr.size != 1:
        raise ValueError(f"cast of a {arr.shape} tensor: only a scalar or a 1-element tensor can be cast")
    return dtype(arr.reshape(()).item())


def _cast(context: Any, node: Any, dtype: type, dtype_name: str) -> None:
    """coremltools' ``_cast`` with the NumPy-2.4-safe constant fold; otherwise the same MIL ops."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs

    x = _get_inputs(context, node, expected=1)[0]
    if not (len(x.shape) == 0 or all(d == 1 for d in x.shape)):
        raise ValueError("input to cast must be either a scalar or a length 1 tensor")
    if x.can_be_folded_to_const():
        res = x if isinstance(x.val, dtype) else mb.const(val=scalar(x.val, dtype), name=node.name)
    elif len(x.shape) > 0:
        res = mb.cast(x=mb.squeeze(x=x, name=node.name + "_item"), dtype=dtype_name, name=node.name)
    else:
        res = mb.cast(x=x, dtype=dtype_name, name=node.name)
    context.add(res, node.name)


def prelu(context: Any, node: Any) -> None:
    """``aten::prelu`` whose per-channel alpha works on a (N, C) or (N, C, L) input (PReLU after a Linear).

    coremltools 9 (``frontend/torch/ops.py`` ``prelu``) expands a rank-2 input only to rank 3, and MIL's
    ``prelu`` then refuses: "rank 3 or rank 5 input is only supported when all the values of alpha are same".
    Here a rank-2 or rank-3 input is expanded with trailing unit axes to rank 4, (N, C, 1, 1), where one alpha
    per channel is what ``prelu`` computes, and squeezed back; every other rank goes as upstream.
    E.g. x = [[-2, 3]], alpha = [0.5, 0.1] -> [[-1, 3]].
    """
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs

    x, alpha = _get_inputs(context, node, expected=2)
    if x.rank < 2:
        raise ValueError(f"prelu on a rank-{x.rank} input: only (N, C, ...) inputs are converted")
    a = np.ones((x.shape[1],), np.float32) * np.asarray(alpha.val, np.float32)
    if x.rank in (2, 3):
        axes = list(range(x.rank, 4))
        y = mb.prelu(x=mb.expand_dims(x=x, axes=axes, name=node.name + "_rank4"), alpha=a, name=node.name + "_prelu")
        context.add(mb.squeeze(x=y, axes=axes, name=node.name))
    else:
        context.add(mb.prelu(x=x, alpha=a, name=node.name))


def register() -> None:
    """Install the overrides once per process (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from coremltools.converters.mil.frontend.torch.torch_op_registry import register_torch_op

    def _int(context: Any, node: Any) -> None:
        _cast(context, node, int, "int32")

    def _bool(context: Any, node: Any) -> None:
        _cast(context, node, bool, "bool")

    register_torch_op(_int, torch_alias=["int"], override=True)
    register_torch_op(_bool, torch_alias=["bool"], override=True)
    register_torch_op(prelu, override=True)
    _register_exact_fuse_pass()
    _REGISTERED = True


def _register_exact_fuse_pass() -> None:
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil.passes.defs.optimize_elementwise_binary import (
        fuse_elementwise_to_batchnorm as upstream,
    )
    from coremltools.converters.mil.mil.passes.pass_registry import register_pass

    class fuse_elementwise_to_batchnorm_exact(upstream):  # noqa: N801 - coremltools names passes by class
        """``mul(x, gamma)`` + ``add(., beta)`` -> ``batch_norm`` computing exactly ``gamma * x + beta``."""

        @staticmethod
        def _try_to_transform(mul_op: Any, add_op: Any, block: Any) -> bool:
            x = mul_op.x if mul_op.x.val is None else mul_op.y
            gamma = mul_op.x.val if mul_op.x.val is not None else mul_op.y.val
            beta = add_op.x.val if add_op.x.val is not None else add_op.y.val
            if x.rank != 4 or not all(isinstance(v, np.ndarray) and _per_channel(v) for v in (gamma, beta)):
                return False
            c = gamma.shape[-3]
            if c == 1 or beta.shape[-3] != c:
                return False
            eps = np.float32(1e-5)
            out = mb.batch_norm(x=x, mean=np.zeros((c,), np.float32), variance=np.full((c,), 1 - eps, np.float32),
                                gamma=np.squeeze(gamma).astype(np.float32), beta=np.squeeze(beta).astype(np.float32),
                                epsilon=float(eps), name=add_op.outputs[0].name, before_op=mul_op)
            add_op.enclosing_block.replace_uses_of_var_after_op(anchor_op=add_op, old_var=add_op.outputs[0],
                                                                new_var=out)
            block.remove_ops([mul_op, add_op])
            return True

    register_pass(namespace="toolchain")(fuse_elementwise_to_batchnorm_exact)


def _per_channel(arr: np.ndarray) -> bool:
    """A (1, C, 1, 1) or (C, 1, 1) constant: what a batch norm's per-channel gamma/beta can be."""
    return arr.ndim in (3, 4) and arr.shape == (1,) * (arr.ndim - 3) + (arr.shape[-3], 1, 1)


def pass_pipeline() -> Any:
    """coremltools' default pass pipeline with the exact elementwise-to-batchnorm fusion in place of
    upstream's (the module docstring says why); the default unchanged if a coremltools without that pass
    runs it."""
    import coremltools as ct

    register()
    pipeline = ct.PassPipeline.DEFAULT
    names = list(pipeline.passes)
    if UPSTREAM_FUSE_PASS in names:
        pipeline.remove_passes([UPSTREAM_FUSE_PASS])
        pipeline.insert_pass(names.index(UPSTREAM_FUSE_PASS), EXACT_FUSE_PASS)
    return pipeline
