"""MATLAB ``imresize`` (bicubic, antialiasing on) for float images, as NIQE's reference uses it.

MATLAB resizes one axis at a time with the Keys cubic kernel (a = -0.5), widens the kernel by
``1 / scale`` when shrinking (antialiasing) and mirrors indices at the borders ("symmetric"
padding). Results are not rounded, matching MATLAB on double input.
"""

from __future__ import annotations

import math

import numpy as np

CUBIC_SUPPORT = 4.0


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def _axis_weights(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``[out_len, taps]`` and 0-based source indices of the same shape for one axis."""
    shrinking = scale < 1
    width = CUBIC_SUPPORT / scale if shrinking else CUBIC_SUPPORT
    centre = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based source coordinate
    first = np.floor(centre - width / 2)
    taps = int(math.ceil(width)) + 2
    indices = first[:, None] + np.arange(taps)[None, :]  # 1-based
    distance = centre[:, None] - indices
    weights = scale * _cubic(scale * distance) if shrinking else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    mirrored = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    return weights, mirrored[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]


def _resize_axis(img: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    weights, indices = _axis_weights(img.shape[axis], out_len, scale)
    moved = np.moveaxis(img, axis, 0)  # [in_len, ...]
    gathered = moved[indices]  # [out_len, taps, ...]
    expand = (slice(None), slice(None)) + (None,) * (moved.ndim - 1)
    out = (gathered * weights[expand]).sum(axis=1)
    return np.moveaxis(out, 0, axis)


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """Resize an ``HxW`` (or ``HxWxC``) float array by ``scale``, rows first like MATLAB."""
    img = np.asarray(img, dtype=np.float64)
    out_h, out_w = math.ceil(img.shape[0] * scale), math.ceil(img.shape[1] * scale)
    return _resize_axis(_resize_axis(img, 0, out_h, scale), 1, out_w, scale)
