"""JPEG compression as an observation model, and its decompression constraint as a convex set.

* :class:`JPEG` ``forward`` is a differentiable model of libjpeg (JFIF YCbCr, 4:2:0 chroma, 8x8 DCT,
  IJG quality-scaled tables, rounding with a straight-through or soft-round gradient); ``degrade`` runs
  real Pillow/libjpeg compression.
* A JPEG file says more than its pixels: every DCT coefficient of the source lay in the quantisation
  interval ``[(k - 1/2) Q, (k + 1/2) Q]`` of the integer ``k`` that was stored. That box is convex; the
  classical decompression constraint set (Zakhor 1992; Alter, Durand & Froment 2005).
  :class:`QuantisationBox` recovers ``k`` from the decoded photo (the encoder's own conversion: JFIF
  YCbCr, 2x2 box downsampling of chroma; the decoder's triangle chroma upsampling is undone) and projects
  any image into the box.
* :meth:`JPEG.check_range` refuses a photo whose coefficients are not on the tables' grid (an uncompressed
  photo, or another quality).
* The tables are the file's own (``Image.quantization``, with its chroma subsampling) when the photo is a
  JPEG file (:func:`tables_from_file`), else the IJG tables for the stated quality at 4:2:0.
* Fusion ``"project"`` (what ``ganprior.restore`` uses): a classical estimate ``d`` (non-local means
  deblocking projected into the box, :meth:`JPEG.classical_estimate`), then ``d + a (r - d)`` towards the
  restoration ``r`` with ``a = m_d / (m_d + m_r)``, ``m`` being each estimate's squared distance to the
  box before projection (the one that contradicts the file more gets less weight), projected into the box.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .base import Degradation, DegradationError, check_image

_LUMA_TABLE = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # ITU-T T.81 Annex K, Table K.1
_CHROMA_TABLE = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32),
]  # Table K.2
#: classical deblocking: non-local means for a noise sigma of this fraction of the mean luma quantisation
#: step, then projection into the box (measured on quality-30 skimage photos: 0.05 gains 0.3-0.5 dB over the
#: decoded file, 0.1 and 0.15 lose on some; total-variation decoding gained at most 0.4 dB and lost on some)
DEBLOCK_SIGMA_PER_STEP = 0.05
#: range check: over the luma coefficients with a step >= 4 and a non-zero stored integer, a decoded JPEG sits
#: within this mean distance of its grid (measured on skimage photos: 0.02-0.07 step with the right tables,
#: 0.26-0.27 for an uncompressed photo or another quality, 0.25 being a uniform offset) ...
GRID_OFFSET = 0.15
#: ... judged only when at least this many such coefficients exist
GRID_COUNT = 200
#: at most this many rounds alternate the box with clamping to [-1, 1], until the clamp moves no value by
#: more than the tolerance (0.006/255)
CLAMP_ROUNDS, CLAMP_TOLERANCE = 20, 5e-5
#: rounds of the decoder's triangle chroma upsampling inverted by fixed-point iteration (error / 2 each)
UNFILTER_ROUNDS = 12


def quantization_table(quality: int, chroma: bool) -> torch.Tensor:
    """libjpeg's ``jpeg_set_quality`` scaling of the Annex K tables (baseline: clamped to 1..255)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    base = torch.tensor(_CHROMA_TABLE if chroma else _LUMA_TABLE, dtype=torch.float64)
    return ((base * scale + 50) // 100).clamp(1, 255).view(8, 8)


@dataclass(frozen=True)
class JpegTables:
    """Quantisation tables (8x8, natural order) and chroma subsampling ``(vertical, horizontal)``."""

    luma: torch.Tensor
    chroma: torch.Tensor
    subsampling: tuple[int, int] = (2, 2)
    source: str = "IJG"

    @classmethod
    def for_quality(cls, quality: int) -> JpegTables:
        return cls(quantization_table(quality, False), quantization_table(quality, True), (2, 2), f"IJG quality {quality}")


def tables_from_file(image: Any) -> JpegTables | None:
    """The tables of a JPEG file (path or open PIL image), or None for anything else."""
    from PIL import JpegImagePlugin

    try:
        pil = image if isinstance(image, Image.Image) else Image.open(image)
    except (OSError, TypeError, ValueError, AttributeError):
        return None
    try:
        if pil.format != "JPEG" or not getattr(pil, "quantization", None) or pil.mode not in ("RGB", "L"):
            return None
        tables = pil.quantization
        luma = torch.tensor(list(tables[0]), dtype=torch.float64).view(8, 8)
        chroma = torch.tensor(list(tables.get(1, tables[0])), dtype=torch.float64).view(8, 8)
        sampling = {0: (1, 1), 1: (1, 2), 2: (2, 2)}.get(JpegImagePlugin.get_sampling(pil), (2, 2))
        return JpegTables(luma, chroma, sampling, "the file's own tables")
    finally:
        if pil is not image:
            pil.close()


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


def _pad_to(x: torch.Tensor, multiple: int | tuple[int, int]) -> torch.Tensor:
    mh, mw = (multiple, multiple) if isinstance(multiple, int) else multiple
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % mw, 0, -h % mh), mode="replicate")


