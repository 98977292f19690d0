"""Degradations as composable, differentiable observation operators (deepinv-style physics).

Conventions:
  * images are ``[N, C, H, W]`` float32 in ``[-1, 1]``; masks are ``[N, 1, H, W]`` (or
    broadcastable) with **1 = observed, 0 = hole**;
  * ``A(x)`` is the forward model (differentiable); ``A.degrade(x)`` makes a realistic test input
    (adds seeded noise, real JPEG, ...); ``A.fuse(x_restored, y)`` returns the final image made
    consistent with the observation ``y``; ``A.observed_size((H, W))`` and
    ``A.valid_mask((H, W))`` (per-pixel loss weight of the observation) describe ``y``;
  * ``A1 + A2``, ``compose(A1, A2)`` and ``Compose([A1, A2])`` all mean "apply A1, then A2";
    fusion runs back through the chain in reverse order;
  * every operator has a short ``name`` (file names, run.json) and a JSON-friendly ``describe()``.
"""

from .base import Compose, Degradation, DegradationError, LambdaDegradation, compose
from .colorization import GRAY_WEIGHTS, Colorization, lab_to_rgb, rgb_to_lab, to_gray
from .inpainting import Inpainting
from .masks import (
    MaskSpecError,
    box_mask,
    center_box_mask,
    mask_from_alpha,
    mask_from_spec,
    random_box_mask,
    random_pixel_mask,
    stroke_mask,
)
from .blur import Blur, blur_kernel
from .jpeg import JPEG, JpegTables, QuantisationBox, quantization_table, tables_from_file
from .noise import Denoising, estimate_noise_sigma
from .parse import TaskError, known_tasks, parse_task
from .resample import resize
from .super_resolution import SR_KERNELS, SuperResolution, dgp_lanczos2_taps

__all__ = [
    "JPEG",
    "Blur",
    "Denoising",
    "blur_kernel",
    "quantization_table",
    "JpegTables",
    "QuantisationBox",
    "tables_from_file",
    "estimate_noise_sigma",
    "Compose",
    "Colorization",
    "Degradation",
    "DegradationError",
    "GRAY_WEIGHTS",
    "Inpainting",
    "LambdaDegradation",
    "MaskSpecError",
    "SR_KERNELS",
    "SuperResolution",
    "TaskError",
    "box_mask",
    "center_box_mask",
    "compose",
    "dgp_lanczos2_taps",
    "known_tasks",
    "lab_to_rgb",
    "mask_from_alpha",
    "mask_from_spec",
    "parse_task",
    "random_box_mask",
    "random_pixel_mask",
    "resize",
    "rgb_to_lab",
    "stroke_mask",
    "to_gray",
]
