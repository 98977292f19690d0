"""deepinv physics <-> ganprior degradations, for the operators that are the same linear map.

Exact pairs (same ``A`` on [0, 1] images to float32 precision; ``tests/test_deepinv.py`` measures it):

==========================================  ==============================================================
deepinv                                     ganprior
==========================================  ==============================================================
``Inpainting(mask)`` (same mask on every    :class:`~ganprior.degradations.Inpainting` (1 = observed in both)
channel)
``Downsampling(filter, factor, padding)``   :class:`~ganprior.deepinv.operators.FilterOperator` (stride ``factor``)
``Blur(filter, padding)``                   ganprior ``Blur`` when the taps are its Gaussian/box with reflect
                                            padding, else ``FilterOperator`` (stride 1)
``BlurFFT(img_size, filter)``               ``FilterOperator`` (circular padding)
``Denoising`` / ``GaussianNoise(sigma)``    :class:`~ganprior.degradations.Denoising` with ``2 * sigma``
                                            (ganprior's images span [-1, 1], deepinv's [0, 1])
``a * b``, ``compose(b, a)``                :class:`~ganprior.degradations.Compose` ``[b, a]`` (b first)
==========================================  ==============================================================

``Decolorize()`` (its default Rec.601 response) maps to :class:`~ganprior.degradations.Colorization`,
which is the papers' grey (0.2989, 0.5870, 0.1140; sum 0.9999) where deepinv's is (0.29896, 0.58702,
0.11405): the two differ by at most 1.2e-4 on [0, 1] images, said in ``MAPPED_WITHIN``.
Filters must be separable and sum to 1; ``padding="valid"`` (it shrinks the image), zero padding,
non-Gaussian noise and every other physics raise :class:`DeepinvMappingError` naming what does not map.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from ganprior.degradations import (Blur, Colorization, Compose, Degradation, DegradationError, Denoising, Inpainting,
                                   blur_kernel)

from .operators import PADDINGS, FilterOperator, separable_factors

#: deepinv's default Decolorize response (``deepinv/physics/range.py``)
DEEPINV_REC601 = (0.4472 * 0.66851, 0.8781 * 0.66851, 0.1706 * 0.66851)
#: largest |A_ganprior(x) - A_deepinv(x)| on [0, 1] images for mappings that are not exact to float precision
MAPPED_WITHIN = {"Decolorize": 1.2e-4}


class DeepinvMappingError(DegradationError):
    """A deepinv physics (or a ganprior degradation) has no exact counterpart on the other side."""


def require_deepinv() -> Any:
    """The ``deepinv`` module, or one line saying how to install the optional extra."""
    try:
        import deepinv
    except ImportError as exc:
        raise ImportError("ganprior.deepinv needs deepinv: pip install 'ganprior[deepinv]' (deepinv==0.5.0)") from exc
    return deepinv


# ----- noise -------------------------------------------------------------------------------------
def noise_sigma(physics: Any) -> float | None:
    """Gaussian sigma of ``physics.noise_model`` on deepinv's [0, 1] scale: 0.0 for none, None when the
    model is not Gaussian (Poisson, ...), so its level has no ganprior equivalent."""
    dinv = require_deepinv()
    model = getattr(physics, "noise_model", None)
    if model is None or isinstance(model, dinv.physics.ZeroNoise):
        return 0.0
    if type(model) is dinv.physics.GaussianNoise:
        sigma = torch.as_tensor(model.sigma).detach().flatten().unique()
        if sigma.numel() != 1:
            raise DeepinvMappingError(f"GaussianNoise with one sigma per sample ({sigma.tolist()}) has no single "
                                      "ganprior noise level; give one sigma")
        return float(f"{float(sigma[0]):.7g}")  # deepinv keeps sigma in float32: 0.1 comes back as 0.100000001
    return None


def _noise_level(physics: Any, required: bool) -> float | None:
    """The Gaussian noise level on ganprior's [-1, 1] scale (None: not Gaussian, refused if ``required``)."""
    sigma = noise_sigma(physics)
    if sigma is None and required:
        raise DeepinvMappingError(f"noise model {type(physics.noise_model).__name__} has no ganprior counterpart "
                                  "(only GaussianNoise maps, to Denoising with 2*sigma)")
    return None if sigma is None else 2.0 * sigma


# ----- deepinv -> ganprior -----------------------------------------------------------------------
def _filter2d(physics: Any, what: str) -> torch.Tensor:
    f = getattr(physics, "filter", None)
    if f is None:
        return torch.ones(1, 1)
    f = f.detach().cpu()
    if f.ndim != 4 or f.shape[0] != 1 or (f.shape[1] > 1 and not bool((f == f[:, :1]).all())):
        raise DeepinvMappingError(f"{what} filter of shape {tuple(f.shape)} differs per sample or channel; "
                                  "ganprior's operators use one 2-D filter")
    return f[0, 0]


