"""Batched restoration: several observations (same model, task, method) optimised together.

Each image keeps what makes it independent: its own class, start latent, loss, recorder (loss curve,
callback, NaN guard) and result. The latents are stacked into one tensor and the loss is the SUM of
the per-image losses, so each image's gradient is its own and Adam (elementwise) is exactly
per-image Adam; the LR schedule is per step, hence the same for every image of a batch. An image
whose loss turns non-finite, or whose callback asks to stop, is put back to its best state and kept
there while the others go on. With the same seeds the results equal one-at-a-time runs.

* W, W+: the projection runs stacked; with the SG2-ADA projector's noise handling (StyleGAN2 under
  ``official``: each image its own noise maps and w noise) one image at a time.
* CRI: the offset stage runs stacked (each image from its own centroid, with its own offset
  regulariser), then its pivotal tuning with per-image weights (``methods.batched_tuning``, vmap).
* PTI: its W projection stacked, then the same batched pivotal tuning; the PTI repository's recipe
  (noise maps, its own tuning network, early stop) one image at a time.
* PULSE: stacked spherical latents, each with its own Gaussianised-W fit, GEOCROSS term and sphere
  radii (renormalised row by row after every step); with PULSE's noise maps or its eps rule (the
  ``official`` preset) one image at a time.
* DGP: the candidate selection scores all images' candidates together (each image its own draws,
  loss and best); its progressive fine-tuning then runs one image at a time.

Batched tuning stacks 5 floats per tuned parameter and image (weights, gradients, Adam's moments, best
copy) and, under vmap, keeps every image's activations; groups are capped at ``TUNING_GROUP_BYTES`` of
that state and ``TUNING_GROUP_PIXELS``, so full-size networks (StyleGAN-XL-512: 235 M synthesis
parameters, 4.7 GB per image) fall back to one image at a time, each on its own generator copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from ganprior.methods.base import Method, Result, RunStart, StepCallback, add_term, frozen, stylegan_lr_ramp
from ganprior.methods.batched_tuning import cri_tune_batch, pti_batch
from ganprior.methods.cri import CRI
from ganprior.methods.dgp import DGP
from ganprior.methods.pti import PTI
from ganprior.methods.projection import _ProjectionBase, broadcast_ws
from ganprior.methods.pulse import PULSE, geocross, gaussianised_ws, linear_one_cycle_drop, sphere_norm
from ganprior.models.prior import GenerativePrior


#: methods with a batched version (DGP: its candidate selection)
BATCHED_METHODS = ("cri", "dgp", "pti", "pulse", "w", "wplus")
#: what of a batched method still runs one image at a time (the CLI says so under ``--batch-size``)
PER_IMAGE_STAGES = {"dgp": "progressive fine-tuning"}
#: most bytes of stacked tuning state (5 float32 per tuned parameter and image) one tuning group holds
TUNING_GROUP_BYTES = 2 * 2**30
#: most output pixels one tuning group renders: under vmap the ops cannot recompute (checkpoint) their
#: up-sampled intermediates, which are GBs per image at 256²+ (StyleGAN3 / XL)
TUNING_GROUP_PIXELS = 2 * 128**2


def tuning_groups(prior: GenerativePrior, n: int) -> list[range]:
    """Consecutive groups of the ``n`` images that fit ``TUNING_GROUP_BYTES`` of stacked state and
    ``TUNING_GROUP_PIXELS`` (groups of one run on a generator copy each, the per-image path)."""
    per_image = 5 * 4 * sum(p.numel() for p in prior.synthesis_parameters())
    size = min(n, TUNING_GROUP_BYTES // max(per_image, 1), TUNING_GROUP_PIXELS // int(prior.resolution) ** 2)
    size = max(1, size)
    return [range(first, min(first + size, n)) for first in range(0, n, size)]


@dataclass
class StackedStage:
    """One latent stage over stacked rows (one per image): what differs between W/W+, CRI's offset and PULSE."""

    name: str
    steps: int
    lr: Callable[[float], float]
    #: stacked latent ``[n, L, w_dim]`` -> ws ``[n, num_ws, w_dim]``
    to_ws: Callable[[torch.Tensor], torch.Tensor]
    #: ``(logged name, weight, value(k, latent, ws) -> scalar)``: a per-image term added to image k's loss
    penalty: tuple[str, float, Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]] | None = None
    #: in-place change of the stacked latent after every optimiser step (PULSE's renormalisation)
    after_step: Callable[[torch.Tensor], None] | None = None


