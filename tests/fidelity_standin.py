"""A stand-in for NVIDIA's TorchScript vgg16.pt (not LPIPS: random weights) with its call convention, so
that an official script and ganprior can be given the *same* perceptual network offline: RGB in
[0, 255] -> one embedding per image whose squared distance is the LPIPS-style distance
(unit-normalised channels, spatial mean, summed over three max-pooled ReLU stages). Seeded weights drawn
with an explicit generator, so every build is identical. Used by tests/test_fidelity_cri.py and by the
local official-code comparison (docs/fidelity.md)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F


class StandInVGG(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(20221)
        shapes = [(8, 3), (16, 8), (16, 16)]
        self.w1, self.w2, self.w3 = (torch.nn.Parameter(torch.randn(o, i, 3, 3, generator=g) * (2.0 / (9 * i)) ** 0.5,
                                                        requires_grad=False) for o, i in shapes)
        self.b1, self.b2, self.b3 = (torch.nn.Parameter(torch.randn(o, generator=g) * 0.1, requires_grad=False)
                                     for o, _ in shapes)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    @staticmethod
    def _embed(f: torch.Tensor) -> torch.Tensor:
        f = f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10)
        return f.flatten(1) / float(f.shape[-1] * f.shape[-2]) ** 0.5

    def forward(self, img: torch.Tensor, resize_images: bool = False, return_lpips: bool = False) -> torch.Tensor:
        x = (img / 255.0 - self.mean) / self.std
        f1 = F.relu(F.conv2d(x, self.w1, self.b1, padding=1))
        f2 = F.relu(F.conv2d(F.max_pool2d(f1, 2), self.w2, self.b2, padding=1))
        f3 = F.relu(F.conv2d(F.max_pool2d(f2, 2), self.w3, self.b3, padding=1))
        return torch.cat([self._embed(f1), self._embed(f2), self._embed(f3)], dim=1)


def save_standin(path: Path) -> Path:
    """Script and save the stand-in (a TorchScript file, as vgg16.pt is)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(StandInVGG().eval()), str(path))
    return path
