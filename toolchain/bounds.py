"""The one place each kind of number a user or a file gives is bounded: sizes, counts, rates, thresholds, seeds.

Why one place: a value read by the CLI, a pipeline file, a model card, an edited bundle and an ONNX file must
meet the same limits, and a message must always name the field and its allowed range. Every check here is
cheap and runs *before* the allocation or the work the value would drive (a 100000-pixel input, a
10^10-parameter net, 10^9 synthetic subjects), so a hostile value costs a clean error, not memory or hours.

>>> check_int(64, "input size", *INPUT_SIZE_PX)
64
>>> check_int(-1, "input size", *INPUT_SIZE_PX)
Traceback (most recent call last):
...
toolchain.errors.ConfigError: input size is -1; allowed: an integer in [16, 1024]
"""

from __future__ import annotations

import math
from typing import Any

from toolchain.errors import ConfigError, ToolchainError

# ---- sizes
#: Square network input side (pixels): 16 is the smallest a CNN with strides reaches; 1024 is far above any
#: periocular model (64..640) and keeps export parity (a few images at that size) within seconds and memory.
INPUT_SIZE_PX = (16, 1024)
#: Synthetic image side (pixels).
IMAGE_SIZE_PX = (32, 4096)
#: Input channels a model may read: 1 (grayscale, e.g. NIR iris) or 3 (colour).
INPUT_CHANNELS = (1, 3)
#: ``--pixel-scale`` (pixels are divided by it before mean/std): 1 (mean/std in raw 0..255 units) .. 16-bit full scale.
PIXEL_SCALE = (1e-3, 65535.0)
#: |mean| and std at the default scale of 255 (values in [0, 1] units); a scale s widens it by 255 / s.
NORMALIZATION_LIMIT = 10.0
#: Pixels an image file may declare before it is decoded (a decompression bomb is refused, not decoded):
#: 64 Mpx is above any camera a periocular data set uses.
MAX_IMAGE_PIXELS = 64_000_000
#: Elements one tensor (an ONNX initializer or input, a layer's weights) may have: 2^28 fp32 = 1 GiB, far above
#: the largest tensor of any model that runs on a phone (tens of millions of elements).
MAX_TENSOR_ELEMENTS = 1 << 28
#: Parameters a network may have (estimated before it is built): 10^9 is above ViT-H (632M).
MAX_PARAMETERS = 1_000_000_000
#: Characters of one CSV field (a path or a subject name); Python's csv module stops at 131072.
MAX_CSV_FIELD_CHARS = 4096
#: Characters of a name used as a folder (a pipeline stage, a bundle name).
MAX_NAME_CHARS = 100

# ---- counts
SUBJECTS = (1, 100_000)
IMAGES_PER_SUBJECT = (1, 10_000)
ITERATIONS = (1, 10_000_000)  # timed runs of one benchmark: results schema v1's MAX_ITERATIONS
EPOCHS = (1, 100_000)
BATCH_SIZE = (1, 65_536)
THREADS = (1, 1024)
MAX_IMPOSTORS = (0, 100_000_000)

# ---- rates and thresholds
LEARNING_RATE = (0.0, 10.0)  # exclusive low end: lr > 0
WEIGHT_DECAY = (0.0, 1.0)
RATIO = (0.0, 1.0)  # pruning ratios, fractions
#: ``--min-cosine``: a per-sample cosine threshold; 0 or below passes anything, above 1 passes nothing.
MIN_COSINE = (0.0, 1.0)  # (exclusive, inclusive]

# ---- seeds
SEED = (0, 2 ** 32 - 1)  # numpy's SeedSequence and torch.manual_seed both take this range

# ---- time
#: Seconds a user regex may spend on one path before it is refused as backtracking.
REGEX_TIMEOUT_S = 0.5


def check_int(value: Any, field: str, low: int, high: int, error: type[ToolchainError] = ConfigError) -> int:
    """``value`` as an int in ``[low, high]`` (bools and non-integral floats refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        else:
            raise error(f"{field} is {_show(value)}; allowed: an integer in [{low}, {high}]")
    if not low <= value <= high:
        raise error(f"{field} is {_show(value)}; allowed: an integer in [{low}, {high}]")
    return value


def check_float(value: Any, field: str, low: float, high: float, *, low_open: bool = False,
                high_open: bool = False, error: type[ToolchainError] = ConfigError) -> float:
    """``value`` as a finite float in the range (bounds open or closed as asked); NaN and Inf refused."""
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    allowed = f"a finite number in {lo}{low:g}, {high:g}{hi}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{field} is {_show(value)}; allowed: {allowed}")
    v = float(value)
    if not math.isfinite(v) or v < low or v > high or (low_open and v == low) or (high_open and v == high):
        raise error(f"{field} is {_show(value)}; allowed: {allowed}")
    return v


def check_name(value: Any, field: str, error: type[ToolchainError] = ConfigError) -> str:
    """A name that becomes a folder: non-empty, at most :data:`MAX_NAME_CHARS`, one plain path segment."""
    if not isinstance(value, str) or not value.strip():
        raise error(f"{field} is {_show(value)}; allowed: a non-empty name")
    if len(value) > MAX_NAME_CHARS:
        raise error(f"{field} is {len(value)} characters long; allowed: at most {MAX_NAME_CHARS}")
    if "/" in value or "\\" in value or "\x00" in value or value in (".", ".."):
        raise error(f"{field} {_show(value)} is not one folder name (no '/', '\\', NUL, '.' or '..')")
    return value


def check_elements(shape: Any, field: str, error: type[ToolchainError] = ConfigError) -> int:
    """The element count of ``shape``, refused above :data:`MAX_TENSOR_ELEMENTS` (or a negative dimension)."""
    n = 1
    for d in shape:
        d = int(d)
        if d < 0:
            raise error(f"{field} has a negative dimension {d} (shape {list(shape)})")
        n *= d
        if n > MAX_TENSOR_ELEMENTS:
            raise error(f"{field} claims shape {list(map(int, shape))} (more than {MAX_TENSOR_ELEMENTS:,} "
                              "elements); allowed: at most that many")
    return n


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