def project_batch(
    method: Method,
    prior: GenerativePrior,
    degradation: nn.Module | Sequence[nn.Module],
    observations: Sequence[torch.Tensor],
    *,
    weights: Sequence[torch.Tensor | None] | None = None,
    class_indices: Sequence[int | None] | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool = False,
    frame_every: int = 0,
    callbacks: Sequence[StepCallback | None] | None = None,
    ranks: Sequence[int] | None = None,
) -> list[Result]:
    """``method`` (a ``w``/``wplus``/``cri``/``pulse``/``dgp`` instance) on every observation ``[1, C, h, w]``
    at once.

    ``degradation`` is one operator for all, or one per observation (their masks may differ).
    ``ranks`` picks each run's start (``RunStart.rank``: 0 = the method's usual start; ``ganprior.samples``
    gives the K copies of one photo ranks 0..K-1).
    """
    if not isinstance(method, (_ProjectionBase, CRI, PTI, PULSE, DGP)):
        raise ValueError(f"batched restoration supports {', '.join(BATCHED_METHODS)}; {method.name!r} runs one "
                         "image at a time")
    n = len(observations)
    degradations = [degradation] * n if isinstance(degradation, nn.Module) else list(degradation)
    weights = list(weights) if weights is not None else [None] * n
    class_indices = list(class_indices) if class_indices is not None else [None] * n
    seeds = list(seeds) if seeds is not None else [0] * n
    callbacks = list(callbacks) if callbacks is not None else [None] * n
    ranks = list(ranks) if ranks is not None else [0] * n
    if not len(degradations) == len(weights) == len(class_indices) == len(seeds) == len(callbacks) == len(ranks) == n:
        raise ValueError("observations, degradations, weights, class_indices, seeds, callbacks and ranks must have "
                         "the same length")
    per_image = list(zip(degradations, observations, weights, class_indices, seeds, callbacks))
    if isinstance(method, DGP):
        starts = [method.begin(prior, deg, obs, weight, cls, seed, progress, frame_every, callback)
                  for deg, obs, weight, cls, seed, callback in per_image]
        for start, rank in zip(starts, ranks):
            start.rank = rank
        return [method.complete(prior, start, sel) for start, sel in zip(starts, method.select(prior, starts))]
    runs = [method.start(prior, deg, obs, weight, cls, seed, progress, frame_every, callback)
            for deg, obs, weight, cls, seed, callback in per_image]
    for run, rank in zip(runs, ranks):
        run.rank = rank
    c = torch.cat([run.c for run in runs])
    if isinstance(method, PULSE):
        return _pulse_batch(method, prior, runs, c, seeds)
    if isinstance(method, PTI) and method.runs_alone(prior):
        return [method.complete(prior, run, seed) for run, seed in zip(runs, seeds)]
    if isinstance(method, PTI):  # a group of one: projection and tuning alone, on a generator copy
        return [result for group in tuning_groups(prior, n) for result in
                ([method.complete(prior, runs[group.start], seeds[group.start])] if len(group) == 1 else
                 pti_batch(method, prior, runs[group.start:group.stop], seeds[group.start:group.stop]))]
    o = method.options
    if isinstance(method, CRI):
        base = torch.cat([method.centroid_start(prior, run, seed) for run, seed in zip(runs, seeds)])
        weight = o["offset_weight"]
        stage = StackedStage("offset", o["offset_steps"], stylegan_lr_ramp(o["offset_lr"]),
                             lambda latent: base + broadcast_ws(latent, prior.num_ws),
                             ("offset_norm", weight, lambda k, latent, ws: torch.linalg.vector_norm(latent[k]))
                             if weight else None)
        pivots = _optimize_stacked(prior, runs, c, torch.zeros_like(base), stage)
        return [result for group in tuning_groups(prior, n) for result in _cri_tune_group(method, prior, base, pivots,
                                                                                           runs, seeds, group)]
    if method.runs_alone(prior):
        return [method.complete(prior, run, cls, seed) for run, cls, seed in zip(runs, class_indices, seeds)]
    init = torch.cat([method.start_latent(prior, run, cls, seed) for run, cls, seed in zip(runs, class_indices, seeds)])
    stage = StackedStage(method.name, o["steps"], stylegan_lr_ramp(o["lr"]),
                         lambda latent: broadcast_ws(latent, prior.num_ws))
    ws = _optimize_stacked(prior, runs, c, init, stage)
    return [method.finish(prior, ws[k:k + 1], run) for k, run in enumerate(runs)]


