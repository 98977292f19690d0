"""Differentiable resizing that reproduces Pillow's ``Image.resize`` on float images.

Pillow resamples separably: each output pixel is a normalised weighted sum of input pixels, the
kernel stretched by the scale when shrinking (antialiasing), truncated at the border and
renormalised there (no padding). We build those weights as two dense matrices, so a resize is two
matrix products, works for any size and factor, and gradients flow. Pillow's 8-bit path rounds
the weights to fixed point; on float ("F") images Pillow and this module agree to float precision.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Sequence

import torch


def _box(x: float) -> float:
    return 1.0 if -0.5 <= x < 0.5 else 0.0


def _bilinear(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _bicubic(x: float, a: float = -0.5) -> float:
    """Keys cubic with a = -0.5 (Pillow, Matlab ``imresize`` and torch's antialiased bicubic)."""
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def _sinc(x: float) -> float:
    return 1.0 if x == 0.0 else math.sin(math.pi * x) / (math.pi * x)


def _lanczos3(x: float) -> float:
    return _sinc(x) * _sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0


#: kernel name -> (function, support radius), as in Pillow's Resample.c
KERNELS: dict[str, tuple[Callable[[float], float], float]] = {
    "area": (_box, 0.5),
    "bilinear": (_bilinear, 1.0),
    "bicubic": (_bicubic, 2.0),
    "lanczos": (_lanczos3, 3.0),
}


@lru_cache(maxsize=64)
def resize_matrix(in_size: int, out_size: int, kernel: str) -> torch.Tensor:
    """``[out_size, in_size]`` float64 weights of Pillow's 1-D resampling along one axis."""
    fn, radius = KERNELS[kernel]
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = radius * filter_scale
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        taps = [fn((j - center + 0.5) / filter_scale) for j in range(lo, hi)]
        total = sum(taps)
        if total != 0.0:
            weights[i, lo:hi] = torch.tensor(taps, dtype=torch.float64) / total
    return weights


@lru_cache(maxsize=64)
def _matrix_on(in_size: int, out_size: int, kernel: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The weights already on the device: resizing inside an optimisation loop copies nothing."""
    return resize_matrix(in_size, out_size, kernel).to(device, dtype)


def resize(x: torch.Tensor, size: Sequence[int], kernel: str = "bicubic") -> torch.Tensor:
    """Resize ``[N, C, H, W]`` to ``size = (h, w)`` like Pillow (float mode); differentiable."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown resampling kernel {kernel!r}; known: {', '.join(KERNELS)}")
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"cannot resize to {h}x{w}")
    rows = _matrix_on(x.shape[-2], h, kernel, x.device, x.dtype)
    cols = _matrix_on(x.shape[-1], w, kernel, x.device, x.dtype)
    return torch.einsum("ih,nchw,jw->ncij", rows, x, cols)
