"""Latent projection onto degraded observations: the W and W+ baselines, and the latent optimiser
that CRI's offset stage and PTI's first stage reuse.

W (StyleGAN-XL ``run_inversion.project`` style): one w broadcast to every layer, started at the
class-weighted average latent, perceptual loss only, Adam with the projector's LR ramp (peak 0.1).
W+: one w per layer, same start and schedule.
"""

from __future__ import annotations

import torch

from ganprior.losses import AUTO
from ganprior.methods.base import (
    CLASS_SEARCH_DEFAULTS,
    Method,
    ReconstructionLoss,
    Result,
    RunRecorder,
    RunStart,
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
) -> torch.Tensor:
    """Optimise ``ws = base + latent`` (``latent`` shaped like ``init``: one row = W, num_ws rows = W+)
    with the generator frozen; ``offset_weight·‖latent‖₂`` is CRI's offset regulariser.

    Returns the final ``[1, num_ws, w_dim]`` ws (the best one so far if the loss went non-finite).
    """
    latent = init.detach().clone().requires_grad_(True)

    def ws() -> torch.Tensor:
        full = broadcast_ws(latent, prior.num_ws)
        return full if base is None else base + full

    def step(i: int):
        img = prior.synthesis(ws(), c)
        terms = loss.terms(img)
        total = loss.total(terms).sum()
        logged = {k: float(v.detach().sum()) for k, v in terms.items()}
        if offset_weight:
            reg = torch.linalg.vector_norm(latent)
            total = total + offset_weight * reg
            logged["offset_norm"] = float(reg.detach())
        return total, logged, img

    with torch.enable_grad(), frozen(prior, loss.perceptual):
        optimize(stage, [latent], step, steps, stylegan_lr_ramp(lr), recorder)
    return ws().detach()


def mean_w(prior: GenerativePrior, c: torch.Tensor, n_samples: int, seed: int) -> torch.Tensor:
    """Average mapped latent ``[1, 1, w_dim]`` for class rows ``c`` (XL projector's start point)."""
    return sample_w(prior, c, n_samples, seed).mean(0, keepdim=True)[:, None, :]


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
        **CLASS_SEARCH_DEFAULTS,
    }

    def run(self, prior, degradation, observation, *, weight=None, class_index=None, seed=0, progress=True,
            frame_every=0, callback=None) -> Result:
        o = self.options
        run = self.start(prior, degradation, observation, weight, class_index, seed, progress, frame_every,
                         callback)
        init = self.start_latent(prior, run, class_index, seed)
        ws = optimize_ws(prior, run.c, run.loss, init, o["steps"], o["lr"], run.recorder, self.name)
        return self.finish(prior, ws, run)

    def start_latent(self, prior: GenerativePrior, run: RunStart, class_index, seed: int) -> torch.Tensor:
        """The class-weighted average latent: ``[1, 1, w_dim]`` for W, ``[1, num_ws, w_dim]`` for W+."""
        o = self.options
        with run.recorder.timed("start"):
            rows = start_classes(prior, class_index, run.c, o["w_avg_samples"], seed)
            start = mean_w(prior, rows, o["w_avg_samples"], seed)
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
