from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from toolchain.data.augment import AUGMENTATIONS
from toolchain.data.images import FITS, ImageDataset, load_image
from toolchain.errors import DataError, ImageError


@pytest.mark.parametrize("mode,value,expected", [
    ("L", 100, (100, 100, 100)),
    ("I;16", 65535, (255, 255, 255)),  # 16-bit white must not clip to 255 of 65535 -> scaled
    ("RGBA", (200, 100, 50, 0), (0, 0, 0)),  # fully transparent -> black
    ("RGBA", (200, 100, 50, 255), (200, 100, 50)),
    ("P", 3, None),
])
def test_modes_become_rgb_uint8(tmp_path, mode, value, expected):
    p = tmp_path / "x.png"
    Image.new(mode, (7, 5), value).save(p)
    a = load_image(p, 9)
    assert a.shape == (9, 9, 3) and a.dtype == np.uint8
    if expected is not None:
        assert tuple(int(v) for v in a[4, 4]) == expected


def test_16bit_gray_is_scaled_not_clipped(tmp_path):
    p = tmp_path / "g16.png"
    Image.fromarray(np.full((4, 4), 32896, np.uint16)).save(p)  # half of 65535
    assert abs(int(load_image(p)[0, 0, 0]) - 128) <= 1


def test_native_size_kept_without_size(tmp_path):
    p = tmp_path / "odd.jpg"
    Image.new("RGB", (13, 7), (9, 9, 9)).save(p)
    assert load_image(p).shape == (7, 13, 3)


@pytest.mark.parametrize("fit", FITS.names())
def test_fits_give_square_output(tmp_path, fit):
    p = tmp_path / "wide.png"
    Image.new("RGB", (40, 10), (255, 0, 0)).save(p)
    assert load_image(p, 16, fit).shape == (16, 16, 3)


def test_corrupt_and_missing_files_raise_image_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64)).save(good)
    (tmp_path / "trunc.png").write_bytes(good.read_bytes()[:60])
    for name in ("bad.png", "trunc.png", "missing.png"):
        with pytest.raises(ImageError, match=name):
            load_image(tmp_path / name, 8)


def test_dataset_skips_and_counts_bad_files_then_refuses_too_many(tmp_path):
    paths = []
    for k in range(9):
        p = tmp_path / f"{k}.png"
        Image.new("RGB", (10, 10), (k, k, k)).save(p)
        paths.append(p)
    (tmp_path / "bad.png").write_bytes(b"junk")
    paths.append(tmp_path / "bad.png")
    ds = ImageDataset(paths, list(range(10)), 8, (0.5,) * 3, (0.25,) * 3, max_bad_fraction=0.1)
    assert len(ds) == 9 and len(ds.bad) == 1 and ds.bad[0][0].name == "bad.png"
    x, y = ds[3]
    assert tuple(x.shape) == (3, 8, 8) and y == 3
    assert abs(float(x[0, 0, 0]) - (3 / 255 - 0.5) / 0.25) < 1e-5
    with pytest.raises(DataError, match="1 of 10 images"):
        ImageDataset(paths, list(range(10)), 8, (0.5,) * 3, (0.25,) * 3, max_bad_fraction=0.05)


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_augmentations_keep_shape_and_dtype(name):
    import torch

    torch.manual_seed(0)
    x = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    y = AUGMENTATIONS.get(name)(32)(x)
    assert y.shape == x.shape and y.dtype == torch.uint8


def test_default_augmentation_never_flips():
    import torch

    # a left-right ramp: after a flip the left column would be brighter than the right one
    ramp = torch.arange(32, dtype=torch.uint8).mul(8).expand(3, 32, 32).contiguous()
    t = AUGMENTATIONS.get("ocular")(32)
    torch.manual_seed(0)
    for _ in range(30):
        y = t(ramp).float()
        assert y[:, 12:20, 4].mean() < y[:, 12:20, 27].mean()
