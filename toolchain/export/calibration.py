"""int8 calibration / Core ML palettization images: the user's folder (``--calibration``), else the seeded ones.

A folder is read with the data layer's own image rules (:data:`toolchain.data.layouts.IMAGE_SUFFIXES`,
:func:`toolchain.data.images.load_image`), so calibration accepts exactly the files a data set may hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from toolchain.artifact.inputs import calibration_images
from toolchain.errors import DataError, ImageBombError, ImageError
from toolchain.policy import CALIBRATION_SAMPLES


def load_calibration(size: Any, folder: str | Path | None = None, n: int = CALIBRATION_SAMPLES,
                     color: str | None = None, rgb_to_gray: bool = False, **_: Any) -> np.ndarray:
    """Up to ``n`` images from ``folder`` (recursively, unreadable files skipped), resized to ``size`` ((C, H, W),
    or an int for square RGB) and read in channel order ``color`` (default: rgb, gray for 1 channel), as raw
    pixels NCHW float32; the seeded :func:`~toolchain.artifact.inputs.calibration_images` when no folder is given.
    """
    from toolchain.inputspec import chw, default_color

    c = chw(size)[0]
    color = color or default_color(c)
    if folder is None:
        return calibration_images(size)
    from toolchain.data.images import load_image
    from toolchain.data.layouts import IMAGE_SUFFIXES, list_images

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--calibration {folder} is not a folder of images")
    out, unreadable = [], []
    for p in list_images(folder):
        try:
            out.append(load_image(p, size, color=color, rgb_to_gray=rgb_to_gray).astype(np.float32))
        except ImageBombError as e:  # a bomb is the user's to remove, not a file to pass over
            raise DataError(f"--calibration: {e}") from None
        except ImageError as e:
            unreadable.append(str(e))
            continue
        if len(out) >= n:
            break
    if not out:
        why = f"; {len(unreadable)} unreadable, e.g. {unreadable[0]}" if unreadable else ""
        raise DataError(f"--calibration {folder} holds no readable images ({', '.join(IMAGE_SUFFIXES)}){why}")
    return np.stack(out).transpose(0, 3, 1, 2).copy()
