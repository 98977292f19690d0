"""Gaussian or box blur, with a regularised (Tikhonov) fusion and a range check.

* :class:`Blur`: depthwise separable blur with reflect padding (same size).
* Fusion ``"project"`` (what ``ganprior.restore`` uses) is Tikhonov-regularised deconvolution around a
  centre ``m``, ``m + Aᵀ(AAᵀ + λI)⁻¹(y − A m)``, with ``λ`` chosen by the discrepancy principle from the
  noise level (``projection.py``): the output explains the photo to within its noise, and the directions
  the blur all but erases are not divided by their tiny gains (the truncated pseudo-inverse did that,
  and turned what the prior got wrong into ripple rings). Those directions come from the centre
  ``m = y + a (r − y)``: the photo itself (the classical estimate) moved towards the restoration ``r`` by
  ``a = E / (E + excess)``, where ``E`` is the noise energy and ``excess`` how much more ``A r`` misses the
  photo by: a restoration that does not reproduce what was observed is not trusted with what was not.
* The noise level is given (``noise_sigma``) or estimated from the photo (``noise.estimate_noise_sigma``).
* :meth:`Blur.check_range`: a photo sharper than this blur can make (energy where the blur passes less
  than :data:`RANGE_GAIN` far above the noise) was not made by it; ``restore`` refuses it in one line.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F

from .base import Degradation, DegradationError, check_image
from .noise import QUANTISATION_SIGMA, estimate_noise_sigma
from .projection import ProjectionCache, conv_matrix

#: directions the blur passes with a gain below this count as "erased" for the range check
RANGE_GAIN = 0.02
#: ... and a photo whose mean energy there exceeds this many times the noise variance is refused (the
#: estimate is a median statistic, so the ratio tests whether that band is noise: measured on skimage photos
#: at 300x451 and a 72x104 crop: blur2 images, noise-free or with sigma 5/255, give 0.8-1.0; sharp ones 6-340,
#: blur1 images 10-35)
RANGE_FACTOR = 4.0
#: rounds of (Tikhonov fusion, clamp to [-1, 1]) alternating like projections onto convex sets
CLAMP_ROUNDS = 8


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
                 fusion: Literal["none", "project"] = "none", noise_sigma: float | None = None) -> None:
        super().__init__()
        if fusion not in ("none", "project"):
            raise DegradationError(f"blur fusion must be 'none' or 'project', got {fusion!r}")
        self.kind = kind
        self.size = float(size)
        self.fusion = fusion
        self.noise_sigma = noise_sigma
        self.sigma_source = None if noise_sigma is None else "given"
        self.last_fusion: dict[str, Any] | None = None
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

    def _operator(self, hw: tuple[int, int]):
        return self._projections.get(hw, lambda s: (self.axis_matrix(s[0]), self.axis_matrix(s[1])))

    def calibrate(self, y: torch.Tensor) -> None:
        """Estimate the photo's noise level when it was not given (recorded by ``describe``)."""
        if self.noise_sigma is None or self.sigma_source == "estimated":
            self.noise_sigma, self.sigma_source = estimate_noise_sigma(y), "estimated"

    def _sigma(self, y: torch.Tensor) -> float:
        if self.noise_sigma is None:
            self.calibrate(y)
        return max(float(self.noise_sigma), QUANTISATION_SIGMA)

    def check_range(self, y: torch.Tensor) -> None:
        """Refuse a photo that this blur cannot have made (one line saying why and what to try)."""
        op = self._operator((int(y.shape[-2]), int(y.shape[-1])))
        coeffs = op._on("ur_t", y) @ y @ op._on("uc", y)
        erased = (op.singular < RANGE_GAIN).to(y.device)
        if not bool(erased.any()):
            return
        mean_energy = float(coeffs.double().square()[..., erased].mean())
        sigma = self._sigma(y)
        ratio = mean_energy / sigma ** 2
        if ratio > RANGE_FACTOR:
            raise DegradationError(
                f"the photo is sharper than {self.name} can make (its finest detail carries {ratio:.0f}x the "
                f"energy its noise explains): it was not blurred this way; try a smaller sigma, e.g. "
                f"'blur{max(self.size / 2, 0.5):g}', or --task denoise")

    def fuse(self, x_restored: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.fusion == "none":
            return x_restored
        sigma = self._sigma(y)
        op = self._operator((int(x_restored.shape[-2]), int(x_restored.shape[-1])))
        budget = sigma ** 2 * y[0].numel()
        excess = max(0.0, float((op.forward(x_restored) - y).double().square().sum(dim=(1, 2, 3)).max()) - budget)
        weight = budget / (budget + excess)
        fused, lam = op.regularised_project(y + weight * (x_restored - y), y, sigma)
        for _ in range(CLAMP_ROUNDS):
            clamped = fused.clamp(-1, 1)
            if torch.equal(clamped, fused):
                break
            fused = op.regularised_project(clamped, y, sigma)[0]
        self.last_fusion = {"baseline": "Tikhonov deconvolution of the photo", "prior_weight": round(weight, 4),
                            "noise_sigma": sigma, "tikhonov_lambda": lam, "noise_norm": math.sqrt(budget)}
        return fused.clamp(-1, 1)

    def classical_estimate(self, y: torch.Tensor) -> torch.Tensor:
        """Tikhonov deconvolution around the photo itself (the fusion with ``r = y``), same ``λ`` rule."""
        saved = self.last_fusion
        estimate = self.fuse(y, y) if self.fusion == "project" else y
        self.last_fusion = saved
        return estimate

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": "Blur", "kind": self.kind, "size": self.size, "fusion": self.fusion,
                "noise_sigma": self.noise_sigma, "sigma_source": self.sigma_source}
