"""What the benchmark measures, and how each measure is computed from ``ganprior.metrics``.

Per-image measures compare a restoration with its clean image (full image, or only the hole for
inpainting, or in the feature space of the network the model ships), judge it without reference
(NIQE) or check it against the observation (consistency).
Set measures (FID, KID) compare all restorations of one (task, method) with a reference set.
A measure that cannot be computed honestly here (missing weights, image too small) is reported
with the reason instead of a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ganprior.metrics.images import MetricInputError, MetricUnavailable
from ganprior.tasks import task_kinds


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    higher_is_better: bool
    per_image: bool = True
    #: digits after the decimal point in tables
    digits: int = 4
    #: what the number means, printed under the table when the measure is shown
    note: str = ""

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


MEASURES: dict[str, Measure] = {m.key: m for m in (
    Measure("psnr", "PSNR", True, digits=2),
    Measure("ssim", "SSIM", True, note="SSIM on the 8-bit luma (MATLAB rgb2gray), for every task: "
            "`ganprior.metrics.registry`'s `ssim`, pyiqa's `ssim`; colorization adds `ssimc` (per RGB channel)."),
    Measure("ssimc", "SSIMc (RGB)", True),
    Measure("psnr_hole", "PSNR (hole)", True, digits=2),
    Measure("ssim_hole", "SSIM (hole)", True),
    Measure("mse", "MSE [0,1]", False, digits=5),
    Measure("rmse", "RMSE [0,255]", False, digits=2),
    Measure("lpips", "LPIPS", False),
    Measure("feat_dist", "feat-dist (emoji-feature-net)", False),
    Measure("niqe", "NIQE", False),
    Measure("consistency", "Consistency RMSE", False, digits=2, note=(
        "RMSE (0..255) between A(scored image) and the observation y, on the observed pixels: the formula of "
        "`ganprior restore`'s `consistency_rmse`. The bench builds each task with `parse_task`'s default "
        "fusions (the papers': SR, blur, denoise and JPEG outputs are not projected), so for those tasks it "
        "measures how far the method's own output is from explaining y (e.g. x4 SR: 15-60). `ganprior "
        "restore` asks for the consistent fusions (`api.CONSISTENT_FUSION`), which project the output onto "
        "A(x) = y, so it reports about 0 for the same task.")),
    Measure("id_sim", "ID sim (dlib ResNet, cos)", True),
    Measure("fid", "FID", False, per_image=False, digits=2),
    Measure("kid", "KID", False, per_image=False),
)}


class MeasureError(ValueError):
    """An unknown measure name."""


def check_measures(names: list[str] | tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in MEASURES]
    if unknown:
        raise MeasureError(f"unknown measure(s) {', '.join(unknown)}; known: {', '.join(MEASURES)}")


def default_measures(task: str) -> tuple[str, ...]:
    """Everything that applies to ``task``: hole-only scores for inpainting, NIQE for SR (as CRI)."""
    kinds = task_kinds(task)
    extra = []
    if "colorize" in kinds:  # luma SSIM is blind to colour: a grey output would score 1.0
        extra += ["ssimc"]
    if "inpaint" in kinds:
        extra += ["psnr_hole", "ssim_hole"]
    if "sr" in kinds:
        extra += ["niqe"]
    return ("psnr", "ssim", *extra, "lpips", "feat_dist", "consistency", "fid", "kid")


def _rmse_from_psnr(value: float) -> float:
    """RMSE on the 0..255 grid from a PSNR in dB (``psnr = 20 log10(255 / rmse)``)."""
    return 0.0 if math.isinf(value) else 255.0 * 10.0 ** (-value / 20.0)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def feature_net_distance(prior: torch.nn.Module | None) -> torch.nn.Module:
    """The ``feature-net`` perceptual distance of ``ganprior.losses`` bound to the network the model
    ships (``prior.feature_net``, the emoji-feature-net of the embedded model); not LPIPS: no learned
    channel weights, no human calibration. Models without such a network make it unavailable."""
    from ganprior.losses.perceptual import FeatureNetDistance, PerceptualUnavailableError

    if getattr(prior, "feature_net", None) is None:
        raise MetricUnavailable("feat-dist", "the model ships no feature network (prior.feature_net)")
    try:
        return FeatureNetDistance().prepare(prior)
    except PerceptualUnavailableError as err:
        raise MetricUnavailable("feat-dist", str(err)) from err


def ssim_colour(degradation: torch.nn.Module) -> str:
    """SSIM on MATLAB grey (the official convention) is blind to colour, so a grey input would score a
    perfect 1.0 on colorization: tasks that remove colour are scored per RGB channel instead.
    Only ``ganprior demo``'s summary uses this; the bench's and ``ganprior score``'s ``ssim`` is always
    the luma one and their colour-aware score is ``ssimc`` (``ganprior.metrics.registry``)."""
    from ganprior.degradations.colorization import Colorization

    return "rgb" if any(isinstance(m, Colorization) for m in degradation.modules()) else "gray"


class ImageScorer:
    """Scores one restoration; remembers why a measure is unavailable so it is tried only once.

    ``prior`` is only needed for ``feat_dist`` (the model's own feature network).
    """

    def __init__(self, measures: tuple[str, ...], lpips_net: str = "alex",
                 prior: torch.nn.Module | None = None) -> None:
        check_measures(measures)
        self.measures = tuple(m for m in measures if MEASURES[m].per_image)
        self.lpips_net = lpips_net
        self.prior = prior
        self.unavailable: dict[str, str] = {}
        self._feature_distance: torch.nn.Module | None = None

    def _feat_dist(self, image: torch.Tensor, clean: torch.Tensor) -> float:
        if self._feature_distance is None:
            self._feature_distance = feature_net_distance(self.prior)
        device = next(self._feature_distance.net.parameters()).device
        with torch.inference_mode():
            return float(self._feature_distance(image.to(device), clean.to(device))[0])

    def __call__(self, image: torch.Tensor, clean: torch.Tensor, observation: torch.Tensor,
                 degradation: torch.nn.Module, hole: torch.Tensor | None) -> dict[str, float | None]:
        """``hole`` is ``[1, 1, H, W]`` with 1 on missing pixels (None when nothing is missing)."""
        from ganprior.metrics.psnr_ssim import psnr
        from ganprior.metrics.registry import pixel_metric

        image = image.detach().float().cpu().clamp(-1, 1)
        clean = clean.detach().float().cpu()
        out: dict[str, float | None] = {}
        full_psnr: float | None = None
        for key in self.measures:
            if key in self.unavailable:
                continue
            try:
                if key in ("psnr", "mse", "rmse"):
                    if full_psnr is None:
                        full_psnr = float(psnr(image, clean)[0])
                    value = {"psnr": full_psnr, "rmse": _rmse_from_psnr(full_psnr),
                             "mse": (_rmse_from_psnr(full_psnr) / 255.0) ** 2}[key]
                elif key in ("ssim", "ssimc"):  # the registry's meaning, the same as `ganprior score`'s
                    value = float(pixel_metric(key, image, clean)[0])
                elif key in ("psnr_hole", "ssim_hole"):
                    if hole is None or float(hole.sum()) == 0:
                        raise MetricInputError("the task has no hole to score")
                    value = float(pixel_metric(key, image, clean, hole.float().cpu())[0])
                elif key == "lpips":
                    from ganprior.metrics.lpips_metric import lpips_distance

                    value = float(lpips_distance(image, clean, net=self.lpips_net)[0])
                elif key == "feat_dist":
                    value = self._feat_dist(image, clean)
                elif key == "id_sim":
                    from ganprior.metrics.identity import identity_similarity

                    value = identity_similarity(image, clean)
                elif key == "niqe":
                    from ganprior.metrics.niqe import niqe

                    value = float(niqe(image)[0])
                else:  # consistency: RMSE (0..255) between A(restoration) and the observation, observed pixels
                    from ganprior.metrics.consistency import degradation_consistency

                    observed = observation.detach().float().cpu()
                    weight = degradation.valid_mask(clean.shape[-2:])
                    mse = degradation_consistency(image, observed, degradation, weight=weight)["mse"]
                    value = float(mse[0].sqrt()) * 127.5
            except MetricUnavailable as err:
                self.unavailable[key] = err.reason
                continue
            except MetricInputError as err:
                self.unavailable[key] = str(err)
                continue
            out[key] = _finite_or_none(value)
        return out


def set_scores(measures: tuple[str, ...], restored: torch.Tensor, reference: torch.Tensor | str,
               min_images: int, progress: bool = False) -> tuple[dict[str, float], dict[str, str]]:
    """FID / KID of a set of restorations ``[N, 3, H, W]`` against ``reference`` (tensor or folder).

    Returns (values, reasons for the measures that were not computed).
    """
    wanted = [m for m in measures if m in ("fid", "kid")]
    values: dict[str, float] = {}
    reasons: dict[str, str] = {}
    if not wanted:
        return values, reasons
    if len(restored) < min_images:
        reason = f"needs at least {min_images} images per set, the run has {len(restored)}"
        return values, {m: reason for m in wanted}
    try:
        from ganprior.metrics.fid import frechet_distance, inception_stats, kernel_distance

        ours = inception_stats(restored, progress=progress)
        ref = inception_stats(reference, progress=progress)
        if "fid" in wanted:
            values["fid"] = frechet_distance(ours.mu, ours.sigma, ref.mu, ref.sigma)
        if "kid" in wanted:
            values["kid"] = kernel_distance(ours.features, ref.features)[0]
    except MetricUnavailable as err:
        reasons.update({m: err.reason for m in wanted if m not in values})
    except MetricInputError as err:
        reasons.update({m: str(err) for m in wanted if m not in values})
    return values, reasons
