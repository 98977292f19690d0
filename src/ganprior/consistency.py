"""Restorations a user can trust: the observation as the operator sees it, outputs that reproduce it,
and a word when the generator is too small for the photo.

* :func:`observed_part` moves the photo into the operator's range before anything optimises against
  it (``y ← A(A⁺ y)``: a colour photo given to colorization becomes its Rec.601 grey, with a warning;
  inpainting holes become 0), so the loss never chases what ``A(G(w))`` cannot produce.
* :func:`consistent_fuse` fuses the restoration with the observation so that ``A(output) ≈ y``:
  inpainting pastes the observed pixels, colorization keeps the observed grey exactly, SR and blur
  use the range–null-space projection ``x + A⁺(y − A x)`` (``degradations/projection.py``). Clamping
  to [-1, 1] can break that, so fusion and clamping alternate (projections onto convex sets) until
  the clamp changes next to nothing.
* :func:`consistency_rmse` measures it on the 0..255 scale (``run.json``: ``consistency_rmse``).
* Denoising, JPEG and blur cannot ask for ``A(x) = y`` (it would put the noise back; JPEG's quantisation
  is not linear). Their fusions keep the output within what the observation allows instead: inside the
  noise ball (denoise), inside the file's quantisation intervals (jpeg), Tikhonov-regularised to the noise
  level (blur), each leaning on a classical estimate where the prior explains the photo less well
  (``degradations/noise.py``, ``jpeg.py``, ``blur.py``). :func:`calibrate` first estimates the noise
  level (when not given), reads a JPEG file's own tables, and refuses a photo the blur cannot have made;
  :func:`observation_report` says in run.json how the output, the prior and the classical estimate
  compare on what was observed, and warns when the prior is the weaker.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from ganprior.degradations import JPEG, Blur, Colorization, Degradation, Denoising, tables_from_file
from ganprior.metrics.consistency import degradation_consistency

#: at most this many fusion rounds alternate with clamping to [-1, 1] (measured on emoji ×4 SR:
#: 4 rounds leave an RMSE of 1.2/255, 20 rounds 0.16, 100 rounds 0.02; a round costs a few matrix products)
FUSE_ROUNDS = 100
#: previews during the optimisation (``callback``) take a few rounds only: they are redone every few steps
PREVIEW_ROUNDS = 3
#: ... stopping once the clamp moves no value by more than this ([-1, 1] scale, 0.006/255)
CLAMP_TOLERANCE = 5e-5
#: ... or once the clamped image is this consistent (RMSE on 0..255), far below 8-bit rounding (0.29)
RMSE_GOAL = 0.05
#: a blur restoration's prior is "the weaker" when A(prior) is this many dB further from the photo than A(classical)
WEAKER_DB = 1.0


class RestorationWarning(UserWarning):
    """Something the user should know about a restoration that still runs (one line)."""


def _ops(degradation: Degradation) -> list[Degradation]:
    return list(getattr(degradation, "ops", [degradation]))


def calibrate(degradation: Degradation, y: torch.Tensor, source: Any = None) -> None:
    """Fit the operators to the photo ``y`` before restoring: estimate the noise level where it was not
    given, use a JPEG file's own tables (``source`` is the path or PIL image the photo came from), and
    refuse a photo that the last operator, a blur or JPEG, cannot have made (:class:`DegradationError`, one line)."""
    ops = _ops(degradation)
    for op in ops:
        if isinstance(op, (Denoising, Blur)):
            op.calibrate(y)
    last = ops[-1] if ops else None
    if isinstance(last, JPEG) and source is not None:
        tables = tables_from_file(source)
        if tables is not None:
            last.use_tables(tables)
    if isinstance(last, (Blur, JPEG)) and last.fusion == "project":
        last.check_range(y)


def observed_part(degradation: Degradation, y: torch.Tensor, source: Any = None) -> torch.Tensor:
    """``y`` projected into what ``degradation`` can observe (after :func:`calibrate`); warns when that
    discards colour."""
    calibrate(degradation, y, source)
    projected = degradation.project_observation(y)
    if any(isinstance(op, Colorization) for op in _ops(degradation)) and y.shape[1] == 3:
        spread = float((y.amax(dim=1) - y.amin(dim=1)).mean()) * 127.5
        if spread > 0.5:
            warnings.warn(f"the photo has colour (mean channel spread {spread:.1f}/255): colorize restores from "
                          "its Rec.601 grey and discards the colour", RestorationWarning, stacklevel=3)
    return projected


def consistent_fuse(degradation: Degradation, x: torch.Tensor, y: torch.Tensor,
                    rounds: int = FUSE_ROUNDS) -> torch.Tensor:
    """Fused image in [-1, 1] that reproduces ``y`` as far as the operators' fusions allow."""
    fused = degradation.fuse(x, y)
    for _ in range(rounds):
        clamped = fused.clamp(-1, 1)
        if float((fused - clamped).abs().max()) <= CLAMP_TOLERANCE or \
                consistency_rmse(degradation, clamped, y) <= RMSE_GOAL:
            return clamped
        fused = degradation.fuse(clamped, y)
    return fused.clamp(-1, 1)


