"""The numpy Core ML executor's shared kernels (float32, NCHW): convolution, pooling, batch norm, linear, concat.

Both interpreters (:mod:`.neuralnetwork` for ``.mlmodel`` specs, :mod:`.mlprogram` for ``.mlpackage`` MIL
programs) call these, so a layer and the op it became compute the same numbers.

Kernels compute in float32 (NCHW). Example: a 1x1 convolution with weight 2 and bias 1
maps ``[[[[3.0]]]]`` to ``[[[[7.0]]]]`` (see :func:`conv2d`).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from toolchain.errors import ToolchainError


class UnknownOpError(ToolchainError):
    """The executor has no implementation for a layer/op (or one of its modes)."""


# ---------------------------------------------------------------- kernels (float32, NCHW)

def same_padding(hw: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                 dilation: tuple[int, ...] = (1, 1), top_left_heavy: bool = False) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) for 'same' padding: output = ceil(input / stride).

    >>> same_padding((4, 4), (3, 3), (2, 2))   # 4 -> 2 outputs, needs 1 pixel: at the end
    (0, 1, 0, 1)
    """
    out: list[int] = []
    for n, k, s, d in zip(hw, kernel, stride, dilation):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        out += [big, small] if top_left_heavy else [small, big]
    return (out[0], out[1], out[2], out[3])


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, stride: tuple[int, ...],
           pads: tuple[int, int, int, int], dilation: tuple[int, ...] = (1, 1), groups: int = 1) -> np.ndarray:
    """2-D cross-correlation as PyTorch's ``conv2d``; ``pads`` = (top, bottom, left, right).

    >>> conv2d(np.full((1, 1, 1, 1), 3.0, np.float32), np.full((1, 1, 1, 1), 2.0, np.float32),
    ...        np.ones(1, np.float32), (1, 1), (0, 0, 0, 0)).ravel().tolist()
    [7.0]
    """
    return Conv2d(w, bias, groups)(x, stride, pads, dilation)


#: the most float32 values one im2col buffer holds (64 MiB): a large batch is convolved in slices of samples
COLUMNS_MAX = 16 * 1024 * 1024
#: float32 values of output a depthwise convolution computes at a time (256 KiB: it stays in a core's cache)
DEPTHWISE_BLOCK = 64 * 1024


