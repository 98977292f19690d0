"""Inpainting masks: from files (explicit polarity), alpha, box specs, or seeded generators.

Every function returns a float32 ``[1, 1, H, W]`` tensor with 1 = observed and 0 = hole.
Generators take a ``seed`` so the same mask comes back on every machine (CPU ``torch.Generator``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from ganprior.images import MaskPolarityError, MaskSizeError, load_mask

from ganprior.mask_conventions import MASK_CONVENTIONS, MaskConventionError

from .base import DegradationError, Size


class MaskSpecError(DegradationError):
    """A mask description (box string, generator name, polarity) could not be understood."""


def _size(size: Sequence[int]) -> Size:
    if len(size) != 2 or int(size[0]) < 1 or int(size[1]) < 1:
        raise MaskSpecError(f"mask size must be (height, width) with positive entries, got {tuple(size)}")
    return int(size[0]), int(size[1])


def mask_from_alpha(alpha: torch.Tensor | np.ndarray, threshold: float = 0.5) -> torch.Tensor:
    """Transparent pixels (alpha in [0, 1] below ``threshold``) are holes."""
    a = torch.as_tensor(np.asarray(alpha, dtype=np.float32))
    while a.ndim < 4:
        a = a[None]
    return (a >= threshold).float()


def _parse_coord(text: str, extent: int) -> int:
    value = float(text)
    if "." in text or "e" in text.lower():
        if not 0.0 <= value <= 1.0:
            raise MaskSpecError(f"fractional box coordinate {text} must be in [0, 1]")
        return int(round(value * extent))
    return int(value)


def box_mask(spec: str | Sequence[float], size: Sequence[int]) -> torch.Tensor:
    """Rectangular hole from ``"x0,y0,x1,y1"`` (end-exclusive). Integers are pixels, decimals
    (``"0.25,0.25,0.75,0.75"``) are fractions of the width/height."""
    h, w = _size(size)
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",")]
    else:  # a sequence: floats are fractions, ints are pixels
        parts = [repr(float(p)) if isinstance(p, float) else str(int(p)) for p in spec]
    if len(parts) != 4:
        raise MaskSpecError(f"box spec must be 'x0,y0,x1,y1', got {spec!r}")
    try:
        x0, x1 = (_parse_coord(parts[i], w) for i in (0, 2))
        y0, y1 = (_parse_coord(parts[i], h) for i in (1, 3))
    except ValueError as err:
        raise MaskSpecError(f"box spec {spec!r} has a non-numeric coordinate") from err
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise MaskSpecError(f"box {spec!r} -> x {x0}..{x1}, y {y0}..{y1} is empty or outside the {w}x{h} image")
    mask = torch.ones(1, 1, h, w)
    mask[..., y0:y1, x0:x1] = 0
    return mask


def center_box_mask(size: Sequence[int]) -> torch.Tensor:
    """The papers' centred hole: side ``min(h, w)//3`` rounded as in DGP (128 px -> rows 43..84)."""
    h, w = _size(size)
    side = min(h, w) // 3
    mask = torch.ones(1, 1, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    mask[..., top : h - top, left : w - left] = 0
    return mask


def random_box_mask(
    size: Sequence[int], seed: int = 0, min_frac: float = 0.2, max_frac: float = 0.5
) -> torch.Tensor:
    """One box whose sides are uniform fractions of the image in ``[min_frac, max_frac]``."""
    h, w = _size(size)
    if not 0.0 < min_frac <= max_frac <= 1.0:
        raise MaskSpecError(f"need 0 < min_frac <= max_frac <= 1, got {min_frac}, {max_frac}")
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(4, generator=g).tolist()
    bh = max(1, round(h * (min_frac + (max_frac - min_frac) * u[0])))
    bw = max(1, round(w * (min_frac + (max_frac - min_frac) * u[1])))
    top, left = int(u[2] * (h - bh + 1)), int(u[3] * (w - bw + 1))
    mask = torch.ones(1, 1, h, w)
    mask[..., top : top + bh, left : left + bw] = 0
    return mask


def stroke_mask(size: Sequence[int], seed: int = 0, strokes: int = 4, width_frac: float = 0.06) -> torch.Tensor:
    """Free-form brush strokes (random polylines of thick round lines), drawn with Pillow."""
    h, w = _size(size)
    g = torch.Generator().manual_seed(seed)
    canvas = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(width_frac * min(h, w)))
    for _ in range(strokes):
        u = torch.rand(2, generator=g).tolist()
        x, y = u[0] * w, u[1] * h
        vertices = 3 + int(torch.randint(0, 5, (1,), generator=g))
        points = [(x, y)]
        for _ in range(vertices):
            angle, length = torch.rand(2, generator=g).tolist()
            step = (0.1 + 0.25 * length) * min(h, w)
            x = min(max(x + step * math.cos(2 * math.pi * angle), 0), w - 1)
            y = min(max(y + step * math.sin(2 * math.pi * angle), 0), h - 1)
            points.append((x, y))
        draw.line(points, fill=0, width=width, joint="curve")
        for px, py in points:
            r = width / 2
            draw.ellipse((px - r, py - r, px + r, py + r), fill=0)
    return torch.from_numpy(np.asarray(canvas) > 127).float()[None, None]


