"""What the observation determined and what the prior made up: per-pixel maps over K restorations.

* **Uncertainty** is the per-pixel spread of K restorations that all reproduce the observation:
  the standard deviation over the samples (population, ``1/K``), taken per channel and combined as the
  root mean square over the channels, on the 0..255 scale. Where the observation fixes a pixel (an
  observed pixel of inpainting, the grey of colorization) every fused sample has the same value there,
  so the map is exactly 0; where it is silent, the samples differ.
* **Hallucination** is the part of one restoration ``x`` that lies in the null space of the task's
  operator ``A``: ``x − A⁺A x``. We compute ``A⁺A x`` as the fusion of a blank image with the
  observation ``A x`` (``consistent_fuse(A, 0, A x)``): every fusion in ganprior is the range–null-space
  projection ``z + A⁺(y − A z)`` (or, for colorization, the exact Lab counterpart), so with ``z = 0``
  it returns the minimum-norm image that explains ``A x``. The map is the per-pixel RMS over channels of
  ``x − A⁺A x`` on the 0..255 scale: the hole for inpainting, the chroma for colorization, the detail
  above the observed band for super-resolution. (Colour fusion is in Lab, so for colorization the
  "range part" is the grey photo with zero chroma rather than a linear projection: the map is the
  colour the prior added.)
"""

from __future__ import annotations

import torch

from ganprior.consistency import consistent_fuse
from ganprior.degradations import Degradation

#: [-1, 1] image units -> 0..255 grey levels
GREY_LEVELS = 127.5


def pixel_rms(t: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` differences in [-1, 1] units -> ``[N, 1, H, W]`` RMS over channels on 0..255."""
    return t.float().pow(2).mean(dim=1, keepdim=True).sqrt() * GREY_LEVELS


def sample_spread(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[1, C, H, W]`` and uncertainty ``[1, 1, H, W]`` (0..255) of ``samples`` ``[K, C, H, W]``."""
    if samples.ndim != 4 or samples.shape[0] < 1:
        raise ValueError(f"samples must be [K, C, H, W] with K >= 1, got {tuple(samples.shape)}")
    mean = samples.mean(dim=0, keepdim=True)
    std = samples.std(dim=0, unbiased=False, keepdim=True) if samples.shape[0] > 1 else torch.zeros_like(mean)
    return mean, pixel_rms(std)


@torch.no_grad()
def determined_part(degradation: Degradation, x: torch.Tensor) -> torch.Tensor:
    """``A⁺A x``: the image the observation of ``x`` alone determines (fusion of a blank image with ``A x``)."""
    return consistent_fuse(degradation, torch.zeros_like(x), degradation(x))


@torch.no_grad()
def hallucination(degradation: Degradation, x: torch.Tensor) -> torch.Tensor:
    """``[N, 1, H, W]`` per-pixel magnitude (0..255) of ``x − A⁺A x``: what the prior added to the observation."""
    return pixel_rms(x - determined_part(degradation, x))