def consistency_rmse(degradation: Degradation, output: torch.Tensor, y: torch.Tensor) -> float:
    """RMSE between ``A(output)`` and ``y`` over the observed pixels, on the 0..255 scale."""
    valid = degradation.valid_mask(output.shape[-2:], output.device)
    if not bool((valid > 0).any()):
        return 0.0
    mse = degradation_consistency(output, y, degradation, weight=valid)["mse"]
    return float(mse.max().sqrt()) * 127.5


def resolution_note(output_size: tuple[int, int], resolution: int, model: str) -> str | None:
    """One line when the output needs more pixels than the generator makes, naming registry models that fit."""
    needed = max(int(output_size[0]), int(output_size[1]))
    if needed <= resolution:
        return None
    from ganprior.loading.registry import REGISTRY

    fitting = sorted((s for s in REGISTRY.values() if s.resolution >= needed),  # general-purpose ImageNet first
                     key=lambda s: (s.resolution, s.dataset != "ImageNet", s.name))
    names = ", ".join(s.name for s in fitting[:4])
    hint = f"models that make >= {needed} px: {names}" if names else "no registered model makes that many pixels"
    return (f"the output is {output_size[1]}x{output_size[0]} px (W x H) but {model} makes {resolution} px images: "
            f"its detail is upsampled x{needed / resolution:.1f} and only the observed content is sharp; {hint}")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a.double() - b.double()).square().mean())
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


def observation_report(degradation: Degradation, output: torch.Tensor, prior: torch.Tensor,
                       y: torch.Tensor) -> dict[str, Any] | None:
    """How the output, the prior's own image and the classical estimate compare with the photo (dB on the
    [-1, 1] range; run.json ``observation``), for a single denoise, jpeg or blur step; warns when the
    prior explains the photo less well than the classical estimate. None for other tasks."""
    ops = _ops(degradation)
    if len(ops) != 1 or not hasattr(ops[0], "classical_estimate") or getattr(ops[0], "fusion", "none") == "none":
        return None
    op = ops[0]
    classical = op.classical_estimate(y)
    fit = {name: float(degradation_consistency(image, y, op)["psnr"].min())
           for name, image in (("output", output), ("prior", prior), ("classical", classical))}
    fusion = dict(op.last_fusion or {})
    report = {
        "psnr_output_vs_input": _psnr(output, y), "psnr_output_vs_classical": _psnr(output, classical),
        "psnr_classical_vs_input": _psnr(classical, y),
        "observed_psnr": fit,  # PSNR of A(image) against the photo, for each image
        **fusion,
    }
    weight = fusion.get("prior_weight")
    # a weight below one half, or (blur) a prior that reproduces the photo clearly worse than the classical
    report["prior_weaker"] = weight < 0.5 if weight is not None else fit["prior"] < fit["classical"] - WEAKER_DB
    if report["prior_weaker"]:
        leans = f" (prior weight {weight:.2f})" if weight is not None else ""
        warnings.warn(f"the prior explains the photo less well than the classical {fusion.get('baseline', 'estimate')} "
                      f"({fit['prior']:.1f} dB against {fit['classical']:.1f} dB on what was observed): the output "
                      f"leans on the classical estimate{leans}", RestorationWarning, stacklevel=3)
    return report
