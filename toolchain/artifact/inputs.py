"""The seeded inputs every artifact check runs on: parity images, the fixed input, int8 calibration images.

Raw RGB pixels 0..255 as float32 NCHW, made from seeds in :mod:`toolchain.policy`, so the export, the report
and a test months later feed an artifact the very same images.
"""

from __future__ import annotations

import numpy as np

from toolchain.policy import CALIBRATION_SAMPLES, CALIBRATION_SEED, FIXED_INPUT_SEED, PARITY_SAMPLES


def smooth_random_images(n: int, size: int, seed: int) -> np.ndarray:
    """Seeded RGB images with spatial structure, raw pixels 0..255 as float32, NCHW.

    Low-frequency noise (up-sampled) plus a little fine noise: closer to photographs than
    white noise, so activations and int8 calibration ranges are realistic.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, 3, 8, 8))
    reps = -(-size // 8)
    img = np.kron(coarse, np.ones((1, 1, reps, reps)))[:, :, :size, :size]
    img = 0.8 * img + 0.2 * rng.random((n, 3, size, size))
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.float32)


def parity_inputs(size: int) -> np.ndarray:
    """The images every parity check runs: ``PARITY_SAMPLES`` seeded smooth images (raw pixels NCHW)."""
    return smooth_random_images(PARITY_SAMPLES, size, FIXED_INPUT_SEED)


def fixed_input(size: int) -> np.ndarray:
    """The fixed input (1, 3, size, size) whose PyTorch features a manifest keeps (``fixed_input.png``)."""
    return smooth_random_images(1, size, FIXED_INPUT_SEED)


def calibration_images(size: int) -> np.ndarray:
    """int8 calibration / palettization images when no folder is given: seeded smooth images."""
    return smooth_random_images(CALIBRATION_SAMPLES, size, CALIBRATION_SEED)
