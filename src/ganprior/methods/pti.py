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
    RunStart,
    constant_lr,
    frozen,
    optimize,
    register_method,
)
from ganprior.methods.projection import mean_w, optimize_ws
from ganprior.models.prior import GenerativePrior


#: most output pixels the pivot and the locality latent render in one forward pass; above it (256² and
#: up) each gets its own forward and backward, which halves the activation peak for the same (summed)
#: gradient: StyleGAN-XL-512's pair went over 19 GB, where one rendering peaks at 9.5 GB
JOINT_RENDER_PIXELS = 2 * 128**2


class LocalityRegularizer:
    """Where the locality term ``perceptual_weight·P(x_r, x_r*) + l2_weight·MSE(x_r, x_r*)`` is taken: a latent
    α away from the pivot, one per step.

    Split in two so that the tuned generator renders ``w_r`` in the same call as the pivot (one batch of
    two, which the batched tuning in ``batched_tuning.py`` runs per image as well): :meth:`anchor`
    draws ``w_r`` and :func:`locality_distance` compares the two renderings of it.
    """

    def __init__(self, original: GenerativePrior, pivot: torch.Tensor, alpha: float = 30.0, seed: int = 0) -> None:
        self.original, self.pivot, self.alpha = original, pivot, alpha
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def anchor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's ``w_r`` ``[1, num_ws, w_dim]`` and its class row ``[1, c_dim]``."""
        g, prior = self.generator, self.original
        z = torch.randn(1, prior.z_dim, generator=g).to(prior.device)
        cls = int(torch.randint(prior.c_dim, (1,), generator=g)) if prior.c_dim else None
        c = prior.class_matrix(cls, 1)
        w = prior.mapping(z, c, truncation_psi=0.5)
        direction = w - self.pivot
        return self.pivot + self.alpha * direction / torch.linalg.vector_norm(direction).clamp_min(1e-8), c


def locality_distance(perceptual, new: torch.Tensor, old: torch.Tensor, perceptual_weight: float,
                      l2_weight: float) -> torch.Tensor:
    """Per-sample ``[N]`` regulariser between the tuned (``new``) and original (``old``) renderings."""
    reg = new.new_zeros(new.shape[0])
    if perceptual_weight:
        reg = reg + perceptual_weight * perceptual(new, old)
    if l2_weight:
        reg = reg + l2_weight * (new - old).square().flatten(1).mean(1)
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
    regularizer = LocalityRegularizer(prior, pivot, reg_alpha, seed) if reg_weight else None
    one_pass = 2 * int(prior.resolution) ** 2 <= JOINT_RENDER_PIXELS

    def step(i: int):
        reg = None
        if regularizer is None:
            img = tuned.synthesis(pivot, c)
        else:
            w_r, c_r = regularizer.anchor()
            with torch.no_grad():
                old = prior.synthesis(w_r, c_r)
            if one_pass:
                img, new = tuned.synthesis(torch.cat([pivot, w_r]), torch.cat([c, c_r])).split(1)
                reg = locality_distance(loss.perceptual, new, old, reg_perceptual_weight, reg_l2_weight).sum()
            else:  # the locality term's backward first (optimize zeroed the grads), its graph freed
                new = tuned.synthesis(w_r, c_r)
                reg = locality_distance(loss.perceptual, new, old, reg_perceptual_weight, reg_l2_weight).sum()
                (reg_weight * reg).backward()
                reg = reg.detach()
                img = tuned.synthesis(pivot, c)
        terms = loss.terms(img)
        total = loss.total(terms).sum()
        logged = {k: float(v.detach().sum()) for k, v in terms.items()}
        if reg is not None:
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
        run = self.start(prior, degradation, observation, weight, class_index, seed, progress, frame_every,
                         callback)
        return self.complete(prior, run, seed)

    def complete(self, prior: GenerativePrior, run: RunStart, seed: int) -> Result:
        """Projection to the pivot, pivotal tuning on a generator copy, and the result of a started run."""
        o = self.options
        recorder, loss, c = run.recorder, run.loss, run.c
        init = self.pivot_start(prior, run, seed)
        pivot = optimize_ws(prior, c, loss, init, o["projection_steps"], o["projection_lr"], recorder, "projection")
        tuned = pivotal_tuning(prior, pivot, c, loss, recorder, **tuning_options(o), seed=seed)
        return self.finish(prior, pivot, run, generator_delta(prior, tuned), tuned)

    def pivot_start(self, prior: GenerativePrior, run: RunStart, seed: int) -> torch.Tensor:
        """The projection's start, the class-weighted ``w_avg``: ``[1, 1, w_dim]`` (W) or ``[1, num_ws, w_dim]`` (W+)."""
        o = self.options
        if o["projection_space"] not in ("w", "wplus"):
            raise ValueError(f"projection_space must be 'w' or 'wplus', got {o['projection_space']!r}")
        with run.recorder.timed("start"):
            start = mean_w(prior, run.c, o["w_avg_samples"], seed)
        return start.expand(-1, prior.num_ws, -1).clone() if o["projection_space"] == "wplus" else start


def tuning_options(options: dict) -> dict:
    """:func:`pivotal_tuning`'s keyword arguments from a method's options (PTI's and CRI's names)."""
    return dict(steps=options["tuning_steps"], lr=options["tuning_lr"], reg_weight=options["reg_weight"],
                reg_alpha=options["reg_alpha"], reg_perceptual_weight=options["reg_perceptual_weight"],
                reg_l2_weight=options["reg_l2_weight"])
