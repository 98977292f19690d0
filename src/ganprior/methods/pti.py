"""Pivotal tuning (PTI): fine-tune the generator so that a frozen pivot latent reproduces the
observation, while a locality regulariser keeps the generator unchanged away from the pivot.

Used as CRI's second stage and as the PTI baseline (W projection + pivotal tuning). The regulariser
follows StyleGAN-XL's ``space_regularizer_loss``: one latent per step, ``w = mapping(z, random class,
ψ = 0.5)``, moved to distance α = 30 from the pivot, ``w_r = pivot + α (w − pivot)/‖w − pivot‖``,
and the tuned and original renderings of ``w_r`` compared with the perceptual distance (×10 as in XL)
plus an optional L2 (PTI repository's form).
"""

from __future__ import annotations

import copy

import torch

from ganprior.losses import AUTO
from ganprior.methods.base import (
    CLASS_SEARCH_DEFAULTS,
    Method,
    ReconstructionLoss,
    Result,
    RunRecorder,
    constant_lr,
    frozen,
    optimize,
    register_method,
)
from ganprior.methods.projection import mean_w, optimize_ws
from ganprior.models.prior import GenerativePrior


class LocalityRegularizer:
    """``perceptual_weight·P(x_r, x_r*) + l2_weight·MSE(x_r, x_r*)`` at a latent α away from the pivot."""

    def __init__(self, original: GenerativePrior, pivot: torch.Tensor, perceptual, alpha: float = 30.0,
                 perceptual_weight: float = 10.0, l2_weight: float = 0.0, seed: int = 0) -> None:
        self.original, self.pivot, self.perceptual = original, pivot, perceptual
        self.alpha, self.perceptual_weight, self.l2_weight = alpha, perceptual_weight, l2_weight
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, tuned: GenerativePrior) -> torch.Tensor:
        g, prior = self.generator, self.original
        z = torch.randn(1, prior.z_dim, generator=g).to(prior.device)
        cls = int(torch.randint(prior.c_dim, (1,), generator=g)) if prior.c_dim else None
        c = prior.class_matrix(cls, 1)
        with torch.no_grad():
            w = prior.mapping(z, c, truncation_psi=0.5)
            direction = w - self.pivot
            w_r = self.pivot + self.alpha * direction / torch.linalg.vector_norm(direction).clamp_min(1e-8)
            old = prior.synthesis(w_r, c)
        new = tuned.synthesis(w_r, c)
        reg = new.new_zeros(())
        if self.perceptual_weight:
            reg = reg + self.perceptual_weight * self.perceptual(new, old).sum()
        if self.l2_weight:
            reg = reg + self.l2_weight * (new - old).square().mean()
        return reg


def generator_delta(original: GenerativePrior, tuned: GenerativePrior) -> dict[str, torch.Tensor]:
    """``tuned − original`` for every state-dict tensor that changed (floating point only)."""
    before = original.state_dict()
    delta = {}
    for name, after in tuned.state_dict().items():
        ref = before[name]
        if after.is_floating_point() and not torch.equal(after, ref):
            delta[name] = (after - ref).detach().cpu().contiguous()
    return delta


def pivotal_tuning(
    prior: GenerativePrior,
    pivot: torch.Tensor,
    c: torch.Tensor,
    loss: ReconstructionLoss,
    recorder: RunRecorder,
    steps: int,
    lr: float = 3e-4,
    reg_weight: float = 1.0,
    reg_alpha: float = 30.0,
    reg_perceptual_weight: float = 10.0,
    reg_l2_weight: float = 0.0,
    seed: int = 0,
    stage: str = "pivotal-tuning",
) -> GenerativePrior:
    """Tune a copy of ``prior`` at the frozen ``pivot``; the original is left untouched (and returned
    as is when there is nothing to tune)."""
    if steps <= 0 or recorder.stopped:
        return prior
    tuned = copy.deepcopy(prior).requires_grad_(False)
    params = tuned.synthesis_parameters()
    for p in params:
        p.requires_grad_(True)
    regularizer = LocalityRegularizer(prior, pivot, loss.perceptual, reg_alpha, reg_perceptual_weight,
                                      reg_l2_weight, seed) if reg_weight else None

    def step(i: int):
        img = tuned.synthesis(pivot, c)
        terms = loss.terms(img)
        total = loss.total(terms).sum()
        logged = {k: float(v.detach().sum()) for k, v in terms.items()}
        if regularizer is not None:
            reg = regularizer(tuned)
            total = total + reg_weight * reg
            logged["locality"] = float(reg.detach())
        return total, logged, img

    with torch.enable_grad(), frozen(prior, loss.perceptual):  # the original and the loss net stay fixed
        optimize(stage, params, step, steps, constant_lr(lr), recorder)
    tuned.requires_grad_(False)
    return tuned


@register_method
class PTI(Method):
    """PTI baseline: W projection to a pivot (class-weighted w_avg start), then pivotal tuning."""

    name = "pti"
    defaults = {
        "projection_steps": 1000,
        "projection_lr": 0.1,
        "projection_space": "w",  # 'w' (PTI) or 'wplus'
        "tuning_steps": 350,
        "tuning_lr": 3e-4,
        "perceptual": AUTO,  # the model's own feature net, else nvidia-vgg16, else its D
        "perceptual_weight": 1.0,
        "l2_weight": 1.0,
        "reg_weight": 1.0,
        "reg_alpha": 30.0,
        "reg_perceptual_weight": 10.0,
        "reg_l2_weight": 0.0,
        "w_avg_samples": 10_000,
        **CLASS_SEARCH_DEFAULTS,
    }

    def run(self, prior, degradation, observation, *, weight=None, class_index=None, seed=0, progress=True,
            frame_every=0, callback=None) -> Result:
        o = self.options
        if o["projection_space"] not in ("w", "wplus"):
            raise ValueError(f"projection_space must be 'w' or 'wplus', got {o['projection_space']!r}")
        run = self.start(prior, degradation, observation, weight, class_index, seed, progress, frame_every,
                         callback)
        recorder, loss, c = run.recorder, run.loss, run.c
        with recorder.timed("start"):
            start = mean_w(prior, c, o["w_avg_samples"], seed)
        init = start.expand(-1, prior.num_ws, -1).clone() if o["projection_space"] == "wplus" else start
        pivot = optimize_ws(prior, c, loss, init, o["projection_steps"], o["projection_lr"], recorder, "projection")
        tuned = pivotal_tuning(prior, pivot, c, loss, recorder, o["tuning_steps"], o["tuning_lr"], o["reg_weight"],
                               o["reg_alpha"], o["reg_perceptual_weight"], o["reg_l2_weight"], seed)
        return self.finish(prior, pivot, run, generator_delta(prior, tuned), tuned)
