"""Classical baselines every GAN-prior result should beat, computed from the observation alone.

* ``input``: the degraded input itself at the clean size (the grey image for colorization, the
  image with its hole for inpainting, nearest-neighbour enlargement for SR);
* ``bicubic``: bicubic upsampling of a low-resolution observation (tasks that change the size);
* ``telea``: OpenCV's Telea fast-marching inpainting of the holes (tasks with inpainting; needs
  ``opencv-python-headless`` from the ``metrics`` extra), then bicubic upsampling if needed;
* ``nlm``: scikit-image non-local means for the task's noise sigma (estimated when not given): the
  classical estimate ``restore``'s denoise fusion leans on (``degradations/noise.py``);
* ``deblock``: non-local means deblocking projected into the JPEG quantisation intervals
  (``degradations/jpeg.py``), what ``restore``'s jpeg fusion leans on;
* ``wiener``: scikit-image's unsupervised Wiener deconvolution (noise and prior levels estimated by its
  own Gibbs sampler; symmetric padding against the FFT's wrap-around), a reference independent of the
  Tikhonov fusion ``restore`` uses for blur.
The last three apply when the task is that single operator.
BM3D is not offered: the ``bm3d`` package is free for non-commercial use only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ganprior.degradations import JPEG, Blur, Denoising, Inpainting, resize

BASELINES = ("input", "bicubic", "telea", "nlm", "deblock", "wiener")
#: single-operator tasks -> their classical baseline
CLASSICAL = {Denoising: "nlm", JPEG: "deblock", Blur: "wiener"}
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
    ops = _kinds(degradation)
    if any(isinstance(op, Inpainting) for op in ops):
        names.append("telea")
    if len(ops) == 1 and type(ops[0]) in CLASSICAL:
        names.append(CLASSICAL[type(ops[0])])
    return names


def unsupervised_wiener(observation: torch.Tensor, blur: Blur) -> torch.Tensor:
    """scikit-image's unsupervised Wiener deconvolution of ``observation`` ``[1, 3, h, w]``, per channel."""
    from skimage.restoration import unsupervised_wiener as deconvolve

    from ganprior.degradations.noise import _from_numpy, _to_numpy

    taps = blur.taps.double().cpu().numpy()
    pad = taps.size
    image = _to_numpy(observation)
    channels = [deconvolve(np.pad(image[..., c], pad, mode="symmetric"), np.outer(taps, taps), clip=False, rng=0)[0]
                for c in range(image.shape[-1])]
    return _from_numpy(np.clip(np.stack(channels, -1)[pad:-pad, pad:-pad], 0, 1), observation)


def _classical(observation: torch.Tensor, degradation, kind: type) -> torch.Tensor:
    op = _kinds(degradation)[0]
    if not isinstance(op, kind):
        raise ValueError(f"this baseline needs a {kind.__name__} task, got {degradation.name!r}")
    if isinstance(op, Blur):
        return unsupervised_wiener(observation, op)
    if isinstance(op, Denoising) and op.sigma is None:
        op.calibrate(observation)
    return op.classical_estimate(observation)


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
    kinds = {name: kind for kind, name in CLASSICAL.items()}
    if name in kinds:
        return _classical(observation.expand(-1, 3, -1, -1), degradation, kinds[name])
    raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
