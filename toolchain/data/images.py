"""The one image loader (Pillow + numpy) and the torch data set used for training and validation.

:func:`load_image` turns any image file into RGB uint8 ``(H, W, 3)``: grayscale (8 or 16 bit)
is replicated to three channels, transparency is flattened onto black, palette images are
expanded, EXIF orientation is applied, and the image is resized to ``size`` (how: see
:data:`FITS`). A file that cannot be decoded raises :class:`~toolchain.errors.ImageError`.

:class:`ImageDataset` decodes every file once when built: unreadable files are dropped and
counted (``.bad``), and more than ``max_bad_fraction`` of them is a
:class:`~toolchain.errors.DataError`. Items are ``(tensor (3, S, S) float32 normalised, label)``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageOps

from toolchain.errors import DataError, ImageBombError, ImageError
from toolchain.policy import MAX_BAD_FRACTION
from toolchain.registry import Registry

log = logging.getLogger(__name__)

#: Decoded images a data set keeps in memory at most when ``cache`` is left to decide (bytes).
CACHE_MAX_BYTES = 2 << 30

#: How a non-square image becomes ``size`` x ``size``.
FITS: Registry[Callable[[Image.Image, int], Image.Image]] = Registry("image fit")


@FITS.register("stretch")
def _stretch(im: Image.Image, size: int) -> Image.Image:
    """Resize to size x size, ignoring aspect ratio (what the exported models see; the default)."""
    return im.resize((size, size), Image.Resampling.BILINEAR)


@FITS.register("crop")
def _crop(im: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square, then resize (keeps aspect, loses the long side's edges)."""
    return ImageOps.fit(im, (size, size), Image.Resampling.BILINEAR)


@FITS.register("pad")
def _pad(im: Image.Image, size: int) -> Image.Image:
    """Resize the long side to size and pad the short one with black (keeps everything)."""
    return ImageOps.pad(im, (size, size), Image.Resampling.BILINEAR, color=(0, 0, 0))


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit/32-bit grayscale: Pillow's convert("L") clips at 255 instead of scaling.
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        return Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGB


def check_declared_size(im: Image.Image, path: str | Path) -> None:
    """Refuse an image whose header declares more than :data:`~toolchain.bounds.MAX_IMAGE_PIXELS`, before it
    is decoded (a decompression bomb: a few kB of PNG that decode to gigabytes)."""
    from toolchain.bounds import MAX_IMAGE_PIXELS

    if im.width * im.height > MAX_IMAGE_PIXELS:
        raise ImageBombError(f"image {path} declares {im.width}x{im.height} pixels, more than the "
                         f"{MAX_IMAGE_PIXELS:,}-pixel limit (a decompression bomb?); not decoded")


def load_image(path: str | Path, size: int | None = None, fit: str = "stretch") -> np.ndarray:
    """Read an image file as RGB uint8 ``(H, W, 3)``; ``size`` pixels square if given.

    Args:
        path: any format Pillow reads (PNG, JPEG, BMP, TIFF, WebP, PPM ...).
        size: output side in pixels, or None for the file's own size.
        fit: how a non-square image becomes square: a name in :data:`FITS` (stretch, crop, pad).

    Raises ImageError for a missing, truncated or non-image file.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "g.png")
    >>> Image.new("L", (30, 20), 128).save(p)
    >>> a = load_image(p, 8)
    >>> a.shape, a.dtype, int(a[0, 0, 2])
    ((8, 8, 3), dtype('uint8'), 128)
    """
    path = Path(path)
    fitter = FITS.get(fit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                check_declared_size(im, path)
                if size is not None and im.format == "JPEG":
                    im.draft("RGB", (size, size))  # decode JPEGs at a reduced scale when much larger
                im.load()
                im = ImageOps.exif_transpose(im)
                rgb = _to_rgb(im)
    except FileNotFoundError:
        raise ImageError(f"image {path} does not exist") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"cannot read image {path}: {e}") from None
    if rgb.width < 1 or rgb.height < 1:
        raise ImageError(f"image {path} is empty ({rgb.width}x{rgb.height})")
    if size is not None and rgb.size != (size, size):
        rgb = fitter(rgb, int(size))
    return np.asarray(rgb, dtype=np.uint8).copy()


