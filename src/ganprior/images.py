"""Image and mask files <-> tensors, atomic saving, and before/after contact sheets (Pillow).

Conventions: images are float32 ``[1, 3, H, W]`` in ``[-1, 1]``; masks are ``[1, 1, H, W]`` with
1 = observed, 0 = hole. 8-bit values map linearly, ``v / 127.5 - 1``; saving rounds half up
(``floor((x + 1) * 127.5 + 0.5)`` after clamping, the same as StyleGAN's ``x * 127.5 + 128``
truncated), so ``to_uint8(from_uint8(a)) == a`` exactly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Mapping, Sequence, overload

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from ganprior.atomic import atomic_path
from ganprior.image_files import (  # noqa: F401  (re-exported: the file-level names live there, torch-free)
    API_NAMES,
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    MaskCoverageError,
    MaskPolarityError,
    MaskSizeError,
    observed_from_file,
    open_image,
    rgb_alpha,
)

PathLike = str | os.PathLike


# ----- uint8 <-> tensor ----------------------------------------------------------------------
def to_uint8(x: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """``[1, C, H, W]`` / ``[C, H, W]`` / ``[H, W]`` tensor -> ``H x W x C`` (or ``H x W``) uint8,
    clamped to ``value_range`` and rounded half up."""
    t = x.detach().to("cpu", torch.float32)
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"to_uint8 takes one image, got a batch of {t.shape[0]}")
        t = t[0]
    lo, hi = value_range
    t = ((t - lo) * (255.0 / (hi - lo))).clamp(0, 255).add(0.5).floor().to(torch.uint8)
    if t.ndim == 3:
        t = t.permute(1, 2, 0)
        if t.shape[2] == 1:
            t = t[..., 0]
    return t.numpy()


def from_uint8(a: np.ndarray) -> torch.Tensor:
    """``H x W x C`` or ``H x W`` uint8 array -> ``[1, C, H, W]`` float32 in ``[-1, 1]``."""
    t = torch.from_numpy(np.array(a, dtype=np.float32))
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    return t / 127.5 - 1.0


# ----- loading -------------------------------------------------------------------------------
@overload
def load_image(path: PathLike, max_pixels: int = ..., *, return_alpha: Literal[False] = ...) -> torch.Tensor: ...
@overload
def load_image(
    path: PathLike, max_pixels: int = ..., *, return_alpha: Literal[True]
) -> tuple[torch.Tensor, torch.Tensor | None]: ...
def load_image(path: PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, *, return_alpha: bool = False):
    """Read any Pillow-readable image as ``[1, 3, H, W]`` in ``[-1, 1]``.

    Grey, palette, CMYK and 16-bit grey files become RGB; EXIF orientation is applied. With
    ``return_alpha=True`` also returns the alpha channel ``[1, 1, H, W]`` in ``[0, 1]`` (or None).
    Raises :class:`ImageLoadError` for missing, corrupt or oversized files.
    """
    rgb, alpha = rgb_alpha(open_image(path, max_pixels))
    image = torch.from_numpy(rgb).float().permute(2, 0, 1)[None] * 2.0 - 1.0
    if not return_alpha:
        return image
    return image, None if alpha is None else torch.from_numpy(alpha).float()[None, None]


def load_mask(
    path: PathLike,
    *,
    hole_value: Literal["black", "white", "transparent"],
    size: Sequence[int] | None = None,
    resize: bool = False,
    threshold: float = 0.5,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    names: Mapping[str, str] = API_NAMES,
) -> torch.Tensor:
    """Read a mask file as ``[1, 1, H, W]`` float {0, 1} with 1 = observed.

    ``hole_value`` is required because both conventions are common: ``"black"`` (dark pixels are
    holes), ``"white"`` (bright pixels are holes) or ``"transparent"`` (alpha below ``threshold``).
    ``size=(H, W)`` checks the mask against the image (:class:`MaskSizeError` naming both sizes),
    or nearest-resizes it when ``resize=True``. ``names``: how errors spell the options (see ``image_files``).
    """
    observed = observed_from_file(path, hole_value, threshold, max_pixels, names)
    mask = torch.from_numpy(observed).float()[None, None]
    if size is not None:
        want = (int(size[0]), int(size[1]))
        if tuple(mask.shape[-2:]) != want:
            if not resize:
                raise MaskSizeError(
                    f"mask {path} is {mask.shape[-1]}x{mask.shape[-2]} (WxH) but the image is "
                    f"{want[1]}x{want[0]}; pass a mask of the image's size or resize=True"
                )
            mask = F.interpolate(mask, size=want, mode="nearest-exact")
    return mask


# ----- saving --------------------------------------------------------------------------------
def _atomic_save(img: Image.Image, path: PathLike, **save_kwargs) -> Path:
    """Through :func:`ganprior.atomic.atomic_path`: readers never see half a file; umask modes."""
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format=Image.registered_extensions().get(path.suffix.lower()), **save_kwargs)
    return path


def tensor_to_pil(x: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Image.Image:
    """One image tensor (1 or 3 channels) -> Pillow image."""
    a = to_uint8(x, value_range)
    if a.ndim == 3 and a.shape[2] not in (3, 4):
        raise ValueError(f"can only save 1, 3 or 4 channels, got {a.shape[2]}")
    return Image.fromarray(a)


def save_image(
    x: torch.Tensor, path: PathLike, value_range: tuple[float, float] = (-1.0, 1.0), **save_kwargs
) -> Path:
    """Save one image atomically; the format follows the suffix. Masks: ``value_range=(0, 1)``."""
    return _atomic_save(tensor_to_pil(x, value_range), path, **save_kwargs)


# ----- contact sheets ------------------------------------------------------------------------
def _caption(labels: Sequence[str] | Sequence[Sequence[str]] | None, r: int, c: int) -> str:
    if not labels:
        return ""
    return str(labels[r][c] if isinstance(labels[0], (list, tuple)) else labels[c])  # type: ignore[index]


def _cell_image(x: torch.Tensor) -> Image.Image:
    t = x.detach().float()
    while t.ndim < 4:
        t = t[None]
    if t.shape[1] == 1 and float(t.min()) >= 0.0:
        return tensor_to_pil(t.expand(-1, 3, -1, -1), (0.0, 1.0))  # masks are in [0, 1]
    return tensor_to_pil(t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t)


#: colour of the holes :func:`mark_holes` draws (magenta: rare in photos and emoji)
HOLE_COLOUR = (1.0, -1.0, 1.0)


def mark_holes(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``image`` with every pixel that covers a hole of ``mask`` (1 = observed) painted :data:`HOLE_COLOUR`;
    a mask of another size (e.g. before ×f SR) is area-resampled, and any hole under a pixel marks it."""
    m = mask.detach().float().to(image.device)
    if tuple(m.shape[-2:]) != tuple(image.shape[-2:]):
        m = F.interpolate(m, size=image.shape[-2:], mode="area")
    rgb = image[:, :3] if image.shape[1] >= 3 else image.expand(-1, 3, -1, -1)
    colour = torch.tensor(HOLE_COLOUR, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return torch.where(m[:, :1] < 1 - 1e-4, colour, rgb)


def make_sheet(
    rows: Sequence[Sequence[torch.Tensor]],
    labels: Sequence[str] | Sequence[Sequence[str]] | None,
    path: PathLike | None = None,
    min_cell: int = 128,
    pad: int = 4,
) -> Image.Image:
    """Grid of images with a caption under each (e.g. degraded | restored | fused | truth).

    ``labels`` is one caption per column or one per cell; a caption may hold several lines (``\\n``) and
    the cells widen so that none is clipped. One-channel tensors without negative
    values are drawn as masks (range [0, 1]); everything else as [-1, 1] images. Small images (32x32, low-resolution
    observations) are enlarged by an integer nearest-neighbour factor so every cell is at least
    ``min_cell`` pixels and pixels stay crisp. Saved atomically when ``path`` is given.
    """
    if not rows or not all(rows):
        raise ValueError("make_sheet needs at least one non-empty row of images")
    cells = [[_cell_image(x) for x in row] for row in rows]
    font = ImageFont.load_default()
    captions = [[_caption(labels, r, c) for c in range(len(row))] for r, row in enumerate(cells)]
    draft = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [draft.multiline_textbbox((0, 0), text, font=font) for row in captions for text in row if text]
    cell_w = max(min_cell, max(im.width for row in cells for im in row), *(b[2] + 4 for b in boxes))
    cell_h = max(min_cell, max(im.height for row in cells for im in row))
    text_h = max([14, *(b[3] + 4 for b in boxes)])
    n_cols = max(len(row) for row in cells)
    sheet = Image.new("RGB", (n_cols * (cell_w + pad) + pad, len(cells) * (cell_h + text_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(cells):
        for c, im in enumerate(row):
            factor = max(1, min(cell_w // im.width, cell_h // im.height))
            im = im.resize((im.width * factor, im.height * factor), Image.NEAREST)
            x0 = pad + c * (cell_w + pad)
            y0 = pad + r * (cell_h + text_h + pad)
            sheet.paste(im, (x0 + (cell_w - im.width) // 2, y0 + (cell_h - im.height) // 2))
            draw.multiline_text((x0 + 2, y0 + cell_h + 1), captions[r][c], fill="black", font=font)
    if path is not None:
        _atomic_save(sheet, path)
    return sheet
