"""int8 calibration / Core ML palettization images: the user's folder (``--calibration``), else the seeded ones;
and the user's held-out parity images (:func:`calibration_and_parity`).

A folder is read with the data layer's own image rules (:data:`toolchain.data.layouts.IMAGE_SUFFIXES`,
:func:`toolchain.data.images.load_image`), so calibration accepts exactly the files a data set may hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from toolchain.artifact.inputs import calibration_images
from toolchain.errors import DataError, ImageBombError, ImageError
from toolchain.policy import CALIBRATION_SAMPLES, USER_PARITY_SAMPLES


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


def _read(paths: list[Path], size: Any, flag: str, color: str | None = None, rgb_to_gray: bool = False) -> np.ndarray:
    """Raw pixels NCHW float32 of the readable ``paths`` at ``size`` ((C, H, W) or an int: square RGB) in
    channel order ``color`` (unreadable files skipped; a bomb refused)."""
    from toolchain.data.images import load_image
    from toolchain.inputspec import chw, default_color

    c, h, w = chw(size)
    color = color or default_color(c)
    out = []
    for p in paths:
        try:
            out.append(load_image(p, size, color=color, rgb_to_gray=rgb_to_gray).astype(np.float32))
        except ImageBombError as e:
            raise DataError(f"{flag}: {e}") from None
        except ImageError:
            continue
    return np.stack(out).transpose(0, 3, 1, 2).copy() if out else np.zeros((0, c, h, w), np.float32)


def _spread(paths: list[Path], n: int) -> list[Path]:
    """``n`` paths evenly spread over the sorted list (across subjects, not the first folder's).

    >>> [p.name for p in _spread([Path(str(i)) for i in range(10)], 3)]
    ['0', '3', '6']
    """
    if len(paths) <= n:
        return list(paths)
    step = len(paths) / n
    return [paths[int(i * step)] for i in range(n)]


def calibration_and_parity(size: Any, calibration: str | Path | None = None, data: str | Path | None = None,
                           n_calibration: int = CALIBRATION_SAMPLES, n_parity: int = USER_PARITY_SAMPLES,
                           color: str | None = None, rgb_to_gray: bool = False, **_: Any,
                           ) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """int8 calibration images and the user's held-out parity images (never one of the calibration images).

    * ``data`` given: parity on up to ``n_parity`` of its images (spread over the folder) that are not
      calibration images; calibration from ``calibration`` (or the seeded images). When every image of ``data``
      is a calibration image (``--data`` and ``--calibration`` name one folder), as if only ``calibration``.
    * only ``calibration``: its images are split — up to ``n_parity`` (at most half, spread) held out for
      parity, calibration from the rest.
    * neither: seeded calibration images, and None for parity (the seeded parity images are used).

    Returns (calibration pixels, parity pixels or None, a note when user images were given but none could
    be held out). Pixels are raw NCHW float32 at ``size`` ((C, H, W) or an int: square RGB), read in channel
    order ``color`` (the bundle's :attr:`~toolchain.models.bundle.Bundle.pixel_options`).
    """
    from toolchain.data.layouts import list_images

    if calibration is None and data is None:
        return load_calibration(size, color=color, rgb_to_gray=rgb_to_gray), None, None
    for flag, folder in (("--calibration", calibration), ("--data", data)):
        if folder is not None and not Path(folder).is_dir():
            raise DataError(f"{flag} {folder} is not a folder of images")
    calib_files = list_images(Path(calibration)) if calibration is not None else []
    held: list[Path] = []
    if data is not None:
        taken = {p.resolve() for p in calib_files}
        held = _spread([p for p in list_images(Path(data)) if p.resolve() not in taken], n_parity)
        if not held and calib_files:  # --data names only calibration images (often the same folder): hold out
            data = None               # from them, as with --calibration alone, rather than fall back to noise
    if data is not None:
        calib = load_calibration(size, calibration, n_calibration, color=color, rgb_to_gray=rgb_to_gray)
        where = f"--data {data}"
    else:
        held = _spread(calib_files[1::2], min(n_parity, len(calib_files) // 2))
        rest = [p for p in calib_files if p not in set(held)]
        calib = _read(rest[:n_calibration], size, "--calibration", color, rgb_to_gray)
        if not len(calib):
            calib = load_calibration(size, calibration, n_calibration, color=color,
                                     rgb_to_gray=rgb_to_gray)  # the folder's own error message
        where = f"--calibration {calibration}"
    parity = _read(held, size, "--data" if data is not None else "--calibration", color, rgb_to_gray)
    if not len(parity):
        return calib, None, (f"{where}: no readable image could be held out from calibration for parity; "
                             "parity ran on seeded images")
    return calib, parity, None
