"""PULSE (Menon et al., CVPR 2020) on any StyleGAN prior.

The latent is a per-layer Gaussian vector kept on its initial sphere (spherical optimiser); it maps
to W through the "Gaussianised W" fit of the mapping network: ``w = lrelu_0.2(latent·std + mean)``,
with mean/std taken over ``lrelu_5(mapping(z))`` (slope 5 undoes the mapping's final slope-0.2 leaky
ReLU; PULSE used 1M samples, here ``fit_samples``). Loss ``100·L2 + 0.05·GEOCROSS`` on [0, 1] images
(L2 on [-1, 1] images is 4× larger, hence the default weight 25 here); Adam, lr 0.4, 100 steps, the
"linear1cycledrop" schedule. Noise inputs are not optimised (StyleGAN3/XL have none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ganprior.methods.base import CLASS_SEARCH_DEFAULTS, Method, Result, RunStart, frozen, optimize, register_method
from ganprior.methods.centroids import sample_w
from ganprior.models.prior import GenerativePrior


def linear_one_cycle_drop(peak: float) -> Callable[[float], float]:
    """PULSE's default schedule: triangular cycle over 90 % of the steps, then a drop to peak/1000."""

    def lr(t: float) -> float:
        if t < 0.9:
            return peak * (9 * (1 - abs(t / 0.9 - 0.5) * 2) + 1) / 10
        return peak * (0.1 + (t - 0.9) / 0.1 * (0.001 - 0.1))

    return lr


def geocross(ws: torch.Tensor) -> torch.Tensor:
    """Mean squared geodesic distance between the layers' latents (PULSE's GEOCROSS), per sample."""
    if ws.shape[1] < 2:
        return ws.new_zeros(ws.shape[0])
    a, b = ws[:, :, None, :], ws[:, None, :, :]
    d = 2 * torch.atan2(torch.sqrt(((a - b) ** 2).sum(-1) + 1e-9), torch.sqrt(((a + b) ** 2).sum(-1) + 1e-9))
    return (ws.shape[-1] * d.square()).mean((1, 2)) / 8


def sphere_norm(latent: torch.Tensor) -> torch.Tensor:
    """Per-layer radius ``[..., num_ws, 1]`` of the spherical latent."""
    return latent.square().sum(-1, keepdim=True).add(1e-9).sqrt()


def gaussianised_ws(latent: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``w = lrelu_0.2(latent·std + mean)``, row by row (one mean/std row per stacked image)."""
    return F.leaky_relu(latent * std + mean, 0.2)


@dataclass
class SphereStart:
    """One image's PULSE start: the seeded random latent and its Gaussianised-W fit (rows stack)."""

    latent: torch.Tensor  # [1, num_ws, w_dim]
    mean: torch.Tensor  # [1, 1, w_dim]
    std: torch.Tensor  # [1, 1, w_dim]


@register_method
class PULSE(Method):
    name = "pulse"
    defaults = {
        "steps": 100,
        "lr": 0.4,
        "perceptual": "mse",
        "perceptual_weight": 0.0,
        "l2_weight": 25.0,
        "geocross_weight": 0.05,
        "fit_samples": 10_000,
        **CLASS_SEARCH_DEFAULTS,
    }

    def run(self, prior, degradation, observation, *, weight=None, class_index=None, seed=0, progress=True,
            frame_every=0, callback=None) -> Result:
        o = self.options
        run = self.start(prior, degradation, observation, weight, class_index, seed, progress, frame_every,
                         callback)
        start = self.sphere_start(prior, run, seed)
        latent = start.latent.requires_grad_(True)
        radius = sphere_norm(latent.detach())

        def ws() -> torch.Tensor:
            return gaussianised_ws(latent, start.mean, start.std)

        def step(i: int):
            w = ws()
            img = prior.synthesis(w, run.c)
            terms = run.loss.terms(img)
            cross = geocross(w)
            total = (run.loss.total(terms) + o["geocross_weight"] * cross).sum()
            logged = {k: float(v.detach().sum()) for k, v in terms.items()} | {"geocross": float(cross.detach().sum())}
            return total, logged, img

        @torch.no_grad()
        def back_to_sphere() -> None:
            latent.mul_(radius / sphere_norm(latent))

        with torch.enable_grad(), frozen(prior, run.loss.perceptual):
            optimize("pulse", [latent], step, o["steps"], linear_one_cycle_drop(o["lr"]), run.recorder,
                     back_to_sphere)
        return self.finish(prior, ws().detach(), run)

    def sphere_start(self, prior: GenerativePrior, run: RunStart, seed: int) -> SphereStart:
        """The Gaussianised-W fit for the run's class and the seeded random start latent."""
        with run.recorder.timed("gaussian-fit"):
            gaussian = F.leaky_relu(sample_w(prior, run.c, self.options["fit_samples"], seed), 5.0)
            mean, std = gaussian.mean(0), gaussian.std(0)
        g = torch.Generator().manual_seed(seed)
        latent = torch.randn(1, prior.num_ws, prior.w_dim, generator=g).to(prior.device)
        return SphereStart(latent, mean[None, None], std[None, None])
