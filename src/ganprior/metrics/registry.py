"""The one list of metric names: what each means, its range, its direction, what it needs, and pyiqa's name.

Names follow pyiqa (``pyiqa.create_metric(name)``, 0.1.16) wherever the metric means the same, so a
table from ``ganprior score`` or ``ganprior bench`` reads like one from pyiqa. The project's earlier
names stay accepted as aliases (``ssim_rgb`` is ``ssimc``, ``lpips_alex`` is ``lpips``, ...) and mean
the same everywhere; :func:`canonical` resolves them. ``ssim`` is always SSIM on the luma (MATLAB
``rgb2gray``, as Wang et al.'s reference and pyiqa's ``ssim``), never switched to RGB by the task: the
colour-aware score is ``ssimc``.

:func:`pixel_metric` computes the PSNR/SSIM family from the registry, so the command line and the
bench cannot disagree on a name. :func:`pyiqa_cross_check` recomputes a value with pyiqa where pyiqa
and the weights it needs are already on this machine (nothing is downloaded), and otherwise says why
in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .images import MetricInputError, MetricUnavailable


@dataclass(frozen=True)
class MetricSpec:
    """One metric. ``range`` is (low, high), ``None`` for unbounded; ``pyiqa`` is pyiqa's name (None: it has
    none), ``same_as_pyiqa`` says whether the meaning is the same and what differs."""

    name: str
    meaning: str
    range: tuple[float, float | None]
    lower_better: bool
    needs_reference: bool
    needs_mask: bool = False
    pyiqa: str | None = None
    same_as_pyiqa: str = "no pyiqa counterpart"
    aliases: tuple[str, ...] = ()


_LUMA = ("pyiqa uses YIQ's Y weights (0.299, 0.587, 0.114), ganprior MATLAB rgb2gray's (0.2989, 0.5870, 0.1140); "
         "both round the luma to 8 bits")
METRICS: dict[str, MetricSpec] = {m.name: m for m in (
    MetricSpec("psnr", "PSNR (dB) on RGB, 8-bit images, data range 255", (0.0, None), False, True, pyiqa="psnr",
               same_as_pyiqa="yes (ganprior rounds to 8 bits first; pyiqa scores floats as given)"),
    MetricSpec("psnry", "PSNR (dB) on the 8-bit luma (MATLAB rgb2gray)", (0.0, None), False, True, pyiqa="psnry",
               same_as_pyiqa=f"yes, up to the luma weights: {_LUMA}", aliases=("psnr_gray",)),
    MetricSpec("psnr_ycbcr", "PSNR (dB) on BT.601 studio-range Y (16..235, BasicSR's test_y_channel)", (0.0, None),
               False, True, same_as_pyiqa="no: pyiqa's psnry is full-range luma (this scale is 219/255 of it)",
               aliases=("psnr_y",)),
    MetricSpec("ssim", "SSIM (Wang et al.: 11x11 Gaussian, sigma 1.5, no downsampling) on the 8-bit luma",
               (0.0, 1.0), False, True, pyiqa="ssim",
               same_as_pyiqa=f"yes, up to the luma weights ({_LUMA}) and pyiqa's clamp of negative contrast terms",
               aliases=("ssim_gray",)),
    MetricSpec("ssimc", "SSIM per RGB channel, averaged (colour-aware: what colorization is judged by)",
               (0.0, 1.0), False, True, pyiqa="ssimc", same_as_pyiqa="yes (pyiqa clamps negative contrast terms)",
               aliases=("ssim_rgb",)),
    MetricSpec("ssim_ycbcr", "SSIM on BT.601 studio-range Y", (0.0, 1.0), False, True,
               same_as_pyiqa="no: pyiqa's ssim is on full-range luma", aliases=("ssim_y",)),
    MetricSpec("psnr_hole", "psnr on the holes of the inpainting mask only (DGP's inpainting score)", (0.0, None),
               False, True, needs_mask=True),
    MetricSpec("ssim_hole", "ssim on windows centred in the holes only", (0.0, 1.0), False, True, needs_mask=True),
    MetricSpec("mse", "mean squared error on [0, 1] RGB", (0.0, 1.0), True, True),
    MetricSpec("rmse", "root mean squared error on the 0..255 grid", (0.0, 255.0), True, True),
    MetricSpec("lpips", "LPIPS v0.1, AlexNet backbone (the official weights, or unavailable)", (0.0, 1.0), True, True,
               pyiqa="lpips", same_as_pyiqa="yes", aliases=("lpips_alex",)),
    MetricSpec("lpips-vgg", "LPIPS v0.1, VGG-16 backbone", (0.0, 1.0), True, True, pyiqa="lpips-vgg",
               same_as_pyiqa="yes", aliases=("lpips_vgg",)),
    MetricSpec("lpips-squeeze", "LPIPS v0.1, SqueezeNet backbone", (0.0, 1.0), True, True,
               aliases=("lpips_squeeze",)),
    MetricSpec("niqe", "NIQE with the official pristine model, MATLAB rgb2gray, 96x96 blocks", (0.0, None), True,
               False, pyiqa="niqe", same_as_pyiqa="yes (the MATLAB NIQE; pyiqa also ships niqe_matlab, its port of that code)"),
    MetricSpec("fid", "FID, clean-fid protocol, Inception 2015-12-05 pool3 features", (0.0, None), True, True,
               pyiqa="fid", same_as_pyiqa="yes (pyiqa's default FID is also clean-fid's)"),
    MetricSpec("kid", "KID (clean-fid features), x 1", (0.0, None), True, True),
    MetricSpec("feat_dist", "distance in the shipped model's own feature network (not LPIPS)", (0.0, None), True,
               True),
    MetricSpec("id_sim", "cosine of dlib's ResNet face embeddings (not ArcFace)", (-1.0, 1.0), False, True),
    MetricSpec("consistency", "RMSE (0..255) between A(image) and the observation", (0.0, 255.0), True, False),
)}
ALIASES: dict[str, str] = {alias: m.name for m in METRICS.values() for alias in m.aliases}


def canonical(name: str) -> str:
    """The registry name for ``name`` (itself, or what an alias stands for); unknown names list the known."""
    if name in METRICS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    raise MetricInputError(f"unknown metric {name!r}; known: {', '.join(METRICS)} (aliases: {', '.join(ALIASES)})")


def spec(name: str) -> MetricSpec:
    return METRICS[canonical(name)]


#: registry name -> (function, colour convention) of ``psnr_ssim``
_PIXEL = {"psnr": ("psnr", "rgb"), "psnry": ("psnr", "gray"), "psnr_ycbcr": ("psnr", "y"),
          "ssim": ("ssim", "gray"), "ssimc": ("ssim", "rgb"), "ssim_ycbcr": ("ssim", "y"),
          "psnr_hole": ("psnr", "rgb"), "ssim_hole": ("ssim", "gray")}
PIXEL_METRICS = tuple(_PIXEL)


def pixel_metric(name: str, image: torch.Tensor, ref: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """A PSNR/SSIM-family value per image ``[N]`` by registry name or alias (``region``: 1 = scored)."""
    from .psnr_ssim import psnr, ssim

    key = canonical(name)
    if key not in _PIXEL:
        raise MetricInputError(f"{name!r} is not a PSNR/SSIM metric; those are {', '.join(PIXEL_METRICS)}")
    fn, colour = _PIXEL[key]
    return (psnr if fn == "psnr" else ssim)(image, ref, color=colour, region=region)


# ----- the optional pyiqa cross-check -----------------------------------------------------------
#: pyiqa metrics that need downloaded weights, and the file pyiqa looks for in its cache
_PYIQA_WEIGHTS = {"lpips": "LPIPS_v0.1_alex-df73285e.pth", "lpips-vgg": "LPIPS_v0.1_vgg-a78928a0.pth",
                  "niqe": "niqe_modelparameters.mat", "fid": "pt_inception-2015-12-05-6726825d.pth"}


def _pyiqa_cache() -> Path:
    """Where pyiqa keeps its downloads (``torch.hub.get_dir()/pyiqa``)."""
    return Path(torch.hub.get_dir()) / "pyiqa"


def pyiqa_unavailable(name: str) -> str | None:
    """Why pyiqa cannot cross-check ``name`` here (one line), or None when it can; never downloads."""
    entry = spec(name)
    if entry.pyiqa is None:
        return f"{entry.name} has no pyiqa counterpart"
    try:
        import pyiqa  # noqa: F401
    except ImportError:
        return "pyiqa is not installed (pip install pyiqa==0.1.16): no cross-check"
    weights = _PYIQA_WEIGHTS.get(entry.pyiqa)
    if weights is not None and not (_pyiqa_cache() / weights).is_file():
        return f"pyiqa's {entry.pyiqa} weights ({weights}) are not in {_pyiqa_cache()}: no cross-check (none downloaded)"
    return None


def pyiqa_cross_check(name: str, image: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
    """pyiqa's value for ``name`` on ``[N, 3, H, W]`` images in [-1, 1]; :class:`MetricUnavailable` says why not."""
    reason = pyiqa_unavailable(name)
    if reason is not None:
        raise MetricUnavailable(f"pyiqa:{canonical(name)}", reason)
    import pyiqa

    metric = pyiqa.create_metric(spec(name).pyiqa, device="cpu", as_loss=False)
    args = [(image + 1) / 2] + ([] if ref is None else [(ref + 1) / 2])
    with torch.no_grad():
        return metric(*args).flatten()


def metric_table() -> str:
    """The markdown table of the docs: ganprior name, pyiqa name, same meaning?, range, direction, needs."""
    rows = ["| ganprior name (aliases) | pyiqa name | same meaning? | range | better | needs |", "|---|---|---|---|---|---|"]
    for m in METRICS.values():
        names = m.name + (f" ({', '.join(m.aliases)})" if m.aliases else "")
        high = "∞" if m.range[1] is None else f"{m.range[1]:g}"
        needs = ", ".join(n for n, flag in (("reference", m.needs_reference), ("mask", m.needs_mask)) if flag) or "-"
        rows.append(f"| {names} | {m.pyiqa or '-'} | {m.same_as_pyiqa} | {m.range[0]:g}..{high} | "
                    f"{'lower' if m.lower_better else 'higher'} | {needs} |")
    return "\n".join(rows)
