"""Denoising, deblurring and JPEG de-artifacting operators.

* :class:`Denoising`: additive Gaussian noise. Like deepinv, the noise is not part of the
  differentiable model (``A = identity``): adding fresh noise to the generator output inside a loss
  only adds variance. ``degrade`` adds seeded noise to make test inputs.
* :class:`Blur`: depthwise Gaussian or box blur with reflect padding (same size). Fusion
  ``"project"`` is the range–null-space projection ``x + A⁺(y − A x)`` with a truncated
  pseudo-inverse (``projection.py``; what ``ganprior.restore`` uses); ``"none"`` returns the restoration.
* Denoising and JPEG are not projected: ``A(x) = y`` would put the noise back (denoising's ``A`` is
  the identity), and JPEG's quantisation is not linear.
* :class:`JPEG`: differentiable JPEG model (YCbCr, 4:2:0 chroma, 8x8 DCT, IJG quality-scaled
  quantisation tables, rounding with a straight-through or soft-round gradient); ``degrade`` runs
  real Pillow/libjpeg compression.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .base import Degradation, DegradationError, check_image
from .projection import ProjectionCache, conv_matrix


class Denoising(Degradation):
    """Observation ``y = x + sigma * n``, ``n ~ N(0, I)``; ``sigma`` in [-1, 1] image units."""

    def __init__(self, sigma: float, seed: int = 0) -> None:
        super().__init__()
        if not float(sigma) >= 0:
            raise DegradationError(f"noise sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)
        self.seed = seed

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"denoise{self.sigma:g}"

    @torch.no_grad()
    def degrade(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_image(x)
        g = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        noise = torch.randn(x.shape, generator=g, dtype=torch.float32, device=g.device)
        return x + self.sigma * noise.to(x.device, x.dtype)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": "Denoising", "sigma": self.sigma, "seed": self.seed}


def blur_kernel(kind: str, size: float) -> torch.Tensor:
    """Normalised 1-D taps: ``gaussian`` (size = sigma, radius ceil(3 sigma)) or ``box`` (size = width)."""
    if kind == "gaussian":
        if size <= 0:
            raise DegradationError(f"Gaussian blur sigma must be > 0, got {size}")
        radius = max(1, math.ceil(3 * size))
        t = torch.arange(-radius, radius + 1, dtype=torch.float64)
        taps = torch.exp(-0.5 * (t / size) ** 2)
    elif kind == "box":
        if int(size) != size or size < 1:
            raise DegradationError(f"box blur width must be a whole number >= 1, got {size}")
        taps = torch.ones(int(size), dtype=torch.float64)
    else:
        raise DegradationError(f"blur kind must be 'gaussian' or 'box', got {kind!r}")
    return taps / taps.sum()


class Blur(Degradation):
    """Separable blur, same output size; even box widths shift by half a pixel towards the top-left."""

    def __init__(self, size: float = 2.0, kind: Literal["gaussian", "box"] = "gaussian",
                 fusion: Literal["none", "project"] = "none") -> None:
        super().__init__()
        if fusion not in ("none", "project"):
            raise DegradationError(f"blur fusion must be 'none' or 'project', got {fusion!r}")
        self.kind = kind
        self.size = float(size)
        self.fusion = fusion
        self._projections = ProjectionCache()
        self.register_buffer("taps", blur_kernel(kind, self.size).float(), persistent=False)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"blur{self.size:g}" + ("" if self.kind == "gaussian" else "-box")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x)
        k = self.taps.to(x.dtype)
        n = k.numel()
        before, after = (n - 1) // 2, n // 2
        if max(before, after) >= min(x.shape[-2:]):
            raise DegradationError(f"a {n}-tap blur is too wide for a {x.shape[-2]}x{x.shape[-1]} image")
        c = x.shape[1]
        x = F.pad(x, (before, after, before, after), mode="reflect")
        x = F.conv2d(x, k.view(1, 1, n, 1).expand(c, 1, n, 1), groups=c)
        return F.conv2d(x, k.view(1, 1, 1, n).expand(c, 1, 1, n), groups=c)

    def axis_matrix(self, size: int) -> torch.Tensor:
        """``[size, size]`` float64 matrix of the blur along one axis (it is separable)."""
        taps = blur_kernel(self.kind, self.size)
        n = taps.numel()
        return conv_matrix(taps, size, 1, (n - 1) // 2, n // 2, "reflect")

    def fuse(self, x_restored: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.fusion == "none":
            return x_restored
        hw = (int(x_restored.shape[-2]), int(x_restored.shape[-1]))
        pinv = self._projections.get(hw, lambda s: (self.axis_matrix(s[0]), self.axis_matrix(s[1])))
        return pinv.project(x_restored, y)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": "Blur", "kind": self.kind, "size": self.size, "fusion": self.fusion}


# ----- JPEG ----------------------------------------------------------------------------------
_LUMA_TABLE = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # ITU-T T.81 Annex K, Table K.1
_CHROMA_TABLE = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32),
]  # Table K.2


def quantization_table(quality: int, chroma: bool) -> torch.Tensor:
    """libjpeg's ``jpeg_set_quality`` scaling of the Annex K tables (baseline: clamped to 1..255)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    base = torch.tensor(_CHROMA_TABLE if chroma else _LUMA_TABLE, dtype=torch.float64)
    return ((base * scale + 50) // 100).clamp(1, 255).view(8, 8)


@lru_cache(maxsize=1)
def _dct_matrix() -> torch.Tensor:
    """Orthonormal 8-point DCT-II; JPEG's 2-D DCT is ``D @ block @ D.T``."""
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d


_RGB_TO_YCBCR = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=torch.float64
)