def _blocks(plane: torch.Tensor) -> torch.Tensor:
    """``[N, 1, H, W]`` (multiples of 8) -> DCT coefficients ``[N, H/8, W/8, 8, 8]``."""
    n, _, h, w = plane.shape
    d = _dct_matrix().to(plane.device, plane.dtype)
    return d @ plane.reshape(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4) @ d.T


def _unblocks(coeffs: torch.Tensor) -> torch.Tensor:
    d = _dct_matrix().to(coeffs.device, coeffs.dtype)
    n, bh, bw = coeffs.shape[:3]
    return (d.T @ coeffs @ d).permute(0, 1, 3, 2, 4).reshape(n, 1, bh * 8, bw * 8)


def to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] RGB -> JFIF YCbCr on 0..255 with chroma centred on 0 (float64)."""
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YCBCR.to(x.device), (x.double() + 1) * 127.5)


def from_ycbcr(ycc: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    rgb = torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB_TO_YCBCR).to(ycc.device), ycc)
    return (rgb / 127.5 - 1).to(like.dtype)


def _downsample(plane: torch.Tensor, factor: tuple[int, int]) -> torch.Tensor:
    return F.avg_pool2d(_pad_to(plane, factor), factor) if factor != (1, 1) else plane


def _unfilter(plane: torch.Tensor, factor: tuple[int, int]) -> torch.Tensor:
    """Undo what libjpeg's triangle upsampling followed by box downsampling does to a chroma plane:
    a [1/8, 3/4, 1/8] filter along each subsampled axis (gain >= 1/2, so the fixed point converges)."""
    def smooth(p: torch.Tensor) -> torch.Tensor:
        if factor[0] == 2:
            q = F.pad(p, (0, 0, 1, 1), mode="replicate")
            p = 0.75 * q[..., 1:-1, :] + 0.125 * (q[..., :-2, :] + q[..., 2:, :])
        if factor[1] == 2:
            q = F.pad(p, (1, 1, 0, 0), mode="replicate")
            p = 0.75 * q[..., 1:-1] + 0.125 * (q[..., :-2] + q[..., 2:])
        return p

    if factor == (1, 1):
        return plane
    estimate = plane.clone()
    for _ in range(UNFILTER_ROUNDS):
        estimate = estimate + (plane - smooth(estimate))
    return estimate


class QuantisationBox:
    """The set of images whose JPEG coefficients fall in the intervals of the observed file."""

    def __init__(self, y: torch.Tensor, tables: JpegTables) -> None:
        self.tables = tables
        self.size = tuple(y.shape[-2:])
        ycc = to_ycbcr(y)
        self.steps = [tables.luma.to(y.device), tables.chroma.to(y.device), tables.chroma.to(y.device)]
        planes = [ycc[:, :1] - 128.0] + [_unfilter(_downsample(ycc[:, i:i + 1], tables.subsampling),
                                                   tables.subsampling) for i in (1, 2)]
        #: the stored integers k of every coefficient (recovered from the decoded pixels)
        self.bins = [torch.round(_blocks(_pad_to(p, 8)) / q) for p, q in zip(planes, self.steps)]

    def grid_offset(self, y: torch.Tensor) -> tuple[float, int]:
        """(mean distance in steps of ``y``'s informative luma coefficients from their grid, their count)."""
        c, k = self.coefficients(y)[0], self.bins[0]
        informative = (self.steps[0] >= 4).expand_as(c) & (k != 0)
        count = int(informative.sum())
        return (float((c - k).abs()[informative].mean()) if count else 0.0), count

    def coefficients(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's DCT coefficients of ``x`` (Y, Cb, Cr), divided by their quantisation steps."""
        ycc = to_ycbcr(x)
        planes = [ycc[:, :1] - 128.0] + [_downsample(ycc[:, i:i + 1], self.tables.subsampling) for i in (1, 2)]
        return [_blocks(_pad_to(p, 8)) / q for p, q in zip(planes, self.steps)]

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with every coefficient clipped into its interval (chroma corrections spread over the
        pixels each downsampled sample averages: the least-squares lift of a box mean)."""
        h, w = self.size
        ycc = to_ycbcr(x)
        out = [None, None, None]
        for i in range(3):
            plane = ycc[:, i:i + 1] - (128.0 if i == 0 else 0.0)
            low = _downsample(plane, self.tables.subsampling) if i else plane
            lh, lw = low.shape[-2:]
            coeffs = _blocks(_pad_to(low, 8))
            k = self.bins[i]
            clipped = torch.minimum(torch.maximum(coeffs, (k - 0.5) * self.steps[i]), (k + 0.5) * self.steps[i])
            delta = (_unblocks(clipped) - _unblocks(coeffs))[..., :lh, :lw]
            if i and self.tables.subsampling != (1, 1):
                delta = delta.repeat_interleave(self.tables.subsampling[0], -2)
                delta = delta.repeat_interleave(self.tables.subsampling[1], -1)
            out[i] = ycc[:, i:i + 1] + delta[..., :h, :w]
        return from_ycbcr(torch.cat(out, dim=1), x)

    def distance2(self, x: torch.Tensor) -> float:
        """Squared distance (RGB, [-1, 1] scale) from ``x`` to its projection."""
        return float((x - self.project(x)).double().square().sum())


class JPEG(Degradation):
    """Differentiable JPEG compression at ``quality`` (1..100), 4:2:0 like Pillow's default."""

    def __init__(self, quality: int = 75, rounding: Literal["ste", "soft"] = "ste",
                 fusion: Literal["none", "project"] = "none") -> None:
        super().__init__()
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
            raise DegradationError(f"JPEG quality must be an integer in 1..100, got {quality!r}")
        if rounding not in ("ste", "soft"):
            raise DegradationError(f"JPEG rounding must be 'ste' or 'soft', got {rounding!r}")
        if fusion not in ("none", "project"):
            raise DegradationError(f"jpeg fusion must be 'none' or 'project', got {fusion!r}")
        self.quality = int(quality)
        self.rounding = rounding
        self.fusion = fusion
        self.tables = JpegTables.for_quality(self.quality)
        self.last_fusion: dict[str, Any] | None = None
        self._box: tuple[tuple, QuantisationBox, torch.Tensor, float] | None = None
        self.register_buffer("q_luma", self.tables.luma.float(), persistent=False)
        self.register_buffer("q_chroma", self.tables.chroma.float(), persistent=False)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"jpeg{self.quality}"

    def use_tables(self, tables: JpegTables) -> None:
        """Constrain the fusion with these tables (a JPEG file's own) instead of the quality's."""
        self.tables = tables
        self._box = None

    def _code_plane(self, plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """DCT -> quantise -> dequantise -> inverse DCT of one ``[N, 1, H, W]`` plane (values - 128)."""
        h, w = plane.shape[-2:]
        q = table.to(plane.dtype)
        coeffs = _blocks(_pad_to(plane, 8))
        return _unblocks(_round(coeffs / q, self.rounding) * q)[..., :h, :w]

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

    def box(self, y: torch.Tensor) -> tuple[QuantisationBox, torch.Tensor, float]:
        """(the quantisation box of ``y``, the classical deblocking inside it, that deblocking's squared
        distance to the box before its projection), computed once per observation."""
        key = (y.data_ptr(), y._version, tuple(y.shape), self.tables.source)
        if self._box is None or self._box[0] != key:
            from .noise import classical_denoise

            box = QuantisationBox(y, self.tables)
            smooth = classical_denoise(y, DEBLOCK_SIGMA_PER_STEP * float(self.tables.luma.mean()) / 127.5)
            d = box.project(smooth).clamp(-1, 1)
            self._box = (key, box, d, float((smooth - d).double().square().sum()))
        return self._box[1], self._box[2], self._box[3]

    def check_range(self, y: torch.Tensor) -> None:
        """Refuse a photo that these tables did not quantise (one line): its DCT coefficients would be off
        the grid, and the quantisation box would be the wrong constraint."""
        offset, count = QuantisationBox(y, self.tables).grid_offset(y)
        if count >= GRID_COUNT and offset > GRID_OFFSET:
            raise DegradationError(
                f"the photo was not JPEG-compressed with {self.tables.source} (its DCT coefficients are "
                f"{offset:.2f} of a step off that grid; a JPEG sits within 0.1): give the JPEG file itself "
                f"(its own tables are read) or the quality it was saved at")

    def classical_estimate(self, y: torch.Tensor) -> torch.Tensor:
        """Non-local means deblocking projected into the quantisation box (the classical decoding)."""
        return self.box(y)[1]

    def fuse(self, x_restored: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.fusion == "none":
            return x_restored
        box, d, stray = self.box(y)
        misfit = box.distance2(x_restored)
        weight = 1.0 if misfit == 0 else stray / (stray + misfit)
        fused = d + weight * (x_restored - d)
        for _ in range(CLAMP_ROUNDS):  # box and [-1, 1] alternately (projections onto convex sets)
            fused = box.project(fused)
            clamped = fused.clamp(-1, 1)
            if float((clamped - fused).abs().max()) <= CLAMP_TOLERANCE:
                break
            fused = clamped
        self.last_fusion = {"baseline": "non-local means deblocking in the quantisation box",
                            "prior_weight": round(weight, 4), "tables": self.tables.source}
        return fused.clamp(-1, 1)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": "JPEG", "quality": self.quality, "rounding": self.rounding,
                "fusion": self.fusion, "tables": self.tables.source,
                "subsampling": list(self.tables.subsampling)}
