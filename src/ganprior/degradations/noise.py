"""Additive Gaussian noise, and a fusion that keeps the output within the noise level of the photo.

:class:`Denoising` observes ``y = x + sigma * n`` (``A = identity``: like deepinv, the noise is not part
of the differentiable model, since adding fresh noise to the generator output in a loss only adds
variance). ``sigma`` may be left out: it is then estimated from the photo itself
(:func:`estimate_noise_sigma`, scikit-image's wavelet MAD estimator) before the restoration starts.

Fusion (``fusion="project"``, what ``ganprior.restore`` uses) never trusts the generator more than the
observation allows, in the spirit of DDNM+ (Wang et al. 2023) for noisy observations:

1. a classical estimate ``d`` is made from ``y`` alone (scikit-image non-local means, :func:`classical_denoise`);
2. the output is ``d + a (r - d)`` on the segment towards the generator's restoration ``r``, with ``a``
   in [0, 1] minimising Stein's unbiased risk estimate (SURE) of the error against the *clean* image:
   ``|y - x|^2 - N s^2 + 2 s^2 div x``; ``div d`` is the Monte-Carlo estimate of Ramani et al. (2008),
   ``div r`` is taken as 0 (the generator sees the photo through its canvas: a few thousand pixels);
3. the result is projected into the noise ball ``|x - y| <= s sqrt(N)``, the expected norm of the
   noise, so the output is always something the photo's own noise could explain.

A generator that cannot explain the photo therefore gets ``a ~ 0`` and the output is the classical
estimate; ``last_fusion`` says which (``ganprior.consistency`` puts it in run.json and warns).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch

from .base import Degradation, DegradationError, check_image

#: noise of 8-bit rounding on the [-1, 1] scale (uniform on one grey level): the floor of any estimate
QUANTISATION_SIGMA = 2.0 / 255 / math.sqrt(12)
#: non-local means settings (scikit-image's recommended ``h = 0.8 sigma`` for ``fast_mode``)
NLM_PATCH, NLM_DISTANCE, NLM_H = 5, 6, 0.8
#: probe size of the Monte-Carlo divergence (relative to sigma)
SURE_PROBE = 0.1


def _to_numpy(y: torch.Tensor) -> np.ndarray:
    """``[1, C, H, W]`` in [-1, 1] -> ``[H, W, C]`` float64 in [0, 1] (scikit-image's convention)."""
    if y.shape[0] != 1:
        raise DegradationError(f"the classical estimates take one image at a time, got a batch of {y.shape[0]}")
    return ((y[0].detach().cpu().double().permute(1, 2, 0) + 1) / 2).numpy()


def _from_numpy(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return (torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None] * 2 - 1).to(like.device, like.dtype)


def estimate_noise_sigma(y: torch.Tensor) -> float:
    """Gaussian noise sigma of ``y`` ``[1, C, H, W]`` on the [-1, 1] scale (never below 8-bit rounding)."""
    from skimage.restoration import estimate_sigma

    sigma = float(estimate_sigma(_to_numpy(y), channel_axis=-1, average_sigmas=True)) * 2
    return max(sigma, QUANTISATION_SIGMA)


def classical_denoise(y: torch.Tensor, sigma: float) -> torch.Tensor:
    """scikit-image non-local means of ``y`` ``[1, C, H, W]`` for noise ``sigma`` ([-1, 1] scale)."""
    from skimage.restoration import denoise_nl_means

    s = sigma / 2  # scikit-image works on [0, 1]
    out = denoise_nl_means(_to_numpy(y), h=NLM_H * s, sigma=s, fast_mode=True, patch_size=NLM_PATCH,
                           patch_distance=NLM_DISTANCE, channel_axis=-1)
    return _from_numpy(out, y)


def sure_blend(y: torch.Tensor, d: torch.Tensor, r: torch.Tensor, sigma: float, div_d: float) -> float:
    """Weight ``a`` in [0, 1] of ``d + a (r - d)`` minimising SURE (``div r`` taken as 0).

    SURE(a) = |y - d - a e|^2 - N s^2 + 2 s^2 ((1 - a) div_d), e = r - d: a quadratic in ``a`` whose
    minimum is at ``a = (<y - d, e> + s^2 div_d) / |e|^2``.
    """
    e = (r - d).double()
    energy = float(e.square().sum())
    if energy == 0:
        return 0.0
    slope = float(((y - d).double() * e).sum()) + sigma ** 2 * div_d
    return min(1.0, max(0.0, slope / energy))


def noise_ball(x: torch.Tensor, y: torch.Tensor, radius: float) -> torch.Tensor:
    """``x`` moved towards ``y`` until ``|x - y| <= radius`` (the Euclidean projection onto the ball)."""
    distance = float((x - y).double().square().sum().sqrt())
    return x if distance <= radius else y + (x - y) * (radius / distance)


class Denoising(Degradation):
    """Observation ``y = x + sigma * n``, ``n ~ N(0, I)``; ``sigma`` in [-1, 1] image units or None
    (estimated from the photo by :meth:`calibrate`)."""

    def __init__(self, sigma: float | None, seed: int = 0, fusion: Literal["none", "project"] = "none") -> None:
        super().__init__()
        if sigma is not None and not float(sigma) >= 0:
            raise DegradationError(f"noise sigma must be >= 0, got {sigma}")
        if fusion not in ("none", "project"):
            raise DegradationError(f"denoise fusion must be 'none' or 'project', got {fusion!r}")
        self.sigma = None if sigma is None else float(sigma)
        self.sigma_source = "given" if sigma is not None else None
        self.seed = seed
        self.fusion = fusion
        self.last_fusion: dict[str, Any] | None = None
        self._classical: tuple[tuple, torch.Tensor, float] | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return "denoise" if self.sigma is None or self.sigma_source == "estimated" else f"denoise{self.sigma:g}"

    def calibrate(self, y: torch.Tensor) -> None:
        """Estimate ``sigma`` from the observation when it was not given (recorded by ``describe``)."""
        if self.sigma is None or self.sigma_source == "estimated":
            self.sigma, self.sigma_source = estimate_noise_sigma(y), "estimated"

    def _sigma(self, y: torch.Tensor) -> float:
        if self.sigma is None:
            self.calibrate(y)
        return max(float(self.sigma), QUANTISATION_SIGMA)

    @torch.no_grad()
    def degrade(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_image(x)
        if self.sigma is None:
            raise DegradationError("making a noisy test image needs a sigma: write it after the name, e.g. 'denoise0.1'")
        g = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        noise = torch.randn(x.shape, generator=g, dtype=torch.float32, device=g.device)
        return x + self.sigma * noise.to(x.device, x.dtype)

    def classical(self, y: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(non-local means of ``y``, its Monte-Carlo divergence), computed once per observation."""
        sigma = self._sigma(y)
        key = (y.data_ptr(), y._version, tuple(y.shape), sigma)
        if self._classical is None or self._classical[0] != key:
            d = classical_denoise(y, sigma)
            probe = torch.randn(y.shape, generator=torch.Generator().manual_seed(self.seed), dtype=torch.float64)
            step = SURE_PROBE * sigma
            moved = classical_denoise(y + step * probe.to(y.device, y.dtype), sigma)
            div = float((probe.to(y.device) * (moved - d).double()).sum()) / step
            self._classical = (key, d, div)
        return self._classical[1], self._classical[2]

    def fuse(self, x_restored: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.fusion == "none":
            return x_restored
        sigma = self._sigma(y)
        d, div = self.classical(y)
        weight = sure_blend(y, d, x_restored, sigma, div)
        blended = d + weight * (x_restored - d)
        radius = sigma * math.sqrt(y.numel())
        fused = noise_ball(blended, y, radius)
        self.last_fusion = {"baseline": "non-local means (scikit-image)", "prior_weight": round(weight, 4),
                            "noise_sigma": sigma, "noise_norm": radius}
        return fused

    def classical_estimate(self, y: torch.Tensor) -> torch.Tensor:
        """The classical restoration the fusion falls back on (for reports and the bench)."""
        return self.classical(y)[0]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": "Denoising", "sigma": self.sigma, "sigma_source": self.sigma_source,
                "seed": self.seed, "fusion": self.fusion}
