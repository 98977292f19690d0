"""Photos of any size and aspect ratio in, the same size (× the SR factor) out.

A generator only makes ``R × R`` images, so the observation is placed on the square canvas the
degradation produces from an ``R × R`` image (``R/f`` for ×f super-resolution):

* ``letterbox`` (default): the whole photo is resized to fit inside the canvas and centred; the
  padding is marked unobserved in the loss weights, so it never constrains the latent. Nothing of the
  photo is lost; the generator's full canvas is not all used.
* ``crop``: the photo's centre is resized to cover the whole canvas (the official scripts' choice).
  Everything outside the crop is left as observed (upsampled for SR) in the output.

After restoration the content box of the generator image is resized back to the photo's size
(× the SR factor) and fused with the observation at full resolution by the degradation's ``fuse``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch

from ganprior.degradations import resize

FIT_MODES = ("letterbox", "crop")

Box = tuple[int, int, int, int]  # top, left, height, width
Size = tuple[int, int]


class FitError(ValueError):
    """An image cannot be placed on the generator canvas (unknown mode, empty image)."""


@dataclass(frozen=True)
class Placement:
    """Where (part of) a photo sits on a canvas: ``crop`` of the photo ↔ ``box`` of the canvas."""

    source: Size
    canvas: Size
    crop: Box
    box: Box
    mode: str

    def scaled(self, canvas: Sequence[int], source: Sequence[int]) -> "Placement":
        """The same placement for a canvas and a photo of other sizes (e.g. observation -> generator
        space, low-resolution photo -> output size)."""
        def scale(b: Box, old: Size, new: Sequence[int]) -> Box:
            fy, fx = new[0] / old[0], new[1] / old[1]
            top, left = round(b[0] * fy), round(b[1] * fx)
            return top, left, max(1, round((b[0] + b[2]) * fy) - top), max(1, round((b[1] + b[3]) * fx) - left)

        canvas, source = (int(canvas[0]), int(canvas[1])), (int(source[0]), int(source[1]))
        return replace(self, source=source, canvas=canvas, crop=scale(self.crop, self.source, source),
                       box=scale(self.box, self.canvas, canvas))


def place(source: Sequence[int], canvas: Sequence[int], mode: str = "letterbox") -> Placement:
    """Plan how a photo of size ``source`` (H, W) goes onto a ``canvas`` (H, W)."""
    if mode not in FIT_MODES:
        raise FitError(f"unknown fit mode {mode!r}; choose one of {', '.join(FIT_MODES)}")
    h, w = int(source[0]), int(source[1])
    ch, cw = int(canvas[0]), int(canvas[1])
    if min(h, w, ch, cw) < 1:
        raise FitError(f"cannot place a {h}x{w} image on a {ch}x{cw} canvas")
    if mode == "letterbox":
        f = min(ch / h, cw / w)
        bh, bw = min(ch, max(1, round(h * f))), min(cw, max(1, round(w * f)))
        return Placement((h, w), (ch, cw), (0, 0, h, w), ((ch - bh) // 2, (cw - bw) // 2, bh, bw), mode)
    f = max(ch / h, cw / w)
    sh, sw = min(h, max(1, round(ch / f))), min(w, max(1, round(cw / f)))
    return Placement((h, w), (ch, cw), ((h - sh) // 2, (w - sw) // 2, sh, sw), (0, 0, ch, cw), mode)


def _cut(x: torch.Tensor, b: Box) -> torch.Tensor:
    return x[..., b[0]:b[0] + b[2], b[1]:b[1] + b[3]]


def to_canvas(img: torch.Tensor, p: Placement, kernel: str = "bicubic", fill: float = 0.0) -> torch.Tensor:
    """The photo's crop resized into the box of an otherwise ``fill``-valued canvas."""
    out = img.new_full((*img.shape[:2], *p.canvas), fill)
    content = resize(_cut(img, p.crop), p.box[2:], kernel)
    _cut(out, p.box).copy_(content)
    return out


def mask_to_canvas(mask: torch.Tensor, p: Placement) -> torch.Tensor:
    """Binary mask (1 = observed) on the canvas: a canvas pixel is observed only if every photo pixel
    under it was (area resampling, then a strict threshold); the padding is unobserved."""
    area = to_canvas(mask.float(), p, kernel="area")
    return (area >= 1 - 1e-4).float()


def content_weight(p: Placement, device: torch.device | str | None = None) -> torch.Tensor:
    """``[1, 1, *canvas]``: 1 where the photo is, 0 in the letterbox padding."""
    weight = torch.zeros(1, 1, *p.canvas, device=device)
    _cut(weight, p.box).fill_(1.0)
    return weight


def from_canvas(x: torch.Tensor, p: Placement, background: torch.Tensor | None = None,
                kernel: str = "bicubic") -> torch.Tensor:
    """Inverse of :func:`to_canvas`: the canvas box resized back to the photo crop.

    ``p`` must describe ``x``'s canvas and the wanted output size (see :meth:`Placement.scaled`).
    Outside the crop (``crop`` mode only) the output is ``background`` (same size as the output).
    """
    content = resize(_cut(x, p.box), p.crop[2:], kernel)
    if p.crop == (0, 0, *p.source):
        return content
    if background is None or tuple(background.shape[-2:]) != p.source:
        raise FitError(f"crop mode needs a {p.source[0]}x{p.source[1]} background for the area outside the crop")
    out = background.to(x.dtype).expand(x.shape[0], x.shape[1], -1, -1).clone()
    _cut(out, p.crop).copy_(content)
    return out
