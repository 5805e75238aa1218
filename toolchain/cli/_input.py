"""The input-spec options ``deploy model init``, ``model import`` and ``train`` share (one definition, one help text).

``--input-size`` takes ``H`` (square) or ``HxW`` (height first); ``--mean``/``--std`` one value (every channel)
or one per channel. Parsing and bounds live in :mod:`toolchain.inputspec` (library errors, exit 2).
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

InputSizeOpt = Annotated[Optional[str], typer.Option(
    "--input-size", help="Input size in pixels: H (square) or HxW, height first, e.g. 64x128 (default: the card's).")]
ChannelsOpt = Annotated[Optional[int], typer.Option(
    "--channels", help="Input channels: 1 (grayscale, e.g. NIR iris) or 3 (colour). Default: the card's (3).")]
MeanOpt = Annotated[Optional[str], typer.Option(
    "--mean", help="Per-channel mean after dividing by --pixel-scale: one value or one per channel (0.5 or 0.5,0.5,0.5).")]
StdOpt = Annotated[Optional[str], typer.Option(
    "--std", help="Per-channel std: one value or one per channel.")]
ColorOpt = Annotated[Optional[str], typer.Option(
    "--color", help="Channel order the model was trained on: rgb or bgr (3 channels), gray (1).")]
PixelScaleOpt = Annotated[Optional[float], typer.Option(
    "--pixel-scale", help="Pixels are divided by this before mean/std (default 255: mean/std in [0, 1] units; "
                          "1: mean/std in raw 0..255 units).")]
RgbToGrayOpt = Annotated[bool, typer.Option(
    "--rgb-to-gray", help="1-channel model: convert colour images to gray (ITU-R 601 luma) instead of refusing them.")]


def pixel_kwargs(channels: int | None, mean: str | None, std: str | None, color: str | None,
                 pixel_scale: float | None, rgb_to_gray: bool) -> dict[str, Any]:
    """The options as :func:`toolchain.models.bundle.input_spec` keywords (only those given)."""
    given = {"channels": channels, "mean": mean, "std": std, "color": color, "scale": pixel_scale}
    out = {k: v for k, v in given.items() if v is not None}
    if rgb_to_gray:
        out["rgb_to_gray"] = True
    return out
