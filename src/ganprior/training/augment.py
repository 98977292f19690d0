"""Differentiable augmentation of the discriminator's inputs (DiffAugment, Zhao et al. 2020).

With a few thousand training images the discriminator memorises the reals within a few thousand
iterations and the generator's signal collapses. Applying the *same random, differentiable*
transformations to real and generated images before D removes that shortcut without teaching G
to produce augmented images (the gradients flow through the transforms).

Colour jitter is kept mild by default: the prior is used for colorization, so D must still be able
to tell a wrong hue/saturation from a right one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

POLICIES = ("color", "translation", "cutout")


@dataclass(frozen=True)
class DiffAugment:
    """Random per-sample transforms for ``[N, C, H, W]`` images in ``[-1, 1]``.

    ``policy``: comma-separated subset of :data:`POLICIES`, applied in that order.
    ``translation``: max shift as a fraction of the size; the uncovered border is ``fill``
    (white, the emoji background). ``cutout``: side of the erased square as a fraction of the size,
    filled with mid-grey.
    """

    policy: str = "color,translation,cutout"
    brightness: float = 0.1
    saturation: float = 0.2
    contrast: float = 0.15
    translation: float = 0.125
    cutout: float = 0.5
    fill: float = 1.0

    def __post_init__(self) -> None:
        unknown = [p for p in self.ops if p not in POLICIES]
        if unknown:
            raise ValueError(f"unknown DiffAugment policy {unknown}; choose from {POLICIES}")

    @property
    def ops(self) -> list[str]:
        return [p.strip() for p in self.policy.split(",") if p.strip()]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = getattr(self, f"_{op}")(x)
        return x

    def _uniform(self, x: torch.Tensor, half_width: float) -> torch.Tensor:
        """Per-sample factor in ``[-half_width, half_width]``, shaped to broadcast over C, H, W."""
        return (torch.rand(x.shape[0], 1, 1, 1, device=x.device) * 2 - 1) * half_width

    def _color(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._uniform(x, self.brightness)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (1 + self._uniform(x, self.saturation)) + mean
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        return (x - mean) * (1 + self._uniform(x, self.contrast)) + mean

    def _translation(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        max_dy, max_dx = int(h * self.translation + 0.5), int(w * self.translation + 0.5)
        dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), device=x.device)
        dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), device=x.device)
        rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy + max_dy).expand(n, h, w)
        cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx + max_dx).expand(n, h, w)
        padded = torch.nn.functional.pad(x, [max_dx, max_dx, max_dy, max_dy], value=self.fill)
        batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
        return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)

    def _cutout(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        ch, cw = int(h * self.cutout + 0.5), int(w * self.cutout + 0.5)
        top = torch.randint(0, h + 1, (n, 1, 1), device=x.device) - ch // 2
        left = torch.randint(0, w + 1, (n, 1, 1), device=x.device) - cw // 2
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
        return x * (~inside).unsqueeze(1).to(x.dtype)