def _padding(physics: Any, what: str) -> str:
    padding = getattr(physics, "padding", "circular")
    if padding not in PADDINGS:
        raise DeepinvMappingError(f"{what} with padding={padding!r} has no ganprior operator (ganprior keeps the "
                                  f"image size and pads with {', '.join(PADDINGS)})")
    return padding


def _checked_filter(f: torch.Tensor, what: str) -> None:
    if abs(float(f.double().sum()) - 1.0) > 1e-5:
        raise DeepinvMappingError(f"{what} filter sums to {float(f.sum()):.6g}, not 1; ganprior maps only filters "
                                  "that keep constants (the same map on [0, 1] and [-1, 1] images)")
    if separable_factors(f) is None:
        raise DeepinvMappingError(f"{what} filter is not separable; ganprior's projection needs a rank-one filter")


def _as_ganprior_blur(f: torch.Tensor, padding: str, noise: float | None) -> Blur | None:
    """ganprior's own Blur when ``f`` is exactly its Gaussian or box kernel with its reflect padding."""
    factors = separable_factors(f)
    if padding != "reflect" or factors is None or f.shape[0] != f.shape[1]:
        return None
    col, row = factors
    taps = col / col.sum()
    if not torch.allclose(col / col.sum(), row / row.sum(), atol=1e-6):
        return None
    n = taps.numel()
    if torch.allclose(taps, torch.full_like(taps, 1.0 / n), atol=1e-6):
        candidates = [("box", float(n))]
    else:
        r = n // 2  # the outermost tap pins sigma best: t[c + r] / t[c] = exp(-r^2 / (2 sigma^2))
        ratio = float(taps[n - 1] / taps[r]) if n > 2 else 0.0
        if n % 2 == 0 or not 0.0 < ratio < 1.0:
            return None
        sigma = math.sqrt(-r * r / (2 * math.log(ratio)))
        candidates = [("gaussian", round(sigma, k)) for k in (3, 6)] + [("gaussian", sigma)]
    for candidate in candidates:  # the roundest sigma whose taps are these (float32 filters: ~1e-7 off)
        try:
            kernel = blur_kernel(*candidate)
        except DegradationError:
            continue
        if kernel.numel() == n and torch.allclose(kernel, taps, atol=1e-6):
            return Blur(candidate[1], kind=candidate[0], fusion="project", noise_sigma=noise)  # type: ignore[arg-type]
    return None


def _one(physics: Any, noise: float | None) -> list[Degradation]:
    """The ganprior operators of one (non-composed) deepinv physics, without its noise step; ``noise``
    (ganprior's scale; None = unknown, estimated from the photo) is the level a blur's fusion works to."""
    dinv = require_deepinv()
    p = dinv.physics
    name = type(physics).__name__
    if type(physics) is p.Inpainting:
        mask = getattr(physics, "mask", None)
        if mask is None:
            raise DeepinvMappingError("Inpainting without a mask has no ganprior operator")
        mask = mask.detach().cpu().float()
        while mask.ndim < 4:
            mask = mask[None]
        if mask.shape[1] > 1 and not bool((mask == mask[:, :1]).all()):
            raise DeepinvMappingError("Inpainting with a different mask per channel has no ganprior operator "
                                      "(ganprior masks whole pixels: pixelwise=True)")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise DeepinvMappingError("Inpainting with a non-binary mask has no ganprior operator")
        return [Inpainting(mask[:, :1])]
    if type(physics) is p.Decolorize:
        srf = physics.srf.detach().cpu().flatten()
        if srf.numel() != 3 or not torch.allclose(srf, torch.tensor(DEEPINV_REC601), atol=1e-6):
            raise DeepinvMappingError(f"Decolorize with srf={srf.tolist()} has no ganprior operator (only the default "
                                      "Rec.601 response maps, to Colorization)")
        return [Colorization(fusion="lab-luma")]
    if type(physics) in (p.Downsampling, p.Blur, p.BlurFFT):
        f = _filter2d(physics, name)
        _checked_filter(f, name)
        if type(physics) is p.Downsampling:
            return [FilterOperator(f, int(physics.factor), _padding(physics, name), "downsampling")]
        if type(physics) is p.BlurFFT:
            return [FilterOperator(f, 1, "circular", "blurfft", img_size=tuple(physics.img_size),
                                   noise_sigma=noise or 0.0)]
        padding = _padding(physics, name)
        return [_as_ganprior_blur(f, padding, noise) or FilterOperator(f, 1, padding, "blur", noise_sigma=noise or 0.0)]
    if type(physics) is p.Denoising:
        return []
    raise DeepinvMappingError(f"deepinv {name} has no exact ganprior operator; GANPrior restores it through "
                              "physics.A and fuses with physics.A_dagger instead")


