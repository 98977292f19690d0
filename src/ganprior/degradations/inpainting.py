"""Inpainting: the observation is the image times a binary mask (holes become 0 = mid-grey)."""

from __future__ import annotations

from typing import Any

import torch

from .base import Degradation, DegradationError, check_image


class Inpainting(Degradation):
    """``y = x * mask`` with ``mask`` ``[N or 1, 1, H, W]``, 1 = observed, 0 = hole (as in DGP and CRI).

    ``fuse`` pastes every observed pixel of ``y`` back bit-exactly and takes only the holes from
    the restoration; ``valid_mask`` is the mask, so losses ignore the holes.
    """

    name = "inpaint"

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        if not isinstance(mask, torch.Tensor):
            raise DegradationError(f"Inpainting needs a mask tensor, got {type(mask).__name__}")
        mask = mask.detach().float()
        while mask.ndim < 4:
            mask = mask[None]
        if mask.ndim != 4 or mask.shape[1] != 1:
            raise DegradationError(f"mask must be [N, 1, H, W] (or [H, W]), got {tuple(mask.shape)}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise DegradationError("mask must be binary: 1 = observed, 0 = hole")
        self.register_buffer("mask", mask)

    def _checked_mask(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x)
        if tuple(x.shape[-2:]) != tuple(self.mask.shape[-2:]):
            raise DegradationError(
                f"mask is {tuple(self.mask.shape[-2:])} (HxW) but the image is {tuple(x.shape[-2:])}"
            )
        return self.mask.to(x.device, x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._checked_mask(x)

    def fuse(self, x_restored: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        observed = self._checked_mask(x_restored).bool()
        return torch.where(observed, y.to(x_restored.dtype), x_restored)

    def project_observation(self, y: torch.Tensor) -> torch.Tensor:
        """Hole pixels become 0 (when the mask is at the observation's size, i.e. after any SR)."""
        if tuple(y.shape[-2:]) != tuple(self.mask.shape[-2:]):
            return y
        return y * self.mask.to(y.device, y.dtype)

    def propagate_weight(self, weight: torch.Tensor) -> torch.Tensor:
        if tuple(weight.shape[-2:]) != tuple(self.mask.shape[-2:]):
            raise DegradationError(
                f"mask is {tuple(self.mask.shape[-2:])} (HxW) but reaches an image of {tuple(weight.shape[-2:])}"
            )
        return weight * self.mask.to(weight.device, weight.dtype)

    @property
    def hole_fraction(self) -> float:
        return float(1.0 - self.mask.mean())

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": "Inpainting",
            "mask_size": list(self.mask.shape[-2:]),
            "hole_fraction": round(self.hole_fraction, 6),
        }
