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
"""

from __future__ import annotations

from typing import Any

import numpy as np

_REGISTERED = False


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
    _REGISTERED = True