class Conv2d:
    """A convolution's weights, prepared once per artifact (matrix form, float32) and applied to any batch.

    Why prepared: an artifact is opened once and runs thousands of images, so reshaping (and decoding) its
    weights per image was most of the executor's time. Three forms, all BLAS or whole-array numpy:

    * dense (``groups == 1``): im2col (one strided copy per kernel tap) then one matrix product per sample;
      1x1 convolutions skip the copy;
    * depthwise (one input channel per group, one output per group): a multiply-add per kernel tap over
      the whole batch, no matrix product;
    * grouped: im2col per group, a batched matrix product over (sample, group).
    """

    def __init__(self, w: np.ndarray, bias: np.ndarray | None, groups: int = 1) -> None:
        w = np.asarray(w, np.float32)
        self.out_channels, self.group_channels, self.kh, self.kw = w.shape
        self.groups = int(groups)
        o, cg, kh, kw = w.shape
        if o % self.groups:
            raise UnknownOpError(f"conv: {o} output channels do not split into {self.groups} groups")
        self.depthwise = self.groups > 1 and cg == 1 and o == self.groups
        if self.depthwise:  # taps[i, j] is (1, C, 1, 1): one weight per channel per kernel position
            self.taps = np.ascontiguousarray(w.reshape(o, kh, kw).transpose(1, 2, 0)).reshape(kh, kw, 1, o, 1, 1)
        elif self.groups == 1:
            self.matrix = np.ascontiguousarray(w.reshape(o, cg * kh * kw))
        else:
            self.matrix = np.ascontiguousarray(w.reshape(self.groups, o // self.groups, cg * kh * kw))
        self.bias = None if bias is None else np.asarray(bias, np.float32).reshape(1, o, 1, 1)

    def __call__(self, x: np.ndarray, stride: tuple[int, ...], pads: tuple[int, int, int, int],
                 dilation: tuple[int, ...] = (1, 1)) -> np.ndarray:
        x = np.asarray(x, np.float32)
        n, c = x.shape[:2]
        if c != self.group_channels * self.groups:
            raise UnknownOpError(f"conv: input has {c} channels, weights expect {self.group_channels} x "
                                 f"{self.groups} groups")
        if any(pads):
            pt, pb, pl, pr = pads
            xp = np.zeros((n, c, x.shape[2] + pt + pb, x.shape[3] + pl + pr), np.float32)
            xp[:, :, pt:pt + x.shape[2], pl:pl + x.shape[3]] = x
            x = xp
        (sh, sw), (dh, dw), kh, kw = stride, dilation, self.kh, self.kw
        oh, ow = (x.shape[2] - (kh - 1) * dh - 1) // sh + 1, (x.shape[3] - (kw - 1) * dw - 1) // sw + 1
        if self.depthwise:
            out = self._depthwise(x, oh, ow, (sh, sw), (dh, dw))
        else:
            out = np.empty((n, self.out_channels, oh * ow), np.float32)
            step = max(1, COLUMNS_MAX // max(1, c * kh * kw * oh * ow))
            for s in range(0, n, step):
                cols = self._columns(x[s:s + step], oh, ow, (sh, sw), (dh, dw))
                if self.groups == 1:
                    np.matmul(self.matrix, cols, out=out[s:s + step])
                else:
                    m = len(cols)
                    cols = cols.reshape(m, self.groups, self.group_channels * kh * kw, oh * ow)
                    out[s:s + step] = np.matmul(self.matrix, cols).reshape(m, self.out_channels, oh * ow)
            out = out.reshape(n, self.out_channels, oh, ow)
        if self.bias is not None:
            out += self.bias
        return out

    def _columns(self, x: np.ndarray, oh: int, ow: int, stride: tuple[int, int],
                 dilation: tuple[int, int]) -> np.ndarray:
        """(N, C*kh*kw, oh*ow) im2col columns, in the weights' (C, kh, kw) order."""
        (sh, sw), (dh, dw), kh, kw = stride, dilation, self.kh, self.kw
        n, c = x.shape[:2]
        if kh == kw == 1:
            return np.ascontiguousarray(x[:, :, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw]).reshape(n, c, oh * ow)
        cols = np.empty((n, c, kh, kw, oh, ow), np.float32)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, i, j] = x[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
        return cols.reshape(n, c * kh * kw, oh * ow)

    def _depthwise(self, x: np.ndarray, oh: int, ow: int, stride: tuple[int, int],
                   dilation: tuple[int, int]) -> np.ndarray:
        """A multiply-add per kernel tap, over slices of samples small enough to stay in cache."""
        (sh, sw), (dh, dw) = stride, dilation
        n, c = x.shape[:2]
        out = np.empty((n, c, oh, ow), np.float32)
        step = max(1, DEPTHWISE_BLOCK // max(1, c * oh * ow))
        tmp = np.empty((min(step, n), c, oh, ow), np.float32)
        for s in range(0, n, step):
            o, xs = out[s:s + step], x[s:s + step]
            t = tmp[:len(o)]
            for i in range(self.kh):
                for j in range(self.kw):
                    tap = xs[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
                    if i == j == 0:
                        np.multiply(tap, self.taps[i, j], out=o)
                    else:
                        np.multiply(tap, self.taps[i, j], out=t)
                        o += t
        return out


def pool2d(x: np.ndarray, kind: str, kernel: tuple[int, ...], stride: tuple[int, ...],
           pads: tuple[int, int, int, int], exclude_padding: bool = True, ceil_mode: bool = False) -> np.ndarray:
    """Max or average pooling, PyTorch's semantics; ``pads`` = (top, bottom, left, right).

    Padded cells never win a max and, with ``exclude_padding``, never count in an average. ``ceil_mode``
    adds cells at the end so a partial last window still gives an output (one that starts inside the input
    or the start padding, as PyTorch and NeuralNetwork ``includeLastPixel`` define it); those cells never
    count, even when the padding does.
    """
    pt, pb, pl, pr = pads
    (kh, kw), (sh, sw) = kernel, stride
    eb = er = 0
    if ceil_mode:
        eb = include_last_pixel_pads(x.shape[2:3], (kh,), (sh,), (pt,))[1] - pb if pt == pb else 0
        er = include_last_pixel_pads(x.shape[3:4], (kw,), (sw,), (pl,))[1] - pr if pl == pr else 0
        if pt != pb or pl != pr:  # asymmetric: the general rule for the bottom/right end
            h, w = x.shape[2] + pt + pb, x.shape[3] + pl + pr
            eb, er = ((-(h - kh) % sh) if h > kh else 0), ((-(w - kw) % sw) if w > kw else 0)
        eb, er = max(eb, 0), max(er, 0)
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb + eb), (pl, pr + er)), constant_values=fill)
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    if kind == "max":  # one whole-batch maximum per kernel tap
        out = np.full(xp.shape[:2] + (oh, ow), -np.inf, np.float32)
        for i in range(kh):
            for j in range(kw):
                np.maximum(out, xp[:, :, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw], out=out)
        return out
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    total = win.sum(axis=(4, 5))
    counted = np.ones((1, 1) + x.shape[2:], np.float32)
    if not exclude_padding:
        counted = np.pad(counted, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=1.0)
        counted = np.pad(counted, ((0, 0), (0, 0), (0, eb), (0, er)))
    else:
        counted = np.pad(counted, ((0, 0), (0, 0), (pt, pb + eb), (pl, pr + er)))
    count = sliding_window_view(counted, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw].sum(axis=(4, 5))
    return (total / count).astype(np.float32)


def include_last_pixel_pads(hw: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                            amounts: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of NeuralNetwork.proto's ``includeLastPixel`` pooling (PyTorch ceil_mode).

    ``out = ceil((n + 2p - k) / s) + 1``, one less when p > 0 and the last window would start at or past
    ``n + p``; the start is padded by p, the end by whatever the last window needs.

    >>> include_last_pixel_pads((6, 6), (3, 3), (2, 2), (0, 0))   # 6 -> 3 outputs, last window needs 1 more
    (0, 1, 0, 1)
    """
    out: list[int] = []
    for n, k, s, p in zip(hw, kernel, stride, amounts):
        o = -(-(n + 2 * p - k) // s) + 1
        if p > 0 and (o - 1) * s >= n + p:
            o -= 1
        out += [p, max((o - 1) * s + k - n - p, 0)]
    return tuple(out)  # type: ignore[return-value]  # (start, end) per axis


#: float32 values rounded to float16 per pass: small enough that the integer temporaries stay in cache
FP16_CHUNK = 1 << 16


def round_to_fp16(x: np.ndarray) -> np.ndarray:
    """``x`` (float32) rounded to the nearest float16 value, kept as float32; bit-identical to
    ``x.astype(float16).astype(float32)``. In place when ``x`` is a writable contiguous float32 array (an op's
    output: every float16 value the executor holds is already rounded, so rounding a view of one changes
    nothing; constants are read-only), else on a copy.

    Why: numpy converts to float16 one element at a time (no SIMD here), which made rounding after each op
    cost as much as the convolutions. This rounds the float32 bits to 10 mantissa bits (round half to even)
    with integer operations on cache-sized chunks; the values that rule gets wrong, float16 subnormals (below
    2**-14), overflow to infinity (65520 and up) and NaN, are few and are converted exactly, one by one.

    >>> round_to_fp16(np.array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 1e-6, 7e4], np.float32)).tolist()
    [1.0, 1.001953125, 1.0132789611816406e-06, inf]
    """
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous and x.flags.writeable):
        x = np.array(x, np.float32)
    flat = x.reshape(-1)
    u = flat.view(np.uint32)
    size = min(len(u), FP16_CHUNK)
    carry, mag = np.empty(size, np.uint32), np.empty(size, np.uint32)
    odd, big = np.empty(size, bool), np.empty(size, bool)
    for start in range(0, len(u), FP16_CHUNK):
        us = u[start:start + FP16_CHUNK]
        k = len(us)
        c, m, o, b = carry[:k], mag[:k], odd[:k], big[:k]
        np.right_shift(us, 13, out=c)  # the lowest kept mantissa bit: ties round to even
        c &= 1
        c += 0x0FFF
        np.bitwise_and(us, 0x7FFFFFFF, out=m)
        m -= 1  # zero wraps around: never "small"
        np.less(m, 0x387FFFFF, out=o)  # 0 < |x| < 2**-14: float16 subnormals
        np.greater_equal(m, 0x477FEFFF, out=b)  # |x| >= 65520 (inf, NaN; zero too, harmlessly)
        b &= m != 0xFFFFFFFF
        o |= b
        idx = np.flatnonzero(o) if o.any() else None
        if idx is not None:
            with np.errstate(over="ignore"):
                exact = flat[start + idx].astype(np.float16).astype(np.float32)
        us += c
        us &= 0xFFFFE000
        if idx is not None:
            flat[start + idx] = exact
    return x


def batch_norm(x: np.ndarray, mean: np.ndarray, var: np.ndarray, gamma: np.ndarray | None,
               beta: np.ndarray | None, eps: float) -> np.ndarray:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y.astype(np.float32)


def prelu(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """PyTorch's PReLU: ``x`` where positive, else ``alpha * x`` with one alpha per channel (axis 1) or one for all.

    >>> prelu(np.array([[-2.0, 3.0]], np.float32), np.array([0.5, 0.1], np.float32)).tolist()
    [[-1.0, 3.0]]
    """
    a = np.asarray(alpha, np.float32).reshape(-1)
    a = a.reshape((1, -1) + (1,) * (x.ndim - 2)) if a.size > 1 else a.reshape(())
    return np.where(x >= 0, x, a * x).astype(np.float32)


def leaky_relu(x: np.ndarray, alpha: float) -> np.ndarray:
    """``x`` where non-negative, else ``alpha * x``."""
    return np.where(x >= 0, x, np.float32(alpha) * x).astype(np.float32)


def upsample_nearest(x: np.ndarray, scale_h: float, scale_w: float) -> np.ndarray:
    """Nearest-neighbour upsampling of the last two axes: output size ``floor(n * scale)``, output cell ``i``
    reads input cell ``min(floor(i / scale), n - 1)`` (PyTorch's ``nearest`` with a scale factor).

    >>> upsample_nearest(np.array([[[1, 2]]]), 1, 2).tolist()
    [[[1, 1, 2, 2]]]
    """
    h, w = x.shape[-2:]
    rows = np.minimum((np.arange(int(np.floor(h * scale_h))) / scale_h).astype(np.int64), h - 1)
    cols = np.minimum((np.arange(int(np.floor(w * scale_w))) / scale_w).astype(np.int64), w - 1)
    return x[..., rows[:, None], cols[None, :]]


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``x @ w.T + b`` over the last axis (w is (out, in))."""
    y = x @ w.T
    return (y + b if b is not None else y).astype(np.float32)


def concat(values: list[np.ndarray], axis: int, interleave: bool = False) -> np.ndarray:
    """``np.concatenate``; with ``interleave`` the slices alternate (a0, b0, a1, b1, ...), as ShuffleNet's
    channel shuffle is lowered by coremltools.

    >>> concat([np.array([1, 2]), np.array([3, 4])], 0, interleave=True).tolist()
    [1, 3, 2, 4]
    """
    values = [np.asarray(v) for v in values]
    if not interleave:
        return np.concatenate(values, axis=axis)
    axis = axis % values[0].ndim
    if len({v.shape for v in values}) != 1:
        raise UnknownOpError("concat with interleave=True over inputs of different shapes")
    stacked = np.stack(values, axis=axis + 1)
    shape = list(values[0].shape)
    shape[axis] *= len(values)
    return stacked.reshape(shape)


def channel_shape(p: np.ndarray, x: np.ndarray) -> tuple[int, ...]:
    """Broadcast a (C,) / (C, H, W) / (1,) parameter against an (N, C, H, W) blob."""
    return (1,) + p.shape + (1,) * (x.ndim - 1 - p.ndim) if p.ndim == 1 and p.size > 1 else (1,) + p.shape


def repeat_blocks(p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Expand a per-block parameter (same rank, each dim dividing ``shape``) to ``shape``."""
    for axis, (n, b) in enumerate(zip(shape, p.shape)):
        if b != n:
            p = np.repeat(p, n // b, axis=axis)
    return p