def from_deepinv(physics: Any, *, noise: bool = True) -> Compose:
    """The ganprior degradation equal to a deepinv physics (see the module's table), Gaussian noise included
    as a final :class:`~ganprior.degradations.Denoising` step. ``noise=False`` leaves that step out (a
    deepinv ``Denoising`` physics keeps it: it is its only operator) and accepts any noise model."""
    dinv = require_deepinv()
    if isinstance(physics, dinv.physics.StackedPhysics):
        raise DeepinvMappingError("stacked physics (several measurements of one image) have no ganprior operator")
    parts = list(physics.physics_list) if isinstance(physics, dinv.physics.forward.ComposedPhysics) else [physics]
    level = _noise_level(physics, required=noise)
    ops: list[Degradation] = []
    for part in parts:
        if isinstance(part, (dinv.physics.forward.ComposedPhysics, dinv.physics.StackedPhysics)):
            raise DeepinvMappingError(f"nested {type(part).__name__} has no ganprior operator")
        ops += _one(part, level)
    if level and (noise or not ops):
        ops.append(Denoising(level))
    return Compose(ops)


# ----- ganprior -> deepinv -----------------------------------------------------------------------
def _physics_of(op: Degradation) -> Any:
    p = require_deepinv().physics
    if isinstance(op, Inpainting):
        mask = op.mask.detach().cpu()
        return p.Inpainting(img_size=tuple(mask.shape[1:]), mask=mask)
    if isinstance(op, Colorization):
        return p.Decolorize()
    if isinstance(op, FilterOperator):
        f = op.filter2d.detach().cpu()[None, None]
        if op.kind == "downsampling":
            return p.Downsampling(filter=f, factor=op.factor, padding=op.padding)
        if op.kind == "blurfft":
            if op.img_size is None:
                raise DeepinvMappingError("a BlurFFT operator needs its img_size to go back to deepinv")
            return p.BlurFFT(img_size=op.img_size, filter=f)
        return p.Blur(filter=f, padding=op.padding)
    if isinstance(op, Blur):
        taps = blur_kernel(op.kind, op.size).float()
        return p.Blur(filter=torch.outer(taps, taps)[None, None], padding="reflect")
    raise DeepinvMappingError(
        f"ganprior {type(op).__name__} ({op.name}) has no exact deepinv physics"
        + (": it resamples like Pillow (taps renormalised at the border); deepinv's Downsampling pads instead. "
           "Build the operator with deepinv.physics.Downsampling and map it back with from_deepinv"
           if op.name.startswith("sr") else ""))


def to_deepinv(degradation: Degradation) -> Any:
    """The deepinv physics equal to a ganprior degradation (a final Denoising becomes its GaussianNoise)."""
    p = require_deepinv().physics
    ops = list(getattr(degradation, "ops", [degradation]))
    sigma = 0.0
    if ops and isinstance(ops[-1], Denoising):
        if ops[-1].sigma is None:
            raise DeepinvMappingError("a Denoising step with an estimated sigma has no deepinv noise model; give sigma")
        sigma = ops.pop().sigma / 2.0
    if any(isinstance(op, Denoising) for op in ops):
        raise DeepinvMappingError("deepinv adds noise after the last operator only; put Denoising last")
    physics = [_physics_of(op) for op in ops]
    noise = p.GaussianNoise(sigma=sigma) if sigma > 0 else p.ZeroNoise()
    if not physics:
        return p.Denoising(noise_model=noise)
    if len(physics) == 1:
        out = physics[0]
    else:
        with warnings.catch_warnings():  # "resulting physics will not be decomposable": known and harmless here
            warnings.simplefilter("ignore")
            out = p.ComposedLinearPhysics(*physics)
    out.set_noise_model(noise)
    return out


def operator_gap(physics: Any, degradation: Degradation, img_size: tuple[int, int, int], seed: int = 0) -> float:
    """Largest |A_ganprior(x) - A_deepinv(x)| over a random batch of [0, 1] images of ``img_size`` (C, H, W).

    Both operators are linear maps without offset, so comparing them on [0, 1] data is comparing the
    maps; a grey observation (deepinv: 1 channel) is compared with ganprior's first channel.
    """
    x = torch.rand((2, *img_size), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ours = degradation(x)
        theirs = physics.A(x)
    if theirs.shape[1] == 1 and ours.shape[1] == 3:
        ours = ours[:, :1]
    if ours.shape != theirs.shape:
        raise DeepinvMappingError(f"ganprior gives {tuple(ours.shape)}, deepinv {tuple(theirs.shape)}")
    return float((ours - theirs).abs().max())