def random_pixel_mask(size: Sequence[int], missing: float = 0.5, seed: int = 0) -> torch.Tensor:
    """Drop exactly ``round(missing * H * W)`` pixels chosen uniformly at random."""
    h, w = _size(size)
    if not 0.0 <= missing <= 1.0:
        raise MaskSpecError(f"missing-pixel fraction must be in [0, 1], got {missing}")
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(h * w)
    mask[torch.randperm(h * w, generator=g)[: round(missing * h * w)]] = 0
    return mask.view(1, 1, h, w)


#: generator names accepted by :func:`mask_from_spec`
MASK_KINDS = ("center", "box:x0,y0,x1,y1", "random-box", "strokes", "pixels:<missing fraction>", "<path>.png")


def mask_from_spec(
    spec: str | os.PathLike | torch.Tensor, size: Sequence[int], seed: int = 0, hole_value: str | None = None
) -> torch.Tensor:
    """Build a mask for an image of ``size`` from a tensor, a file path or a short text spec.

    Specs: ``center``, ``box:x0,y0,x1,y1`` (or a bare ``x0,y0,x1,y1``), ``random-box``,
    ``strokes``, ``pixels:0.5``, or a path to a mask image (then ``hole_value`` is required).
    """
    h, w = _size(size)
    if isinstance(spec, torch.Tensor):
        mask = spec.float()
        while mask.ndim < 4:
            mask = mask[None]
        if tuple(mask.shape[-2:]) != (h, w) or mask.shape[1] != 1:
            raise MaskSizeError(f"mask is {tuple(mask.shape)}, expected [N, 1, {h}, {w}] for this image")
        return mask
    text = str(spec).strip()
    kind, _, arg = text.partition(":")
    kind = kind.lower()
    if kind == "center":
        return center_box_mask((h, w))
    if kind == "box":
        return box_mask(arg, (h, w))
    if kind == "random-box":
        return random_box_mask((h, w), seed=seed)
    if kind == "strokes":
        return stroke_mask((h, w), seed=seed)
    if kind == "pixels":
        try:
            missing = float(arg) if arg else 0.5
        except ValueError as err:
            raise MaskSpecError(f"pixels:<fraction> needs a number, got {arg!r}") from err
        return random_pixel_mask((h, w), missing=missing, seed=seed)
    if text.count(",") == 3 and not Path(text).suffix:
        return box_mask(text, (h, w))
    if Path(text).suffix:  # load_mask refuses a missing or ambiguous hole value, as every interface does
        try:
            return load_mask(text, size=(h, w), hole_value=hole_value)  # type: ignore[arg-type]
        except MaskPolarityError as err:
            raise MaskSpecError(str(err)) from err
    raise MaskSpecError(f"unknown mask spec {text!r}; known: {', '.join(MASK_KINDS)}")


# ----- whose mask is it (the named conventions live in the torch-free ``ganprior.mask_conventions``) ----
def observed_from_convention(mask: torch.Tensor, convention: str) -> torch.Tensor:
    """An in-memory mask in ``convention`` as ganprior's ``[..., H, W]`` float with 1 = observed
    (diffusers' 1 = inpaint is flipped; deepinv's and ganprior's 1 = observed are kept)."""
    if convention not in MASK_CONVENTIONS:
        raise MaskConventionError(f"mask convention must be one of {', '.join(MASK_CONVENTIONS)}, got {convention!r}")
    mask = mask.float()
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise MaskSpecError("a mask tensor must be binary (0 and 1)")
    return 1.0 - mask if convention == "diffusers" else mask
