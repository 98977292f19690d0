"""PSNR and SSIM with the conventions of the published evaluations.

* Both are computed on the uint8 grid (data range 255), in float64, per image.
* SSIM follows Wang et al.'s MATLAB reference: an 11x11 Gaussian window (sigma 1.5), population
  statistics, K1 = 0.01, K2 = 0.03, no 2x downsampling, and only the windows that fit inside the
  image ("valid" filtering). This equals ``skimage.metrics.structural_similarity(gaussian_weights=
  True, sigma=1.5, use_sample_covariance=False, data_range=255)``.
* ``color`` picks the colour convention (see :func:`ganprior.metrics.images.reduce_color`); the
  official SSIM uses ``"gray"`` (MATLAB ``rgb2gray``), the official PSNR ``"rgb"``.
* ``region`` (``[N, 1, H, W]``, 1 = scored) restricts the average to part of the image. DGP reports
  inpainting on the hole only: pass ``region = 1 - mask`` where ``mask`` is 1 on observed pixels.
  For SSIM a window counts when its centre lies in the region.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .images import ColorMode, MetricInputError, check_pair, check_region, reduce_color, to_uint8

DATA_RANGE = 255.0
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # scipy's truncate=3.5 at sigma 1.5 -> an 11-tap window
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _prepare(x: torch.Tensor, ref: torch.Tensor, color: ColorMode) -> tuple[torch.Tensor, torch.Tensor]:
    check_pair(x, ref)
    x255 = reduce_color(to_uint8(x).double(), color)
    ref255 = reduce_color(to_uint8(ref).double(), color)
    return x255, ref255


def _weighted_mean(values: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    """Per-image mean of ``[N, C, H, W]`` values, weighted by ``region`` ``[N, 1, H, W]``."""
    if region is None:
        return values.mean(dim=(1, 2, 3))
    weight = region.expand_as(values)
    total = weight.sum(dim=(1, 2, 3))
    if (total == 0).any():
        raise MetricInputError("the evaluation region is empty for at least one image")
    return (values * weight).sum(dim=(1, 2, 3)) / total


def psnr(x: torch.Tensor, ref: torch.Tensor, *, color: ColorMode = "rgb",
         region: torch.Tensor | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image ``[N]`` (``inf`` for identical images)."""
    x255, ref255 = _prepare(x, ref, color)
    weight = None if region is None else check_region(region, x)
    return psnr_from_mse(_weighted_mean((x255 - ref255) ** 2, weight))


def _gaussian_taps(device: torch.device) -> torch.Tensor:
    taps = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float64, device=device)
    g = torch.exp(-0.5 * (taps / SSIM_SIGMA) ** 2)
    return g / g.sum()


def ssim_map(x255: torch.Tensor, ref255: torch.Tensor) -> torch.Tensor:
    """SSIM index of every fully-inside 11x11 window: ``[N, C, H - 10, W - 10]`` (inputs 0..255)."""
    n, c, h, w = x255.shape
    size = 2 * SSIM_RADIUS + 1
    if h < size or w < size:
        raise MetricInputError(f"SSIM needs images of at least {size}x{size} pixels, got {h}x{w}")
    taps = _gaussian_taps(x255.device)
    rows, cols = taps.view(1, 1, size, 1).expand(c, 1, size, 1), taps.view(1, 1, 1, size).expand(c, 1, 1, size)

    def blur(t: torch.Tensor) -> torch.Tensor:  # the separable 11x11 Gaussian, valid region only
        return F.conv2d(F.conv2d(t, rows, groups=c), cols, groups=c)

    mu_x, mu_y = blur(x255), blur(ref255)
    var_x = blur(x255 * x255) - mu_x**2
    var_y = blur(ref255 * ref255) - mu_y**2
    cov = blur(x255 * ref255) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def ssim(x: torch.Tensor, ref: torch.Tensor, *, color: ColorMode = "gray",
         region: torch.Tensor | None = None) -> torch.Tensor:
    """Structural similarity per image ``[N]`` (Wang et al. settings, see the module docstring)."""
    x255, ref255 = _prepare(x, ref, color)
    weight = None
    if region is not None:
        r = SSIM_RADIUS
        weight = check_region(region, x)[..., r:-r, r:-r]
    return _weighted_mean(ssim_map(x255, ref255), weight)


def psnr_from_mse(mse: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """PSNR in dB of a mean squared error measured on a signal spanning ``data_range``."""
    return 10.0 * torch.log10(data_range**2 / mse)
