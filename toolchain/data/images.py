"""The one image loader (Pillow + numpy) and the torch data set used for training and validation.

:func:`load_image` turns any image file into uint8 ``(H, W, C)`` in the model's channel order: for ``rgb``/``bgr``
grayscale (8 or 16 bit) is replicated to three channels; for ``gray`` (a 1-channel model) a grayscale file is
read as its one channel, and a colour file is refused unless ``rgb_to_gray`` asks for the conversion (ITU-R
601 luma) — a colour image silently averaged would hide a wrong data set. Transparency is flattened onto
black, palette images are expanded, EXIF orientation is applied, and the image is resized to ``size`` (an
int: square; or (H, W); how: see :data:`FITS`). A file that cannot be decoded raises
:class:`~toolchain.errors.ImageError`.

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

#: How an image of another aspect becomes the model's (width, height) (Pillow's order).
FITS: Registry[Callable[[Image.Image, tuple[int, int]], Image.Image]] = Registry("image fit")


@FITS.register("stretch")
def _stretch(im: Image.Image, wh: tuple[int, int]) -> Image.Image:
    """Resize to the input size, ignoring aspect ratio (what the exported models see; the default)."""
    return im.resize(wh, Image.Resampling.BILINEAR)


@FITS.register("crop")
def _crop(im: Image.Image, wh: tuple[int, int]) -> Image.Image:
    """Centre-crop to the input's aspect, then resize (keeps aspect, loses the long side's edges)."""
    return ImageOps.fit(im, wh, Image.Resampling.BILINEAR)


@FITS.register("pad")
def _pad(im: Image.Image, wh: tuple[int, int]) -> Image.Image:
    """Resize to fit inside the input size and pad the rest with black (keeps everything)."""
    return ImageOps.pad(im, wh, Image.Resampling.BILINEAR, color=0 if im.mode == "L" else (0, 0, 0))


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


def _is_gray(im: Image.Image) -> bool:
    """A file whose pixels carry one channel: L/I/F modes, or RGB whose three channels are equal (gray saved as RGB)."""
    if im.mode in ("L", "1", "I;16", "I;16B", "I;16L", "I;16N", "I", "F", "LA", "La"):
        return True
    if im.mode == "RGB":
        a = np.asarray(im)
        return bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())
    return False


def _to_gray(im: Image.Image, path: str | Path, rgb_to_gray: bool) -> Image.Image:
    from toolchain.errors import DataError

    gray = _is_gray(im) or (im.mode == "P" and _is_gray(im.convert("RGB")))
    if not gray and not rgb_to_gray:
        raise DataError(f"image {path} is in colour ({im.mode}) but the model takes 1 channel: give grayscale images, "
                        "or convert colour ones with --rgb-to-gray when creating the bundle")
    return _to_rgb(im).convert("L")  # equal channels: exact; colour: ITU-R 601 luma (asked for)


def load_image(path: str | Path, size: int | tuple[int, ...] | None = None, fit: str = "stretch",
               color: str = "rgb", rgb_to_gray: bool = False) -> np.ndarray:
    """Read an image file as uint8 ``(H, W, C)`` in channel order ``color``; resized to ``size`` if given.

    Args:
        path: any format Pillow reads (PNG, JPEG, BMP, TIFF, WebP, PPM ...).
        size: output side in pixels (square), ``(H, W)``, or None for the file's own size.
        fit: how an image of another aspect becomes ``size``: a name in :data:`FITS` (stretch, crop, pad).
        color: ``rgb``, ``bgr`` (3 channels) or ``gray`` (1 channel; a colour file raises DataError unless
            ``rgb_to_gray``).

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
    from toolchain.inputspec import hw as _hw

    hw = None if size is None else _hw(size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                check_declared_size(im, path)
                if hw is not None and im.format == "JPEG":
                    im.draft("RGB", (hw[1], hw[0]))  # decode JPEGs at a reduced scale when much larger
                im.load()
                im = ImageOps.exif_transpose(im)
                rgb = _to_gray(im, path, rgb_to_gray) if color == "gray" else _to_rgb(im)
    except FileNotFoundError:
        raise ImageError(f"image {path} does not exist") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"cannot read image {path}: {e}") from None
    if rgb.width < 1 or rgb.height < 1:
        raise ImageError(f"image {path} is empty ({rgb.width}x{rgb.height})")
    if hw is not None and rgb.size != (hw[1], hw[0]):
        rgb = fitter(rgb, (hw[1], hw[0]))
    a = np.asarray(rgb, dtype=np.uint8)
    if color == "gray":
        return a[:, :, None].copy()
    return (a[:, :, ::-1] if color == "bgr" else a).copy()


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
        size: the model input: side in pixels (square) or (H, W).
        mean, std: per-channel normalisation: ``(pixels / scale - mean) / std``; their length is the channel count.
        augment: a name in ``toolchain.data.augment.AUGMENTATIONS`` ("none" for evaluation).
        max_bad_fraction: the fraction (0..1) of unreadable files tolerated; they are dropped.
        cache: keep decoded ``size`` x ``size`` uint8 images in memory (decode once, not every epoch);
            None: only when they fit in :data:`CACHE_MAX_BYTES`.
        fit: how images of another aspect become ``size`` (see :data:`FITS`).
        color, scale, rgb_to_gray: the model's channel order, pixel scale and colour-to-gray permission
            (``Bundle.pixel_options``; see :func:`load_image`).

    ``.bad`` lists the dropped files with the reason; ``.paths``/``.labels`` are those kept.
    """

    def __init__(self, paths: Sequence[str | Path], labels: Sequence[int], size: int,
                 mean: Sequence[float], std: Sequence[float], augment: str = "none",
                 max_bad_fraction: float = MAX_BAD_FRACTION, cache: bool | None = None, fit: str = "stretch",
                 color: str | None = None, scale: float = 255.0, rgb_to_gray: bool = False) -> None:
        import torch

        from toolchain.data.augment import AUGMENTATIONS

        if len(paths) != len(labels):
            raise DataError(f"{len(paths)} images but {len(labels)} labels")
        if not paths:
            raise DataError("no images to build a data set from")
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise DataError(f"max_bad_fraction must be a fraction 0..1, got {max_bad_fraction}")
        from toolchain.inputspec import hw

        self.hw = hw(size)  # an int, (H, W) or (C, H, W)
        self.size, self.fit = self.hw, fit
        FITS.get(fit)
        channels = len(mean)
        if len(std) != channels or channels not in (1, 3):
            raise DataError(f"mean and std need one value per channel (1 or 3), got {len(mean)} and {len(std)}")
        self.color = color or ("gray" if channels == 1 else "rgb")
        if (self.color == "gray") != (channels == 1):
            raise DataError(f"channel order {self.color!r} does not fit {channels} channel(s)")
        self.scale, self.rgb_to_gray = float(scale), bool(rgb_to_gray)
        self.transform = AUGMENTATIONS.get(augment)(min(self.hw))
        self.augment = augment
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        self._mean = torch.tensor(mean, dtype=torch.float32).view(channels, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(channels, 1, 1)
        self.bad: list[tuple[Path, str]] = []
        if cache is None:
            cache = len(paths) * self.hw[0] * self.hw[1] * channels <= CACHE_MAX_BYTES
        kept_paths, kept_labels, cache_arrays = [], [], []
        for p, y in zip(paths, labels):
            try:
                a = load_image(p, self.hw, fit, self.color, self.rgb_to_gray)
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

    def options(self) -> dict:
        """The keyword arguments that build another data set reading images exactly as this one does."""
        return {"fit": self.fit, "color": self.color, "scale": self.scale, "rgb_to_gray": self.rgb_to_gray}

    def pixels(self, i: int) -> np.ndarray:
        """The uint8 (H, W, C) image ``i`` before augmentation and normalisation."""
        if self._cache is not None:
            return self._cache[i]
        return load_image(self.paths[i], self.hw, self.fit, self.color, self.rgb_to_gray)

    def __getitem__(self, i: int):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(self.pixels(i))).permute(2, 0, 1)  # uint8 CHW
        x = self.transform(x)
        x = x.float().div_(self.scale) if x.dtype == torch.uint8 else x
        return (x - self._mean) / self._std, self.labels[i]