def _cri_tune_group(method: CRI, prior: GenerativePrior, base: torch.Tensor, pivots: torch.Tensor,
                    runs: list[RunStart], seeds: list[int], group: range) -> list[Result]:
    """CRI's pivotal tuning of one group: batched weights, or alone on a generator copy (group of one)."""
    rows = slice(group.start, group.stop)
    if len(group) == 1:
        return [method.tune(prior, base[rows], pivots[rows], runs[group.start], seeds[group.start])]
    return cri_tune_batch(method, prior, base[rows], pivots[rows], runs[rows], seeds[rows])


def _pulse_batch(method: PULSE, prior: GenerativePrior, runs: list[RunStart], c: torch.Tensor,
                 seeds: list[int]) -> list[Result]:
    """PULSE on stacked spherical latents: per-image Gaussianised-W fit, GEOCROSS and sphere radii."""
    if method.runs_alone(prior):
        return [method.complete(prior, run, seed) for run, seed in zip(runs, seeds)]
    o = method.options
    starts = [method.sphere_start(prior, run, seed) for run, seed in zip(runs, seeds)]
    init = torch.cat([s.latent for s in starts])
    mean, std, radius = torch.cat([s.mean for s in starts]), torch.cat([s.std for s in starts]), sphere_norm(init)

    @torch.no_grad()
    def back_to_sphere(latent: torch.Tensor) -> None:
        latent.div_(sphere_norm(latent)).mul_(radius)  # SphericalOptimizer.py:24-25

    stage = StackedStage("pulse", o["steps"], linear_one_cycle_drop(o["lr"]),
                         lambda latent: gaussianised_ws(latent, mean, std),
                         ("geocross", o["geocross_weight"], lambda k, latent, ws: geocross(ws[k:k + 1]).sum()),
                         back_to_sphere)
    ws = _optimize_stacked(prior, runs, c, init, stage)
    return [method.finish(prior, ws[k:k + 1], run) for k, run in enumerate(runs)]


def _optimize_stacked(prior: GenerativePrior, runs: list[RunStart], c: torch.Tensor, init: torch.Tensor,
                      stage: StackedStage) -> torch.Tensor:
    """:func:`~ganprior.methods.base.optimize` for stacked independent latents (row k = ``runs[k]``) started
    at ``init``; returns the final ``stage.to_ws`` of them ``[n, num_ws, w_dim]``."""
    n, steps = len(runs), stage.steps
    if steps <= 0:
        return stage.to_ws(init.detach())
    latent = init.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=stage.lr(0.0), betas=(0.9, 0.999))
    best_loss, best = [math.inf] * n, latent.detach().clone()
    active = [run.recorder.stopped is None for run in runs]
    for run in runs:
        run.recorder.timings.setdefault(stage.name, 0.0)
    with torch.enable_grad(), frozen(prior, *[run.loss.perceptual for run in runs]):
        for i in range(steps):
            if not any(active):
                break
            for group in optimizer.param_groups:
                group["lr"] = stage.lr(i / steps)
            with runs[0].recorder.timed("_batch"):
                ws = stage.to_ws(latent)
                img = prior.synthesis(ws, c)
                total = img.new_zeros(())
                for k, run in enumerate(runs):
                    if not active[k]:
                        continue
                    terms = run.loss.terms(img[k:k + 1])
                    loss_k = run.loss.total(terms).sum()
                    logged = run.loss.logged(terms)
                    if stage.penalty is not None:
                        name, weight, term_of = stage.penalty
                        term = term_of(k, latent, ws)
                        loss_k = loss_k + weight * term
                        add_term(logged, name, weight, term)
                    value = float(loss_k.detach())
                    if not math.isfinite(value):
                        active[k] = False
                        run.recorder.stopped = (f"non-finite loss ({value}) at {stage.name} step {i}: stopped and "
                                                f"kept the best state so far (loss {best_loss[k]:.6g})")
                        continue
                    if value < best_loss[k]:
                        best_loss[k] = value
                        best[k] = latent.detach()[k]
                    if not run.recorder.record(stage.name, i, value, logged, img[k:k + 1]):
                        active[k] = False
                        continue
                    total = total + loss_k
                optimizer.zero_grad(set_to_none=True)
                if total.requires_grad:
                    total.backward()
                    optimizer.step()
                    if stage.after_step is not None:
                        stage.after_step(latent)
                with torch.no_grad():  # stopped images stay at their best state (Adam's momentum would move them)
                    for k in range(n):
                        if not active[k]:
                            latent[k] = best[k]
    shared = runs[0].recorder.timings.pop("_batch", 0.0)
    for run in runs:  # every image is charged its share of the batch's wall time
        run.recorder.timings[stage.name] += shared / n
    return stage.to_ws(latent.detach())
