"""Image conventions shared by every metric: range conversion, colour reductions, input checks.

Project tensors are ``[N, C, H, W]`` float32 in ``[-1, 1]``. Published numbers are computed on
saved 8-bit images, so metrics first map tensors onto the uint8 grid:

    uint8 = round((x + 1) * 127.5), clipped to [0, 255]   (``torch.round``: halves go to even)

and back with ``x = uint8 / 127.5 - 1`` (exact, so a uint8 image survives a round trip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

#: colour reduction applied before a full-reference metric
ColorMode = Literal["gray", "rgb", "y"]
COLOR_MODES: tuple[str, ...] = ("gray", "rgb", "y")

#: MATLAB ``rgb2gray`` weights (the inverse of the NTSC YIQ transform, as MATLAB computes them)
MATLAB_GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)
#: ITU-R BT.601 luma for 8-bit studio range, as MATLAB ``rgb2ycbcr`` (Y in [16, 235])
BT601_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)


class MetricInputError(ValueError):
    """A metric was given images, masks or labels it cannot score."""


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed honestly here (missing weights or package); ``reason`` says why."""

    def __init__(self, metric: str, reason: str) -> None:
        super().__init__(f"{metric} unavailable: {reason}")
        self.metric = metric
        self.reason = reason


def check_images(x: torch.Tensor, what: str = "images") -> None:
    """Refuse anything that is not a ``[N, C, H, W]`` floating tensor with 1 or 3 channels."""
    if not isinstance(x, torch.Tensor):
        raise MetricInputError(f"{what} must be a torch.Tensor [N, C, H, W], got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise MetricInputError(f"{what} must be [N, 1 or 3, H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise MetricInputError(f"{what} must be floating point in [-1, 1], got dtype {x.dtype}")
    if x.numel() == 0:
        raise MetricInputError(f"{what} is empty: shape {tuple(x.shape)}")


def check_pair(x: torch.Tensor, ref: torch.Tensor) -> None:
    """Both images valid and of identical shape."""
    check_images(x, "image")
    check_images(ref, "reference")
    if x.shape != ref.shape:
        raise MetricInputError(f"image {tuple(x.shape)} and reference {tuple(ref.shape)} differ in shape")


def check_region(region: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Validate an evaluation region ``[N or 1, 1, H, W]`` and return it as float in ``[0, 1]``."""
    if not isinstance(region, torch.Tensor) or region.ndim != 4 or region.shape[1] != 1:
        shape = tuple(region.shape) if isinstance(region, torch.Tensor) else type(region).__name__
        raise MetricInputError(f"region/mask must be [N, 1, H, W], got {shape}")
    if region.shape[-2:] != x.shape[-2:] or region.shape[0] not in (1, x.shape[0]):
        raise MetricInputError(f"region {tuple(region.shape)} does not fit images {tuple(x.shape)}")
    region = region.to(device=x.device, dtype=torch.float64)
    if region.min() < 0 or region.max() > 1:
        raise MetricInputError("region/mask values must lie in [0, 1]")
    return region.expand(x.shape[0], -1, -1, -1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` float -> uint8 grid, rounding to nearest (ties to even) and clipping."""
    return ((x.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def from_uint8(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` (or an ``HxW`` / ``HxWxC`` array) -> float32 in ``[-1, 1]``."""
    t = torch.from_numpy(np.array(x)) if isinstance(x, np.ndarray) else x
    if t.dtype != torch.uint8:
        raise MetricInputError(f"from_uint8 expects uint8 data, got {t.dtype}")
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t.permute(2, 0, 1)[None]
    return t.float() / 127.5 - 1.0


def load_image(path: str | Path) -> torch.Tensor:
    """Read an image file as ``[1, C, H, W]`` in ``[-1, 1]`` (C = 1 for grey files, else RGB)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            mode = "L" if im.mode in ("1", "L", "I;16", "I", "F") else "RGB"
            array = np.asarray(im.convert(mode), dtype=np.uint8)
    except (FileNotFoundError, IsADirectoryError, UnidentifiedImageError) as err:
        raise MetricInputError(f"cannot read image {path}: {err}") from err
    return from_uint8(array)


def reduce_color(x255: torch.Tensor, mode: ColorMode) -> torch.Tensor:
    """Colour reduction on the 0..255 scale: ``gray`` = MATLAB ``rgb2gray`` rounded to uint8 (the
    official SSIM convention), ``y`` = BT.601 Y without rounding (BasicSR's ``test_y_channel``),
    ``rgb`` = channels kept (metrics then average over them). Single-channel input is returned as is.
    """
    if mode not in COLOR_MODES:
        raise MetricInputError(f"colour mode must be one of {COLOR_MODES}, got {mode!r}")
    if x255.shape[1] == 1 or mode == "rgb":
        return x255
    weights = MATLAB_GRAY_WEIGHTS if mode == "gray" else BT601_Y_WEIGHTS
    w = torch.tensor(weights, dtype=x255.dtype, device=x255.device).view(1, 3, 1, 1)
    luma = (x255 * w).sum(dim=1, keepdim=True)
    return luma.round().clamp(0, 255) if mode == "gray" else luma + 16.0
