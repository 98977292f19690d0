"""FFHQ face alignment and its inverse, on ``[1, C, H, W]`` tensors.

The recipe is the one that made FFHQ (NVlabs/ffhq-dataset ``download_ffhq.py``,
``recreate_aligned_images``; PTI, PULSE and ILO ship the same step), from dlib's 68 landmarks:

1. eye centres = mean of points 36-41 and 42-47; mouth corners = points 48 and 54;
2. ``x`` = eye-to-eye vector minus the eye-to-mouth vector turned by 90°, normalised and scaled to
   ``max(2.0·|eye_to_eye|, 1.8·|eye_to_mouth|)``; ``y`` = ``x`` turned by 90°;
3. centre ``c = eye_avg + 0.1·eye_to_mouth``; the oriented square ("quad") has corners
   ``c - x - y, c - x + y, c + x + y, c + x - y`` (upper-left, lower-left, lower-right, upper-right),
   side ``qsize = 2|x|``;
4. shrink: when the quad is more than twice the output size, the photo is first downscaled by the
   integer ``floor(qsize / size / 2)`` with antialiasing (FFHQ uses PIL's ANTIALIAS);
5. the quad is mapped onto the ``size × size`` output (FFHQ: PIL ``Image.transform(QUAD)`` at
   4096 px, then a Lanczos downscale; here one bilinear sample of the affine map per output pixel).

Where FFHQ pads beyond the photo border with a reflected, blurred copy, we mark those pixels
*unobserved* (``inside`` = 0), so a restoration fills them from the prior instead of trusting a
made-up border. The inverse warp pastes a crop back through the same affine map with a feathered
mask that is exactly 0 outside the quad, so every pixel there stays bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class FaceQuad:
    """The oriented square of one face in photo pixel coordinates (x right, y down; pixel centres at
    integers), corners in FFHQ's order: upper-left, lower-left, lower-right, upper-right."""

    corners: np.ndarray  # [4, 2] float64

    @property
    def size(self) -> float:
        return float(np.hypot(*(self.corners[3] - self.corners[0])))

    def scaled(self, factor: float) -> "FaceQuad":
        """The same quad on a photo resized by ``factor`` (pixel-centre convention)."""
        return FaceQuad((self.corners + 0.5) * factor - 0.5)

    def affine(self, out_size: int) -> np.ndarray:
        """``[2, 3]`` map from crop pixel centres (col, row) to photo coordinates."""
        q0, q1, q3 = self.corners[0], self.corners[1], self.corners[3]
        ax, ay = (q3 - q0) / out_size, (q1 - q0) / out_size
        # the corners are the crop's outer corners, so crop pixel centre (i, j) sits at (i + 0.5, j + 0.5)
        origin = q0 + 0.5 * ax + 0.5 * ay
        return np.stack([np.array([ax[0], ay[0], origin[0]]), np.array([ax[1], ay[1], origin[1]])])


def ffhq_quad(landmarks: np.ndarray) -> FaceQuad:
    """Steps 1-3 of the recipe, ``landmarks`` = dlib's 68 points ``[68, 2]`` (x, y)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"FFHQ alignment needs dlib's 68 landmarks [68, 2], got {lm.shape}")
    eye_left, eye_right = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_avg, eye_to_eye = (eye_left + eye_right) * 0.5, eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    # FFHQ's PIL coordinates put pixel centres at +0.5; ours at integers
    return FaceQuad(np.stack([c - x - y, c - x + y, c + x + y, c + x - y]) - 0.5)


def _normalised_grid(coords: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel coordinates ``[..., 2]`` (x, y) -> grid_sample's [-1, 1] (align_corners=False)."""
    scale = torch.tensor([2.0 / w, 2.0 / h], dtype=coords.dtype, device=coords.device)
    return (coords + 0.5) * scale - 1


def _crop_coords(quad: FaceQuad, size: int, device: torch.device) -> torch.Tensor:
    m = torch.tensor(quad.affine(size), dtype=torch.float64)
    j, i = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    pts = torch.stack([i, j, torch.ones_like(i)], -1) @ m.T  # [size, size, 2]
    return pts.to(device)


def align(photo: torch.Tensor, quad: FaceQuad, size: int, mode: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 4-5: ``(crop [1, C, size, size], inside [1, 1, size, size])``; ``inside`` is 1 where the
    crop pixel comes from inside the photo."""
    shrink = int(np.floor(quad.size / size * 0.5))
    if shrink > 1:
        h, w = photo.shape[-2:]
        small = (max(1, round(h / shrink)), max(1, round(w / shrink)))
        photo = F.interpolate(photo, size=small, mode="bilinear", align_corners=False, antialias=True)
        quad = quad.scaled(small[0] / h)
    h, w = photo.shape[-2:]
    coords = _crop_coords(quad, size, photo.device)
    grid = _normalised_grid(coords, h, w).to(photo.dtype)[None]
    crop = F.grid_sample(photo, grid, mode=mode, padding_mode="border", align_corners=False)
    inside = ((coords[..., 0] >= -0.5) & (coords[..., 0] <= w - 0.5) &
              (coords[..., 1] >= -0.5) & (coords[..., 1] <= h - 0.5)).to(photo.dtype)[None, None]
    return crop, inside


def feather(size: int, width: float = 0.08) -> torch.Tensor:
    """``[1, 1, size, size]`` paste weight: 1 inside, a smooth ramp to 0 over ``width·size`` pixels at
    the crop's border (so the seam is invisible), 0 on the border row itself."""
    d = torch.arange(size, dtype=torch.float32)
    edge = torch.minimum(d, size - 1 - d)
    ramp = (edge / max(1.0, width * size)).clamp(0, 1)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
    return (ramp[:, None] * ramp[None, :])[None, None]


def unalign(crop: torch.Tensor, quad: FaceQuad, out_hw: tuple[int, int],
            weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse warp: ``(crop in photo coordinates [1, C, H, W], alpha [1, 1, H, W])``; ``alpha`` is the
    feathered weight (default :func:`feather`) warped back, exactly 0 outside the quad."""
    size = crop.shape[-1]
    weight = feather(size).to(crop) if weight is None else weight.to(crop)
    m = np.vstack([quad.affine(size), [0, 0, 1]])
    inv = torch.tensor(np.linalg.inv(m)[:2], dtype=torch.float64)
    h, w = out_hw
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    src = torch.stack([x, y, torch.ones_like(x)], -1) @ inv.T  # crop pixel coordinates of each photo pixel
    grid = _normalised_grid(src, size, size).to(crop.dtype)[None].to(crop.device)
    back = F.grid_sample(crop, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    alpha = F.grid_sample(weight, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return back, alpha.clamp(0, 1)


def paste(background: torch.Tensor, crop: torch.Tensor, quad: FaceQuad,
          weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(background with the crop blended in through the inverse warp, alpha)``; where alpha is 0 the
    background is returned bit for bit."""
    back, alpha = unalign(crop, quad, tuple(background.shape[-2:]), weight)
    out = torch.where(alpha > 0, alpha * back + (1 - alpha) * background, background)
    return out, alpha