def _round(x: torch.Tensor, mode: str) -> torch.Tensor:
    r = torch.round(x)
    if mode == "soft":  # Shin & Song (2017): value close to rounding, gradient 3(x - round x)^2
        return r + (x - r) ** 3
    return x + (r - x).detach()  # straight-through: exact rounding forward, identity gradient


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")


class JPEG(Degradation):
    """Differentiable JPEG compression at ``quality`` (1..100), 4:2:0 like Pillow's default."""

    def __init__(self, quality: int = 75, rounding: Literal["ste", "soft"] = "ste") -> None:
        super().__init__()
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
            raise DegradationError(f"JPEG quality must be an integer in 1..100, got {quality!r}")
        if rounding not in ("ste", "soft"):
            raise DegradationError(f"JPEG rounding must be 'ste' or 'soft', got {rounding!r}")
        self.quality = int(quality)
        self.rounding = rounding
        self.register_buffer("q_luma", quantization_table(self.quality, chroma=False).float(), persistent=False)
        self.register_buffer("q_chroma", quantization_table(self.quality, chroma=True).float(), persistent=False)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"jpeg{self.quality}"

    def _code_plane(self, plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """DCT -> quantise -> dequantise -> inverse DCT of one ``[N, 1, H, W]`` plane (values - 128)."""
        h, w = plane.shape[-2:]
        p = _pad_to(plane, 8)
        n, _, hp, wp = p.shape
        blocks = p.view(n, hp // 8, 8, wp // 8, 8).permute(0, 1, 3, 2, 4)
        d = _dct_matrix().to(p.device, p.dtype)
        coeffs = d @ blocks @ d.T
        q = table.to(p.dtype)
        blocks = d.T @ (_round(coeffs / q, self.rounding) * q) @ d
        return blocks.permute(0, 1, 3, 2, 4).reshape(n, 1, hp, wp)[..., :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x)
        if x.shape[1] != 3:
            raise DegradationError(f"JPEG model needs RGB images, got {x.shape[1]} channels")
        h, w = x.shape[-2:]
        m = _RGB_TO_YCBCR.to(x.device, x.dtype)
        ycc = torch.einsum("ij,njhw->nihw", m, (x + 1) * 127.5)  # Cb, Cr centred on 0 (JPEG's -128)
        luma = self._code_plane(ycc[:, :1] - 128.0, self.q_luma) + 128.0
        chroma = F.avg_pool2d(_pad_to(ycc[:, 1:], 2), 2)
        chroma = torch.cat([self._code_plane(c, self.q_chroma) for c in chroma.split(1, dim=1)], dim=1)
        chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)[..., :h, :w]
        rgb = torch.einsum("ij,njhw->nihw", torch.linalg.inv(m), torch.cat([luma - 128.0, chroma], dim=1)) + 128.0
        return rgb.clamp(0, 255) / 127.5 - 1.0

    @torch.no_grad()
    def degrade(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Real libjpeg round trip through Pillow (uint8, quality ``self.quality``, 4:2:0)."""
        check_image(x)
        out = []
        for img in x:
            arr = ((img.permute(1, 2, 0).cpu().double() + 1) * 127.5).clamp(0, 255).add(0.5).floor()
            buf = io.BytesIO()
            Image.fromarray(arr.numpy().astype(np.uint8)).save(buf, format="JPEG", quality=self.quality)
            decoded = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32)
            out.append(torch.from_numpy(decoded).permute(2, 0, 1) / 127.5 - 1.0)
        return torch.stack(out).to(x.device, x.dtype)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": "JPEG", "quality": self.quality, "rounding": self.rounding}
