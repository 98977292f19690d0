"""NIQE (Mittal, Soundararajan & Bovik 2013), no-reference, with the official pristine model.

The pristine multivariate Gaussian (``mu_pris_param``, ``cov_pris_param``) and the 7x7 weighting
window come from the official MATLAB ``modelparameters.mat`` as redistributed in BasicSR 1.4.2
(``metrics/data/niqe_pris_params.npz``, hash-checked on load). The pipeline follows the MATLAB
reference: grey image on the uint8 grid (MATLAB ``rgb2gray`` by default), 96x96 blocks, two
scales (the second via MATLAB ``imresize(., 0.5)``), 18 AGGD features per block and scale, and
the Mahalanobis-like distance between the fitted and pristine Gaussians. Lower is better.
"""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from importlib import resources
from typing import NamedTuple

import numpy as np
import torch
from scipy.ndimage import convolve
from scipy.special import gamma as gamma_fn

from .images import ColorMode, MetricInputError, check_images, reduce_color, to_uint8
from .matlab_imresize import imresize

PARAMS_FILE = "niqe_pris_params.npz"
PARAMS_SHA256 = "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"
BLOCK = 96
#: the shape-parameter grid of the MATLAB moment-matching fit
_ALPHA_GRID = np.arange(0.2, 10.001, 0.001)
_RHO_GRID = gamma_fn(2 / _ALPHA_GRID) ** 2 / (gamma_fn(1 / _ALPHA_GRID) * gamma_fn(3 / _ALPHA_GRID))
#: neighbour offsets of the paired products: horizontal, vertical, both diagonals
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


class PristineModel(NamedTuple):
    mu: np.ndarray  # [36]
    cov: np.ndarray  # [36, 36]
    window: np.ndarray  # [7, 7]


@lru_cache(maxsize=1)
def pristine_model() -> PristineModel:
    """Load the vendored official parameters, refusing a file whose hash is not the pinned one."""
    blob = resources.files("ganprior.metrics").joinpath("data", PARAMS_FILE).read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != PARAMS_SHA256:
        raise RuntimeError(f"{PARAMS_FILE} has sha256 {digest}, expected {PARAMS_SHA256}: reinstall ganprior")
    with np.load(io.BytesIO(blob)) as data:
        return PristineModel(data["mu_pris_param"].ravel(), data["cov_pris_param"], data["gaussian_window"])


def _aggd_fit(values: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit by moment matching: (shape, left scale, right scale)."""
    values = values.ravel()
    left_std = np.sqrt(np.mean(values[values < 0] ** 2))
    right_std = np.sqrt(np.mean(values[values > 0] ** 2))
    gamma_hat = left_std / right_std
    r_hat = np.mean(np.abs(values)) ** 2 / np.mean(values**2)
    r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    alpha = _ALPHA_GRID[np.argmin((_RHO_GRID - r_hat_norm) ** 2)]
    spread = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
    return alpha, left_std * spread, right_std * spread


def _block_features(mscn: np.ndarray) -> list[float]:
    alpha, beta_l, beta_r = _aggd_fit(mscn)
    features = [alpha, (beta_l + beta_r) / 2]
    for shift in _SHIFTS:
        product = mscn * np.roll(mscn, shift, axis=(0, 1))
        alpha, beta_l, beta_r = _aggd_fit(product)
        mean = (beta_r - beta_l) * gamma_fn(2 / alpha) / gamma_fn(1 / alpha)
        features += [alpha, mean, beta_l, beta_r]
    return features


def _scale_features(img: np.ndarray, window: np.ndarray, block: int) -> np.ndarray:
    """Features ``[num_blocks, 18]`` of the mean-subtracted contrast-normalised (MSCN) image."""
    mu = convolve(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(convolve(img * img, window, mode="nearest") - mu * mu))
    mscn = (img - mu) / (sigma + 1)
    rows, cols = img.shape[0] // block, img.shape[1] // block
    return np.array([
        _block_features(mscn[r * block:(r + 1) * block, c * block:(c + 1) * block])
        for r in range(rows) for c in range(cols)
    ])


def niqe_gray(img: np.ndarray) -> float:
    """NIQE of one grey image ``HxW`` with values on the 0..255 scale (rounded to integers first)."""
    img = np.round(np.asarray(img, dtype=np.float64))
    if img.ndim != 2:
        raise MetricInputError(f"niqe_gray expects an HxW grey image, got shape {img.shape}")
    rows, cols = img.shape[0] // BLOCK, img.shape[1] // BLOCK
    if rows * cols < 2:
        raise MetricInputError(f"NIQE needs at least two {BLOCK}x{BLOCK} blocks, got a {img.shape[0]}x{img.shape[1]} image")
    model = pristine_model()
    img = img[: rows * BLOCK, : cols * BLOCK]
    fine = _scale_features(img, model.window, BLOCK)
    coarse = _scale_features(imresize(img, 0.5), model.window, BLOCK // 2)
    features = np.concatenate([fine, coarse], axis=1)
    mu = np.nanmean(features, axis=0)
    complete = features[~np.isnan(features).any(axis=1)]
    cov = np.cov(complete, rowvar=False)
    diff = model.mu - mu
    return float(np.sqrt(diff @ np.linalg.pinv((model.cov + cov) / 2) @ diff))


def niqe(x: torch.Tensor, *, color: ColorMode = "gray", crop_border: int = 0) -> torch.Tensor:
    """NIQE per image ``[N]`` of ``[N, C, H, W]`` images in ``[-1, 1]`` (``color``: ``gray`` = MATLAB
    ``rgb2gray`` as the official code, ``y`` = BasicSR's default Y channel)."""
    check_images(x)
    if color == "rgb":
        raise MetricInputError("NIQE is defined on one channel: use color='gray' or 'y'")
    grey = reduce_color(to_uint8(x).double(), color)[:, 0].cpu().numpy()
    if crop_border:
        grey = grey[:, crop_border:-crop_border, crop_border:-crop_border]
    return torch.tensor([niqe_gray(g) for g in grey], dtype=torch.float64)
