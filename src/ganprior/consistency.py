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
  Denoising and JPEG are not projected (``A(x) = y`` would put the noise back; JPEG's quantisation is
  not linear): for them the number says how far the output is from the observation, nothing more.
"""

from __future__ import annotations

import warnings

import torch

from ganprior.degradations import Colorization, Degradation
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


class RestorationWarning(UserWarning):
    """Something the user should know about a restoration that still runs (one line)."""


def _ops(degradation: Degradation) -> list[Degradation]:
    return list(getattr(degradation, "ops", [degradation]))


def observed_part(degradation: Degradation, y: torch.Tensor) -> torch.Tensor:
    """``y`` projected into what ``degradation`` can observe; warns when that discards colour."""
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
