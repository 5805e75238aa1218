"""Contact sheets: a grid of a data set's images, one row per subject (a quick look at any folder)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from toolchain.data.images import ImageError, load_image
from toolchain.data.layouts import Dataset
from toolchain.errors import DataError
from toolchain.fsutil import atomic_write_bytes


def contact_sheet(dataset: Dataset, out: str | Path, subjects: int = 8, per_subject: int = 6, tile_px: int = 96,
                  colors: int | None = 256) -> Path:
    """Write a PNG grid: the first ``subjects`` subjects (rows) x their first ``per_subject`` images.

    Args:
        tile_px: side of each tile in pixels.
        colors: quantise to this many colours (keeps the file small for docs), or None for full RGB.
    """
    names = dataset.subjects()[:subjects]
    if not names:
        raise DataError(f"{dataset.root} has no subjects to show")
    rows = []
    for name in names:
        tiles = []
        for s in [s for s in dataset.samples if s.subject == name][:per_subject]:
            try:
                tiles.append(load_image(s.path, tile_px))
            except ImageError:
                tiles.append(np.zeros((tile_px, tile_px, 3), np.uint8))
        tiles += [np.zeros((tile_px, tile_px, 3), np.uint8)] * (per_subject - len(tiles))
        rows.append(np.concatenate(tiles, axis=1))
    im = Image.fromarray(np.concatenate(rows, axis=0), "RGB")
    if colors:
        im = im.quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)
