"""Super-resolution: the observation is a downsampled image, by any integer factor.

Kernels (all antialiased, differentiable):
  * ``"bicubic"``: Pillow's BICUBIC (Keys a = -0.5) = torch ``interpolate(mode="bicubic",
    antialias=True)``. Matlab ``imresize`` uses the same kernel but mirrors the border instead of
    renormalising truncated taps, so only border pixels differ from it.
  * ``"lanczos"``: Pillow's LANCZOS (a = 3). DGP makes its *observations* with it (``Image.ANTIALIAS``
    on truncated uint8); the CRI paper says it "adopts the Lanczos downsampling operator" of DIP.
    CRI's released script is reported to resize with bicubic (``../shared/reference/peers.md``);
    its exact call is not documented, so both are offered.
  * ``"area"``: box average (= ``avg_pool2d`` when the factor divides the size).
  * ``"dgp-lanczos2"``: DGP's differentiable model of the degradation (DIP's ``Downsampler``):
    a separable Lanczos-2 kernel of ``4f`` taps, phase 0.5, replicate padding ``(4f - f)/2``,
    stride ``f`` (dgp_spec.md section 3.3). ``degrade`` then reproduces DGP's target path.
  * ``"pulse-bicubic"``: PULSE's ``BicubicDownSample`` (``adamian98/pulse@40cacb9 bicubic.py``):
    Keys a = -0.5 sampled at ``(i - 2f + 0.5)/f`` for ``4f`` taps, normalised, reflect padding
    ``⌊3f/2⌋`` before and ``3f - ⌊3f/2⌋`` after, stride ``f``; rows first, then columns.

The observed size is ``(H // f, W // f)`` (DGP's rule); when ``f`` does not divide the size the
resampling stretches slightly, exactly as ``PIL.Image.resize`` does. With ``reupsample=True``
the observation is bilinearly upsampled back to full size, as DGP compares images.

Fusion: ``"none"`` returns the restoration (DGP and CRI keep the raw generator output);
``"lowpass"`` swaps the restoration's low frequencies for the observation's,
``x + up(y - A(x))`` with a bicubic ``up`` (``A`` of the result is only close to ``y``);
``"project"`` (what ``ganprior.restore`` uses) is the range–null-space projection
``x + A⁺(y - A(x))`` with the exact pseudo-inverse of the kernel's matrices
(``projection.py``), so ``A`` of the result equals ``y``.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .base import Degradation, DegradationError, Size, check_image
from .projection import ProjectionCache, conv_matrix
from .resample import resize, resize_matrix

SR_KERNELS = ("bicubic", "lanczos", "area", "dgp-lanczos2", "pulse-bicubic")
#: kernels applied as a padded strided correlation with their own taps (and padding mode)
_TAP_KERNELS = {"dgp-lanczos2": "replicate", "pulse-bicubic": "reflect"}
SR_FUSIONS = ("none", "lowpass", "project")


def dgp_lanczos2_taps(factor: int) -> torch.Tensor:
    """DGP/DIP's normalised 1-D Lanczos-2 marginal (16 taps for f = 4: [-0.001065, ..., 0.239711, ...])."""
    width = 4 * factor + 1
    center = (width + 1) / 2
    taps = []
    for i in range(1, width):
        d = abs(i + 0.5 - center) / factor
        taps.append(1.0 if d == 0 else 2 * math.sin(math.pi * d) * math.sin(math.pi * d / 2) / (math.pi**2 * d * d))
    t = torch.tensor(taps, dtype=torch.float64)
    return t / t.sum()


