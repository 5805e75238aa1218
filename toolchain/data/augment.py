"""Training augmentations for eye images, by name.

Each entry of :data:`AUGMENTATIONS` maps an input size (pixels) to a callable on a uint8
``(3, S, S)`` tensor that returns a tensor of the same shape. Randomness comes from torch's
global generator, so a seeded run (and a resumed one, which restores that generator) repeats.

No horizontal flip by default: flipping a left eye makes it look like a right eye, which is
a different class (``Sample.identity``). ``ocular-hflip`` exists for data sets without sides.
"""

from __future__ import annotations

from typing import Callable

from toolchain.registry import Registry

Transform = Callable[["object"], "object"]

#: name -> (input size in pixels -> transform)
AUGMENTATIONS: Registry[Callable[[int], Transform]] = Registry("augmentation")


@AUGMENTATIONS.register("none")
def none(size: int) -> Transform:
    """No augmentation (evaluation)."""
    return lambda x: x


def _ocular(size: int, hflip: bool) -> Transform:
    from torchvision.transforms import v2

    ops = [
        # capture framing changes: small shift, zoom and roll of the head
        v2.RandomAffine(degrees=8.0, translate=(0.06, 0.06), scale=(0.9, 1.1)),
        # phone cameras: exposure, contrast, white balance
        v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.2, hue=0.02),
        v2.RandomApply([v2.GaussianBlur(kernel_size=3 if size < 128 else 5, sigma=(0.1, 1.2))], p=0.3),
    ]
    if hflip:
        ops.append(v2.RandomHorizontalFlip())
    return v2.Compose(ops)


@AUGMENTATIONS.register("ocular")
def ocular(size: int) -> Transform:
    """Affine jitter (+-8 deg, 6 % shift, 0.9-1.1 zoom), colour jitter, occasional blur; no flip."""
    return _ocular(size, hflip=False)


@AUGMENTATIONS.register("ocular-hflip")
def ocular_hflip(size: int) -> Transform:
    """``ocular`` plus horizontal flips (only for data sets whose classes ignore the eye side)."""
    return _ocular(size, hflip=True)
