"""The seeded inputs every artifact check runs on: parity images, the fixed input, int8 calibration images.

Raw pixels 0..255 as float32 NCHW (C = 1 or 3, H x W: the model's input), made from seeds in :mod:`toolchain.policy`, so the export, the report
and a test months later feed an artifact the very same images.
"""

from __future__ import annotations

import numpy as np

from toolchain.inputspec import SizeLike, chw
from toolchain.policy import CALIBRATION_SAMPLES, CALIBRATION_SEED, FIXED_INPUT_SEED, PARITY_SAMPLES


def smooth_random_images(n: int, size: SizeLike, seed: int) -> np.ndarray:
    """Seeded images with spatial structure, raw pixels 0..255 as float32, NCHW.

    ``size``: an int (square RGB), (H, W) or (C, H, W). Low-frequency noise (up-sampled) plus a little fine
    noise: closer to photographs than white noise, so activations and int8 calibration ranges are realistic.
    A square RGB size gives the same images as before channels and H x W existed.
    """
    c, h, w = chw(size)
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, c, 8, 8))
    img = np.kron(coarse, np.ones((1, 1, -(-h // 8), -(-w // 8))))[:, :, :h, :w]
    img = 0.8 * img + 0.2 * rng.random((n, c, h, w))
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.float32)


def parity_inputs(size: SizeLike) -> np.ndarray:
    """The images every parity check runs: ``PARITY_SAMPLES`` seeded smooth images (raw pixels NCHW)."""
    return smooth_random_images(PARITY_SAMPLES, size, FIXED_INPUT_SEED)


def fixed_input(size: SizeLike) -> np.ndarray:
    """The fixed input (1, C, H, W) whose PyTorch features a manifest keeps (``fixed_input.png``)."""
    return smooth_random_images(1, size, FIXED_INPUT_SEED)


def calibration_images(size: SizeLike) -> np.ndarray:
    """int8 calibration / palettization images when no folder is given: seeded smooth images."""
    return smooth_random_images(CALIBRATION_SAMPLES, size, CALIBRATION_SEED)
