"""Latent projection onto degraded observations: the W and W+ baselines, and the latent optimiser
that CRI's offset stage and PTI's first stage reuse.

W (StyleGAN-XL ``run_inversion.project`` style): one w broadcast to every layer, started at the
class-weighted average latent, perceptual loss only, Adam with the projector's LR ramp (peak 0.1).
W+: one w per layer, same start and schedule.

On StyleGAN2 the ``official`` preset runs the StyleGAN2-ADA projector's recipe
(``stylegan2-ada-pytorch@d72cc7d projector.py:57-129``, :class:`ProjectorNoise`): the noise maps are
re-drawn, optimised with w and re-normalised after every step under a 1e5-weighted autocorrelation
regulariser, and w is rendered with added Gaussian noise ``0.05·w_std·max(0, 1 − t/0.75)²``. As in the
official ``run_projection`` (``projector.py:198``, which renders the returned w with the loaded G, not
the projector's copy) the result is rendered with the generator's own noise maps: the optimised
ones only shape w's trajectory.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ganprior.losses import AUTO
from ganprior.methods.base import (
    CLASS_SEARCH_DEFAULTS,
    Method,
    ReconstructionLoss,
    Result,
    RunRecorder,
    RunStart,
    add_term,
    frozen,
    optimize,
    register_method,
    stylegan_lr_ramp,
)
from ganprior.methods.centroids import sample_w, score_latents, start_classes
from ganprior.models.prior import GenerativePrior


def broadcast_ws(latent: torch.Tensor, num_ws: int) -> torch.Tensor:
    """``[1, 1 | num_ws, w_dim]`` -> ``[1, num_ws, w_dim]``."""
    return latent.expand(-1, num_ws, -1) if latent.shape[1] == 1 else latent


def noise_layers(prior: GenerativePrior) -> list[nn.Module]:
    """The synthesis layers with a per-pixel noise input (``noise_const``), in synthesis order (the
    order of the official ``G.synthesis.named_buffers()``); StyleGAN3, XL and BigGAN have none."""
    return [m for m in prior.modules() if isinstance(getattr(m, "noise_const", None), torch.Tensor)]


@contextmanager
def noise_inputs(layers: list[nn.Module], maps: list[torch.Tensor] | None) -> Iterator[None]:
    """Render with ``maps`` (``[H, W]``, or ``[N, 1, H, W]`` one per image) in place of the layers'
    constant noise maps; the originals come back after the block."""
    if not maps:
        yield
        return
    before = [layer.noise_const for layer in layers]
    try:
        for layer, m in zip(layers, maps):
            layer.noise_const = m
        yield
    finally:
        for layer, m in zip(layers, before):
            layer.noise_const = m


def noise_regularization(maps: list[torch.Tensor]) -> torch.Tensor:
    """The SG2-ADA projector's noise regulariser (``projector.py:100-108``): squared one-pixel
    autocorrelations of every map, down a 2× average-pool pyramid to 8². ``[N]`` for ``[N, 1, H, W]`` maps."""
    total = 0.0
    for v in maps:
        noise = v if v.ndim == 4 else v[None, None]
        while True:
            total = total + (noise * torch.roll(noise, shifts=1, dims=3)).mean((1, 2, 3)) ** 2
            total = total + (noise * torch.roll(noise, shifts=1, dims=2)).mean((1, 2, 3)) ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return total


@torch.no_grad()
def renormalize_noise(maps: list[torch.Tensor]) -> None:
    """Zero mean, unit variance per map and image (``projector.py:121-125``)."""
    for buf in maps:
        dims = tuple(range(1, buf.ndim)) if buf.ndim == 4 else tuple(range(buf.ndim))
        buf -= buf.mean(dims, keepdim=True)
        buf *= buf.square().mean(dims, keepdim=True).rsqrt()


@dataclass
class ProjectorNoise:
    """The SG2-ADA projector's noise handling for one projection (``projector.py:57-129``).

    ``w_std`` is the RMS distance of the w samples from their mean (``projector.py:53``); the
    ``generator`` draws the noise maps (in :func:`noise_layers` order) and then, step by step, w's noise,
    in the order the official code draws them from torch's global generator.
    """

    w_std: float
    generator: torch.Generator
    w_noise_factor: float = 0.05
    w_noise_ramp: float = 0.75
    regularize_weight: float = 1e5
    optimize_maps: bool = True

    def draw_maps(self, prior: GenerativePrior) -> tuple[list[nn.Module], list[torch.Tensor]]:
        """The noise layers and fresh ``randn`` maps for them (none when not optimised)."""
        layers = noise_layers(prior) if self.optimize_maps else []
        maps = [torch.randn(layer.noise_const.shape, generator=self.generator).to(layer.noise_const)
                for layer in layers]
        return layers, [m.requires_grad_(True) for m in maps]

    def w_noise(self, latent: torch.Tensor, t: float) -> torch.Tensor | None:
        """``randn·w_std·factor·max(0, 1 − t/ramp)²`` shaped like ``latent`` (drawn even when it is 0)."""
        if not self.w_noise_factor:
            return None
        scale = self.w_std * self.w_noise_factor * max(0.0, 1.0 - t / self.w_noise_ramp) ** 2
        return torch.randn(latent.shape, generator=self.generator).to(latent) * scale


def optimize_ws(
    prior: GenerativePrior,
    c: torch.Tensor,
    loss: ReconstructionLoss,
    init: torch.Tensor,
    steps: int,
    lr: float,
    recorder: RunRecorder,
    stage: str,
    base: torch.Tensor | None = None,
    offset_weight: float = 0.0,
    noise: ProjectorNoise | None = None,
) -> torch.Tensor:
    """Optimise ``ws = base + latent`` (``latent`` shaped like ``init``: one row = W, num_ws rows = W+)
    with the generator frozen; ``offset_weight·‖latent‖₂`` is CRI's offset regulariser, ``noise`` the
    SG2-ADA projector's noise handling.

    Returns the final ``[1, num_ws, w_dim]`` ws (the best one so far if the loss went non-finite).
    """
    latent = init.detach().clone().requires_grad_(True)
    layers, maps = noise.draw_maps(prior) if noise is not None else ([], [])

    def ws(jitter: torch.Tensor | None = None) -> torch.Tensor:
        full = broadcast_ws(latent if jitter is None else latent + jitter, prior.num_ws)
        return full if base is None else base + full

    def step(i: int):
        jitter = noise.w_noise(latent, i / steps) if noise is not None else None
        with noise_inputs(layers, maps):
            img = prior.synthesis(ws(jitter), c)
        terms = loss.terms(img)
        total = loss.total(terms).sum()
        logged = loss.logged(terms)
        if offset_weight:
            reg = torch.linalg.vector_norm(latent)
            total = total + offset_weight * reg
            add_term(logged, "offset_norm", offset_weight, reg)
        if maps and noise.regularize_weight:
            reg = noise_regularization(maps).sum()
            total = total + noise.regularize_weight * reg
            add_term(logged, "noise_reg", noise.regularize_weight, reg)
        return total, logged, img

    with torch.enable_grad(), frozen(prior, loss.perceptual):
        optimize(stage, [latent, *maps], step, steps, stylegan_lr_ramp(lr), recorder,
                 (lambda: renormalize_noise(maps)) if maps else None)
    return ws().detach()


def mean_w(prior: GenerativePrior, c: torch.Tensor, n_samples: int, seed: int) -> torch.Tensor:
    """Average mapped latent ``[1, 1, w_dim]`` for class rows ``c`` (XL projector's start point)."""
    return w_stats(prior, c, n_samples, seed)[0]


def w_stats(prior: GenerativePrior, c: torch.Tensor, n_samples: int, seed: int,
            rank: int = 0) -> tuple[torch.Tensor, float]:
    """Average mapped latent ``[1, 1, w_dim]`` and the RMS distance of the samples from it
    (``w_std``, ``projector.py:50-53``). ``rank`` k > 0 returns the k-th of those samples instead of
    their average: a start drawn from the mapping network (``ganprior.samples``' alternative starts)."""
    samples = sample_w(prior, c, n_samples, seed)
    avg = samples.mean(0, keepdim=True)
    start = avg if rank == 0 else samples[(rank - 1) % n_samples][None]
    return start[:, None, :], float(((samples - avg).square().sum() / n_samples) ** 0.5)


#: the SG2-ADA projector's noise options (``projector.py:30-35``), as the ``official`` preset sets them
SG2_ADA_NOISE = {"optimize_noise": True, "w_noise_factor": 0.05, "noise_regularize_weight": 1e5}
#: options that switch the noise handling off (StyleGAN-XL's ``run_inversion.project`` has none)
NO_NOISE = {"optimize_noise": False, "w_noise_factor": 0.0, "noise_regularize_weight": 0.0}


def projector_noise(options: dict, prior: GenerativePrior, w_std: float, seed: int) -> ProjectorNoise | None:
    """:class:`ProjectorNoise` from a method's options (``None`` when they ask for none of it)."""
    optimize_maps = bool(options["optimize_noise"]) and bool(noise_layers(prior))
    if not optimize_maps and not options["w_noise_factor"]:
        return None
    return ProjectorNoise(w_std, torch.Generator().manual_seed(seed), options["w_noise_factor"],
                          options["w_noise_ramp"], options["noise_regularize_weight"], optimize_maps)


class _ProjectionBase(Method):
    """W / W+ projection; subclasses only choose the latent shape."""

    per_layer = False
    defaults = {
        "steps": 1000,
        "lr": 0.1,
        "perceptual": AUTO,  # the model's own feature net, else nvidia-vgg16, else its D
        "perceptual_weight": 1.0,
        "l2_weight": 0.0,
        "w_avg_samples": 10_000,
        **NO_NOISE,
        "w_noise_ramp": 0.75,
        **CLASS_SEARCH_DEFAULTS,
    }

    def run(self, prior, degradation, observation, *, weight=None, class_index=None, seed=0, progress=True,
            frame_every=0, callback=None) -> Result:
        run = self.start(prior, degradation, observation, weight, class_index, seed, progress, frame_every,
                         callback)
        return self.complete(prior, run, class_index, seed)

    def complete(self, prior: GenerativePrior, run: RunStart, class_index, seed: int) -> Result:
        """Start latent, projection and result of a started run."""
        o = self.options
        init = self.start_latent(prior, run, class_index, seed)
        noise = projector_noise(o, prior, run.extras["w_std"], seed)
        ws = optimize_ws(prior, run.c, run.loss, init, o["steps"], o["lr"], run.recorder, self.name, noise=noise)
        return self.finish(prior, ws, run)

    def runs_alone(self, prior: GenerativePrior) -> bool:
        """With the SG2-ADA noise handling each image runs on its own (its noise maps and w noise)."""
        return projector_noise(self.options, prior, 1.0, 0) is not None

    def start_latent(self, prior: GenerativePrior, run: RunStart, class_index, seed: int) -> torch.Tensor:
        """The class-weighted average latent: ``[1, 1, w_dim]`` for W, ``[1, num_ws, w_dim]`` for W+
        (``run.extras['w_std']``: the samples' spread, the scale of the SG2-ADA projector's w noise;
        ``run.rank`` k > 0: the k-th mapped sample instead of the average)."""
        o = self.options
        with run.recorder.timed("start"):
            rows = start_classes(prior, class_index, run.c, o["w_avg_samples"], seed)
            start, run.extras["w_std"] = w_stats(prior, rows, o["w_avg_samples"], seed, run.rank)
            run.extras["start_loss"] = float(score_latents(prior, start[:, 0], run.c, run.loss)[0])
        return broadcast_ws(start, prior.num_ws).clone() if self.per_layer else start


@register_method
class WProjection(_ProjectionBase):
    name = "w"
    per_layer = False


@register_method
class WPlusProjection(_ProjectionBase):
    name = "wplus"
    per_layer = True