def check_images(paths: Sequence[Path], size: int | None = 32,
                 progress: Callable[[int, int], None] | None = None) -> list[tuple[Path, str]]:
    """Decode every file; return ``(path, reason)`` for each one that cannot be read."""
    bad = []
    for n, p in enumerate(paths, start=1):
        try:
            load_image(p, size)
        except ImageError as e:
            bad.append((Path(p), str(e)))
        if progress:
            progress(n, len(paths))
    return bad


def bad_fraction_error(bad: Sequence[tuple[Path, str]], total: int, max_bad_fraction: float) -> DataError | None:
    """The error to raise when more than ``max_bad_fraction`` (0..1) of ``total`` files are unreadable, else None."""
    if total and len(bad) / total > max_bad_fraction:
        shown = "; ".join(r for _, r in bad[:3])
        return DataError(f"{len(bad)} of {total} images ({len(bad) / total:.1%}) cannot be read, more than the "
                         f"allowed {max_bad_fraction:.1%} (--max-bad-fraction): {shown}")
    return None


class ImageDataset:
    """A torch map-style data set of ``(image tensor, label)`` built from files and integer labels.

    Args:
        paths: image files.
        labels: one integer class per file (use -1 for "no label", e.g. validation images).
        size: side in pixels of the square model input.
        mean, std: per-channel normalisation: ``(pixels / 255 - mean) / std``.
        augment: a name in ``toolchain.data.augment.AUGMENTATIONS`` ("none" for evaluation).
        max_bad_fraction: the fraction (0..1) of unreadable files tolerated; they are dropped.
        cache: keep decoded ``size`` x ``size`` uint8 images in memory (decode once, not every epoch);
            None: only when they fit in :data:`CACHE_MAX_BYTES`.
        fit: how non-square images become square (see :data:`FITS`).

    ``.bad`` lists the dropped files with the reason; ``.paths``/``.labels`` are those kept.
    """

    def __init__(self, paths: Sequence[str | Path], labels: Sequence[int], size: int,
                 mean: Sequence[float], std: Sequence[float], augment: str = "none",
                 max_bad_fraction: float = MAX_BAD_FRACTION, cache: bool | None = None, fit: str = "stretch") -> None:
        import torch

        from toolchain.data.augment import AUGMENTATIONS

        if len(paths) != len(labels):
            raise DataError(f"{len(paths)} images but {len(labels)} labels")
        if not paths:
            raise DataError("no images to build a data set from")
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise DataError(f"max_bad_fraction must be a fraction 0..1, got {max_bad_fraction}")
        self.size, self.fit = int(size), fit
        FITS.get(fit)
        self.transform = AUGMENTATIONS.get(augment)(self.size)
        self.augment = augment
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        self._mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.bad: list[tuple[Path, str]] = []
        if cache is None:
            cache = len(paths) * self.size * self.size * 3 <= CACHE_MAX_BYTES
        kept_paths, kept_labels, cache_arrays = [], [], []
        for p, y in zip(paths, labels):
            try:
                a = load_image(p, self.size, fit)
            except ImageError as e:
                self.bad.append((Path(p), str(e)))
                continue
            kept_paths.append(Path(p))
            kept_labels.append(int(y))
            if cache:
                cache_arrays.append(a)
        err = bad_fraction_error(self.bad, len(paths), max_bad_fraction)
        if err:
            raise err
        if self.bad:
            log.warning("skipped %d unreadable image(s) of %d, e.g. %s", len(self.bad), len(paths), self.bad[0][1])
        self.paths, self.labels = kept_paths, kept_labels
        self._cache = np.stack(cache_arrays) if cache else None
        self.num_classes = (max(kept_labels) + 1) if kept_labels and max(kept_labels) >= 0 else 0

    def __len__(self) -> int:
        return len(self.paths)

    def pixels(self, i: int) -> np.ndarray:
        """The uint8 (S, S, 3) image ``i`` before augmentation and normalisation."""
        if self._cache is not None:
            return self._cache[i]
        return load_image(self.paths[i], self.size, self.fit)

    def __getitem__(self, i: int):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(self.pixels(i))).permute(2, 0, 1)  # uint8 CHW
        x = self.transform(x)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
        return (x - self._mean) / self._std, self.labels[i]
