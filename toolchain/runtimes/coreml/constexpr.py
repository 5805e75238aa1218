"""ML Program compressed weights (``constexpr_*`` ops: sparse, palettized, int8, cast), decoded by the executor.

Registered in :data:`~toolchain.runtimes.coreml.mlprogram.MIL_OPS`; a compiled program (:mod:`.plan`) runs
them once per artifact, since their inputs are all constants.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolchain.runtimes.coreml.kernels import UnknownOpError, repeat_blocks


def register(MIL_OPS: Any, dtypes: dict[str, Any]) -> None:
    """Add the constexpr ops to the MIL op registry (``dtypes``: MIL dtype names to numpy)."""
    for name, fn in _OPS.items():
        MIL_OPS.add(name, fn)
    MIL_OPS.add("constexpr_cast", lambda source_val, output_dtype: np.asarray(source_val).astype(dtypes[str(output_dtype)]))


_OPS: dict[str, Any] = {}


def _op(name: str) -> Any:
    def add(fn: Any) -> Any:
        _OPS[name] = fn
        return fn
    return add


# Compressed weights. iOS16 and iOS18 ops share names; their inputs tell them apart.

def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """Unsigned ``nbits`` integers packed LSB first, as coremltools writes them.

    >>> unpack_bits(np.array([0b00100001], np.uint8), 4, 2).tolist()   # low nibble first
    [1, 2]
    """
    bits = np.unpackbits(np.asarray(packed).astype(np.uint8), bitorder="little")[: count * nbits]
    return (bits.reshape(count, nbits).astype(np.uint32) << np.arange(nbits, dtype=np.uint32)).sum(axis=1)


@_op("constexpr_sparse_to_dense")
def _mil_sparse(nonzero_data: np.ndarray, mask: np.ndarray, shape: Any = None) -> np.ndarray:
    mask = np.asarray(mask)
    if shape is None:  # iOS18: the mask is an unpacked uint1 tensor of the output shape
        out_shape, flat_mask = mask.shape, mask.reshape(-1) != 0
    else:  # iOS16: the mask is a packed bit vector
        out_shape = tuple(int(s) for s in np.asarray(shape))
        flat_mask = np.unpackbits(mask.astype(np.uint8), bitorder="little")[: int(np.prod(out_shape))] != 0
    out = np.zeros(int(np.prod(out_shape)), dtype=np.asarray(nonzero_data).dtype)
    out[flat_mask] = nonzero_data
    return out.reshape(out_shape)


@_op("constexpr_lut_to_dense")
def _mil_lut(indices: np.ndarray, lut: np.ndarray, shape: Any = None, vector_axis: Any = None) -> np.ndarray:
    lut = np.asarray(lut)
    if shape is not None:  # iOS16: one flat table, indices packed
        out_shape = tuple(int(s) for s in np.asarray(shape))
        nbits = int(np.log2(lut.size))
        return lut.reshape(-1)[unpack_bits(indices, nbits, int(np.prod(out_shape)))].reshape(out_shape)
    # iOS18: lut (*blocks, 2**nbits, vector); indices unpacked with the output shape
    idx = np.asarray(indices).astype(np.int64)
    if lut.shape[-1] != 1:
        raise UnknownOpError("constexpr_lut_to_dense with vector palettes")
    grids = np.ogrid[tuple(slice(0, s) for s in idx.shape)]
    blocks = tuple(g // (s // b) for g, s, b in zip(grids, idx.shape, lut.shape[:-2]))
    return lut[blocks + (idx, 0)]


@_op("constexpr_lut_to_sparse")
def _mil_lut_sparse(indices_mask: np.ndarray, indices_nonzero_data: np.ndarray, lut: np.ndarray,
                    vector_axis: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """iOS18 joint sparse + palette: look up each non-zero's palette index; the mask passes through.

    The palette of a non-zero is that of the block its dense position falls in (lut: (*blocks, 2**nbits, 1)).
    """
    mask, lut = np.asarray(indices_mask), np.asarray(lut)
    if lut.shape[-1] != 1:
        raise UnknownOpError("constexpr_lut_to_sparse with vector palettes")
    pos = np.nonzero(mask != 0)  # C order: the order constexpr_sparse_to_dense fills in
    blocks = tuple(p // (s // b) for p, s, b in zip(pos, mask.shape, lut.shape[:-2]))
    idx = np.asarray(indices_nonzero_data).astype(np.int64).reshape(-1)
    return mask, lut[blocks + (idx, 0)]


@_op("constexpr_affine_dequantize")
def _mil_affine(quantized_data: np.ndarray, zero_point: Any, scale: Any, axis: int) -> np.ndarray:
    q = np.asarray(quantized_data).astype(np.float32)
    shape = [1] * q.ndim
    zp, sc = np.asarray(zero_point, np.float32), np.asarray(scale, np.float32)
    shape[int(axis)] = -1
    zp = zp.reshape(shape) if zp.size > 1 else zp
    sc = sc.reshape(shape) if sc.size > 1 else sc
    return (q - zp) * sc


@_op("constexpr_blockwise_shift_scale")
def _mil_blockwise(data: np.ndarray, scale: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    d = np.asarray(data).astype(np.float32)
    sc = repeat_blocks(np.asarray(scale, np.float32), d.shape)
    if offset is not None:
        d = d - repeat_blocks(np.asarray(offset, np.float32), d.shape)
    return d * sc
