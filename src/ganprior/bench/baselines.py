"""Classical baselines every GAN-prior result should beat, computed from the observation alone.

* ``input``: the degraded input itself at the clean size (the grey image for colorization, the
  image with its hole for inpainting, nearest-neighbour enlargement for SR);
* ``bicubic``: bicubic upsampling of a low-resolution observation (tasks that change the size);
* ``telea``: OpenCV's Telea fast-marching inpainting of the holes (tasks with inpainting; needs
  ``opencv-python-headless`` from the ``metrics`` extra), then bicubic upsampling if needed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ganprior.degradations import Inpainting, resize

BASELINES = ("input", "bicubic", "telea")
TELEA_RADIUS = 3


class BaselineUnavailable(RuntimeError):
    """A baseline that cannot run here; the message is the reason."""


def _kinds(degradation) -> list:
    return list(getattr(degradation, "ops", [degradation]))


def applicable_baselines(degradation, size: tuple[int, int]) -> list[str]:
    """The baselines that make sense for this degradation of a ``size`` clean image."""
    names = ["input"]
    if tuple(degradation.observed_size(size)) != tuple(size):
        names.append("bicubic")
    if any(isinstance(op, Inpainting) for op in _kinds(degradation)):
        names.append("telea")
    return names


def _to_size(x: torch.Tensor, size: tuple[int, int], kernel: str) -> torch.Tensor:
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if kernel == "nearest":
        return F.interpolate(x, size=size, mode="nearest-exact")
    return resize(x, size, kernel).clamp(-1, 1)


def telea(observation: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """OpenCV Telea inpainting of ``observation`` ``[1, 3, h, w]`` where ``hole`` ``[1, 1, h, w]`` is 1."""
    try:
        import cv2
    except ImportError as err:
        raise BaselineUnavailable("opencv-python-headless is not installed (pip install 'ganprior[metrics]')") from err
    from ganprior.images import from_uint8, to_uint8

    pixels = to_uint8(observation.expand(-1, 3, -1, -1))
    holes = (hole[0, 0].cpu().numpy() > 0.5).astype(np.uint8) * 255
    filled = cv2.inpaint(np.ascontiguousarray(pixels[..., ::-1]), holes, TELEA_RADIUS, cv2.INPAINT_TELEA)
    return from_uint8(np.ascontiguousarray(filled[..., ::-1])).to(observation.device)


def run_baseline(name: str, observation: torch.Tensor, degradation, size: tuple[int, int]) -> torch.Tensor:
    """The baseline's restoration ``[1, 3, *size]`` in ``[-1, 1]``."""
    if name == "input":
        return _to_size(observation, size, "nearest")
    if name == "bicubic":
        return _to_size(observation, size, "bicubic")
    if name == "telea":
        observed = degradation.valid_mask(size, observation.device)
        return _to_size(telea(observation.expand(-1, 3, -1, -1), 1 - observed), size, "bicubic")
    raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
