"""A model's input, in one place: channels (1 or 3), height x width, channel order, pixel scale, mean and std.

Why one module: the bundle (``model.json`` ``"input"``), the cards, the CLI options, the data loader, training,
pruning, distillation, evaluation, every exporter and ``bench plan`` all need the same (C, H, W) and the same
normalisation ``(pixels / scale - mean) / std``. Before, each took one square side and assumed three RGB channels,
so a grayscale (NIR iris) or rectangular (periocular crop) model could not get in. Imports nothing heavy.

A *size-like* value is an ``int`` (a square RGB input, what older code passes), ``(H, W)`` (RGB) or ``(C, H, W)``;
:func:`chw` turns any of them into ``(C, H, W)``.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

from toolchain.bounds import INPUT_CHANNELS, NORMALIZATION_LIMIT, PIXEL_SCALE
from toolchain.errors import ToolchainError

#: Channel orders and the channel count each implies.
COLORS = {"rgb": 3, "bgr": 3, "gray": 1}
CHANNELS = INPUT_CHANNELS
SCALE_RANGE = PIXEL_SCALE
#: Pixels are divided by this before mean/std (8-bit images: 255, so mean/std are in [0, 1] units).
DEFAULT_SCALE = 255.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ImageNet's statistics for one channel: the luma (ITU-R 601) of its mean, and its mean std.
IMAGENET_GRAY_MEAN = (0.449,)
IMAGENET_GRAY_STD = (0.226,)

SizeLike = Union[int, Sequence[int]]


def chw(size: SizeLike) -> tuple[int, int, int]:
    """``(C, H, W)`` of a size-like value (an int: square RGB; ``(H, W)``: RGB; ``(C, H, W)``).

    >>> chw(64), chw((64, 128)), chw((1, 64, 128))
    ((3, 64, 64), (3, 64, 128), (1, 64, 128))
    """
    if isinstance(size, int):
        return 3, int(size), int(size)
    s = [int(v) for v in size]
    if len(s) == 2:
        return 3, s[0], s[1]
    if len(s) == 3:
        return s[0], s[1], s[2]
    raise ValueError(f"an input size is an int, (H, W) or (C, H, W), not {size!r}")


def hw(size: SizeLike) -> tuple[int, int]:
    """``(H, W)`` of a size-like value."""
    return chw(size)[1:]  # type: ignore[return-value]


def meta_chw(meta: dict[str, Any]) -> tuple[int, int, int]:
    """``(C, H, W)`` of a bundle description (``model.json``); bundles written before channels existed are RGB."""
    inp = meta["input"]
    h, w = (int(v) for v in inp["size"])
    return int(inp.get("channels", 3)), h, w


def parse_hw(text: str | int | None, error: type[ToolchainError], what: str = "--input-size") -> tuple[int, int] | None:
    """``"64"`` -> (64, 64), ``"64x128"`` -> (64, 128) (height first), bounded by :data:`~toolchain.bounds.INPUT_SIZE_PX`.

    >>> parse_hw("64x128", ToolchainError)
    (64, 128)
    """
    from toolchain.bounds import INPUT_SIZE_PX, check_int

    if text is None:
        return None
    if isinstance(text, int):
        parts: list[str] = [str(text)] * 2
    else:
        parts = str(text).lower().replace(" ", "").split("x")
        parts = parts * 2 if len(parts) == 1 else parts
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise error(f"{what} {text!r} is not a size: give H (square) or HxW in pixels, height first, e.g. 64x128")
    h, w = (check_int(int(p), f"{what} ({'height' if i == 0 else 'width'})", *INPUT_SIZE_PX, error=error)
            for i, p in enumerate(parts))
    return h, w


def per_channel(values: str | Sequence[float] | None, channels: int, what: str,
                error: type[ToolchainError], positive: bool = False,
                limit: float = NORMALIZATION_LIMIT) -> tuple[float, ...] | None:
    """One value (used for every channel) or one per channel, as a tuple of ``channels`` floats, within
    ``[-limit, limit]`` (``(0, limit]`` when ``positive``): 10 in [0, 1] units, scaled up with a smaller pixel scale.

    >>> per_channel("0.5", 3, "--mean", ToolchainError)
    (0.5, 0.5, 0.5)
    """
    from toolchain.bounds import check_float

    if values is None:
        return None
    if isinstance(values, str):
        try:
            vals = [float(v) for v in values.replace(" ", "").split(",") if v != ""]
        except ValueError:
            raise error(f"{what} {values!r} is not a number or a comma-separated list of numbers") from None
    else:
        vals = [v for v in values]
    if len(vals) == 1:
        vals = vals * channels
    if len(vals) != channels:
        raise error(f"{what} has {len(vals)} values for a {channels}-channel input: give one value, or one per channel")
    low, high = (0.0, limit) if positive else (-limit, limit)
    return tuple(check_float(v, f"{what}[{i}]", low, high, low_open=positive, error=error) for i, v in enumerate(vals))


def normalization_limit(scale: float) -> float:
    """The bound of |mean| and std at pixel scale ``scale`` (raw 0..255 units when it is 1)."""
    return NORMALIZATION_LIMIT * max(1.0, DEFAULT_SCALE / float(scale))


def check_color(color: str, channels: int, error: type[ToolchainError]) -> str:
    """The channel order, checked against the channel count (``gray`` for 1 channel; ``rgb``/``bgr`` for 3)."""
    if color not in COLORS:
        raise error(f"unknown channel order {color!r}; known: {', '.join(COLORS)}")
    if COLORS[color] != channels:
        raise error(f"channel order {color!r} has {COLORS[color]} channel(s), but the input has {channels}: "
                    f"use {'gray' if channels == 1 else 'rgb or bgr'}")
    return color


def default_color(channels: int) -> str:
    return "gray" if channels == 1 else "rgb"


def imagenet_default(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's mean and std for ``channels`` channels (one channel: their gray equivalents)."""
    return (IMAGENET_GRAY_MEAN, IMAGENET_GRAY_STD) if channels == 1 else (IMAGENET_MEAN, IMAGENET_STD)


def describe(meta: dict[str, Any]) -> str:
    """One line for ``deploy model info`` and messages: ``1x64x128 gray, /255, mean [...], std [...]``."""
    c, h, w = meta_chw(meta)
    inp = meta["input"]
    return (f"{c}x{h}x{w} {inp.get('color', default_color(c))}, pixels / {inp.get('scale', DEFAULT_SCALE):g}, "
            f"mean {list(inp['mean'])}, std {list(inp['std'])}")