def pulse_bicubic_taps(factor: int) -> torch.Tensor:
    """PULSE's normalised 1-D Keys (a = -0.5) taps, ``4f`` of them (``bicubic.py:7-25``)."""
    size = 4 * factor
    x = (torch.arange(size, dtype=torch.float64) - size // 2 + 0.5) / factor
    a, ax = -0.5, x.abs()
    k = torch.where(ax <= 1, (a + 2) * ax**3 - (a + 3) * ax**2 + 1,
                    torch.where(ax < 2, a * ax**3 - 5 * a * ax**2 + 8 * a * ax - 4 * a, torch.zeros_like(ax)))
    return k / k.sum()


def _taps(kernel: str, factor: int) -> torch.Tensor:
    return dgp_lanczos2_taps(factor) if kernel == "dgp-lanczos2" else pulse_bicubic_taps(factor)


def _tap_padding(kernel: str, taps: int, factor: int) -> tuple[int, int]:
    """(before, after) padding of the tap kernels: DGP's symmetric ``(4f - f)/2``, PULSE's ``⌊3f/2⌋`` first."""
    total = taps - factor
    before = total // 2
    return (before, before) if kernel == "dgp-lanczos2" else (before, total - before)


class SuperResolution(Degradation):
    """``y = downsample_f(x)`` with one of :data:`SR_KERNELS`."""

    def __init__(
        self,
        factor: int,
        kernel: str = "bicubic",
        reupsample: bool = False,
        fusion: Literal["none", "lowpass", "project"] = "none",
    ) -> None:
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
            raise DegradationError(f"super-resolution factor must be an integer >= 1, got {factor!r}")
        if kernel not in SR_KERNELS:
            raise DegradationError(f"unknown SR kernel {kernel!r}; known: {', '.join(SR_KERNELS)}")
        if fusion not in SR_FUSIONS:
            raise DegradationError(f"SR fusion must be one of {', '.join(SR_FUSIONS)}, got {fusion!r}")
        self.factor = int(factor)
        self.kernel = kernel
        self.reupsample = reupsample
        self.fusion = fusion
        self._projections = ProjectionCache()
        if kernel in _TAP_KERNELS:
            self.register_buffer("taps", _taps(kernel, self.factor).float(), persistent=False)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"sr{self.factor}" + ("" if self.kernel == "bicubic" else f"-{self.kernel}")

    def low_res_size(self, hw: Sequence[int]) -> Size:
        h, w = int(hw[0]) // self.factor, int(hw[1]) // self.factor
        if h < 1 or w < 1:
            raise DegradationError(f"a {hw[0]}x{hw[1]} image is too small for x{self.factor} downsampling")
        return h, w

    def observed_size(self, hw: Sequence[int]) -> Size:
        return (int(hw[0]), int(hw[1])) if self.reupsample else self.low_res_size(hw)

    def _tap_downsample(self, x: torch.Tensor) -> torch.Tensor:
        # DGP and PULSE map to [0, 1] first; the kernel sums to 1, so that mapping commutes with the conv.
        k = self.taps.to(x)
        before, after = _tap_padding(self.kernel, k.numel(), self.factor)
        mode, c = _TAP_KERNELS[self.kernel], x.shape[1]
        x = F.pad(x, (0, 0, before, after), mode=mode)
        x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), stride=(self.factor, 1), groups=c)
        x = F.pad(x, (before, after, 0, 0), mode=mode)
        return F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), stride=(1, self.factor), groups=c)

    def _finish(self, low: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
        if not self.reupsample:
            return low
        return F.interpolate(low, size=(int(hw[0]), int(hw[1])), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x)
        size = self.low_res_size(x.shape[-2:])
        if self.factor == 1:
            return x
        low = self._tap_downsample(x) if self.kernel in _TAP_KERNELS else resize(x, size, self.kernel)
        return self._finish(low, x.shape[-2:])

    @torch.no_grad()
    def degrade(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """For ``dgp-lanczos2``, DGP's target path: truncate to uint8, PIL Lanczos-3, back to [-1, 1]."""
        if self.kernel != "dgp-lanczos2" or self.factor == 1:
            return self(x)
        check_image(x)
        h, w = self.low_res_size(x.shape[-2:])
        lows = []
        for img in x:
            arr = ((img.permute(1, 2, 0).cpu().double().numpy() + 1) / 2).clip(0, 1) * 255
            pil = Image.fromarray(arr.astype(np.uint8).squeeze()).resize((w, h), Image.LANCZOS)
            low = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).to(x.device)
            lows.append((low[None] if low.ndim == 2 else low.permute(2, 0, 1)) * 2 - 1)
        return self._finish(torch.stack(lows).to(x.dtype), x.shape[-2:])

    def axis_matrix(self, size: int) -> torch.Tensor:
        """``[observed, size]`` float64 matrix of this operator along one axis (it is separable)."""
        if self.factor == 1:
            matrix = torch.eye(size, dtype=torch.float64)
        elif self.kernel in _TAP_KERNELS:
            taps = _taps(self.kernel, self.factor)
            before, after = _tap_padding(self.kernel, taps.numel(), self.factor)
            matrix = conv_matrix(taps, size, self.factor, before, after, _TAP_KERNELS[self.kernel])
        else:
            matrix = resize_matrix(size, size // self.factor, self.kernel)
        if self.reupsample and self.factor > 1:
            up = F.interpolate(torch.eye(matrix.shape[0], dtype=torch.float64)[None], size=size, mode="linear",
                               align_corners=False)[0].T  # [size, low]
            matrix = up @ matrix
        return matrix

    def fuse(self, x_restored: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.fusion == "none":
            return x_restored
        if self.fusion == "project":
            self.low_res_size(x_restored.shape[-2:])
            h, w = int(x_restored.shape[-2]), int(x_restored.shape[-1])
            pinv = self._projections.get((h, w), lambda hw: (self.axis_matrix(hw[0]), self.axis_matrix(hw[1])))
            return pinv.project(x_restored, y)
        residual = y - self(x_restored)
        if tuple(residual.shape[-2:]) != tuple(x_restored.shape[-2:]):
            residual = resize(residual, x_restored.shape[-2:], "bicubic")
        return x_restored + residual

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": "SuperResolution",
            "factor": self.factor,
            "kernel": self.kernel,
            "reupsample": self.reupsample,
            "fusion": self.fusion,
        }
