"""Pivotal tuning for several images at once, each image with its own generator weights.

The tuned synthesis parameters are stacked, one row per image, and the synthesis runs under
``torch.func.vmap`` over ``torch.func.functional_call``: image k renders its pivot and its locality
latent ``w_r`` (one batch of two, as :func:`~ganprior.methods.pti.pivotal_tuning` does) with row k of
every weight. vmap turns each convolution into one grouped convolution over the images. The loss is
the SUM of the per-image losses, so row k's gradient is image k's own and Adam (elementwise) over the
stacked rows is exactly per-image Adam. Each image keeps its own loss, locality draws (its seed),
best state, NaN guard, step callback and result; a stopped image is put back to its best weights and
kept there while the others go on.

With the same seeds the results equal one-at-a-time :func:`~ganprior.methods.pti.pivotal_tuning` runs:
bit-identical at batch 1, to float rounding otherwise (which Adam's first steps, about ±lr whatever
the gradient's size, amplify on a few near-zero-gradient weights). Measured on one CPU thread
(``bench/batched_tuning_speed.py``): 1.4x images/s at batch 4 on the embedded model (1.3x at 8, none at
16, where the stacked weights and Adam state no longer fit the caches), 1.4-2.3x at batch 4-16 on the
StyleGAN2 fixture; at batch 1 vmap costs 5-15 %. Runs on StyleGAN2, StyleGAN3 and StyleGAN-XL
synthesis networks (noise mode ``const``; vmap refuses random ops).

Entries: :func:`pivotal_tuning_batch` (the stage), :func:`cri_tune_batch` (CRI's stage 2 after the
batched offset stage) and :func:`pti_batch` (PTI: batched W projection, then this stage).
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from ganprior.methods.base import (Method, ReconstructionLoss, Result, RunRecorder, RunStart, add_term, frozen,
                                   stylegan_lr_ramp)
from ganprior.methods.cri import CRI
from ganprior.methods.projection import broadcast_ws
from ganprior.methods.pti import PTI, generator_delta, locality_distance, make_regularizer, tuning_options
from ganprior.models.prior import GenerativePrior

#: image k's tuned synthesis weights (state-dict names), or ``None`` when it had nothing to tune
TunedWeights = dict[str, torch.Tensor] | None


class _Synthesis(nn.Module):
    """``prior.synthesis`` as a module's forward, so that ``functional_call`` can swap its weights."""

    def __init__(self, prior: GenerativePrior) -> None:
        super().__init__()
        self.prior = prior

    def forward(self, ws: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.prior.synthesis(ws, c)


def tuned_parameter_names(prior: GenerativePrior) -> list[str]:
    """State-dict names of what pivotal tuning updates (``prior.synthesis_parameters()``)."""
    tuned = {id(p) for p in prior.synthesis_parameters()}
    return [name for name, p in prior.named_parameters() if id(p) in tuned]


def render_with_weights(prior: GenerativePrior, weights: dict[str, torch.Tensor], ws: torch.Tensor,
                        c: torch.Tensor) -> torch.Tensor:
    """``prior.synthesis`` of ``ws[k]`` ``[m, num_ws, w_dim]`` (class rows ``c[k]`` ``[m, c_dim]``) with image k's
    weights, row k of every ``weights`` tensor (state-dict names; the others are ``prior``'s own):
    ``[n, m, C, R, R]``."""
    synthesis = _Synthesis(prior)
    return vmap(lambda p, w, cc: functional_call(synthesis, {f"prior.{k}": v for k, v in p.items()}, (w, cc)))(
        weights, ws, c)


def _same_distance(losses: Sequence[ReconstructionLoss]) -> bool:
    """Whether every image's perceptual distance is the same function (same class, options and tensors),
    so that the locality terms of all images can be taken in one call."""

    def signature(p: nn.Module):
        tensors = tuple(id(t) for t in (*p.parameters(), *p.buffers()))
        options = tuple(sorted((k, v) for k, v in vars(p).items()
                               if not k.startswith("_") and isinstance(v, (bool, int, float, str, type(None)))))
        return type(p), tensors, options

    first = signature(losses[0].perceptual)
    return all(signature(loss.perceptual) == first for loss in losses[1:])


def pivotal_tuning_batch(
    prior: GenerativePrior,
    pivots: torch.Tensor,
    cs: torch.Tensor,
    losses: Sequence[ReconstructionLoss],
    recorders: Sequence[RunRecorder],
    seeds: Sequence[int],
    steps: int,
    lr: float = 3e-4,
    reg_weight: float = 1.0,
    reg_alpha: float = 30.0,
    reg_perceptual_weight: float = 10.0,
    reg_l2_weight: float = 0.0,
    stage: str = "pivotal-tuning",
    reg_vgg_input: str = "images",
    reg_class: str = "random",
) -> list[TunedWeights]:
    """:func:`~ganprior.methods.pti.pivotal_tuning` for image k = (row k of ``pivots`` ``[n, num_ws, w_dim]``
    and of ``cs`` ``[n, c_dim]``, ``losses[k]``, ``recorders[k]``, ``seeds[k]``), all at once; ``prior`` is
    left untouched.

    Returns image k's tuned weights (``None`` when it had nothing to tune: no steps, or its recorder had
    already stopped); :func:`tuned_results` turns them into results.
    """
    n = len(pivots)
    if not len(cs) == len(losses) == len(recorders) == len(seeds) == n:
        raise ValueError("pivots, cs, losses, recorders and seeds must have the same length")
    started = [steps > 0 and recorder.stopped is None for recorder in recorders]
    if not any(started):
        return [None] * n
    active = list(started)
    names = tuned_parameter_names(prior)
    own = dict(prior.named_parameters())
    params = {name: own[name].detach().unsqueeze(0).repeat(n, *[1] * own[name].ndim).requires_grad_(True)
              for name in names}
    best = {name: p.detach().clone() for name, p in params.items()}
    best_loss = [math.inf] * n
    optimizer = torch.optim.Adam(list(params.values()), lr=lr, betas=(0.9, 0.999))  # constant, as in PTI
    regularizers = [make_regularizer(prior, pivots[k:k + 1], cs[k:k + 1], reg_weight, reg_alpha, seed, reg_class)
                    for k, seed in enumerate(seeds)] if reg_weight else None
    one_distance = _same_distance(losses)

    def render() -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every image's rendering of its pivot ``[n, C, R, R]`` and its locality term ``[n]`` (or ``None``)."""
        if regularizers is None:
            return render_with_weights(prior, params, pivots[:, None], cs[:, None])[:, 0], None
        anchors = [r.anchor() for r in regularizers]
        w_r, c_r = torch.cat([w for w, _ in anchors]), torch.cat([c for _, c in anchors])
        with torch.no_grad():
            old = prior.synthesis(w_r, c_r)
        both = render_with_weights(prior, params, torch.stack([pivots, w_r], 1), torch.stack([cs, c_r], 1))
        new = both[:, 1]
        if one_distance:
            return both[:, 0], locality_distance(losses[0].perceptual, new, old, reg_perceptual_weight, reg_l2_weight,
                                                 reg_vgg_input)
        return both[:, 0], torch.cat([locality_distance(loss.perceptual, new[k:k + 1], old[k:k + 1],
                                                        reg_perceptual_weight, reg_l2_weight, reg_vgg_input)
                                      for k, loss in enumerate(losses)])

    def restore_best(k: int) -> None:
        with torch.no_grad():
            for name, p in params.items():
                p[k] = best[name][k]

    for recorder in recorders:
        recorder.timings.setdefault(stage, 0.0)
    with torch.enable_grad(), frozen(prior, *[loss.perceptual for loss in losses]), recorders[0].timed("_batch"):
        for i in range(steps):
            if not any(active):
                break
            images, reg = render()
            total = images.new_zeros(())
            for k in range(n):
                if not active[k]:
                    continue
                recorder, img = recorders[k], images[k:k + 1]
                terms = losses[k].terms(img)
                loss_k = losses[k].total(terms).sum()
                logged = losses[k].logged(terms)
                if reg is not None:
                    loss_k = loss_k + reg_weight * reg[k]
                    add_term(logged, "locality", reg_weight, reg[k])
                value = float(loss_k.detach())
                if not math.isfinite(value):
                    active[k] = False
                    recorder.stopped = (f"non-finite loss ({value}) at {stage} step {i}: stopped and kept the best "
                                        f"state so far (loss {best_loss[k]:.6g})")
                    continue
                if value < best_loss[k]:
                    best_loss[k] = value
                    with torch.no_grad():
                        for name, p in params.items():
                            best[name][k] = p[k]
                if not recorder.record(stage, i, value, logged, img):
                    active[k] = False
                    continue
                total = total + loss_k
            optimizer.zero_grad(set_to_none=True)
            if total.requires_grad:
                total.backward()
                optimizer.step()
            for k in range(n):  # stopped images stay at their best state (Adam's momentum would move them)
                if started[k] and not active[k]:
                    restore_best(k)
    shared = recorders[0].timings.pop("_batch", 0.0)
    for recorder in recorders:  # every image is charged its share of the batch's wall time
        recorder.timings[stage] += shared / n
    return [{name: p.detach()[k] for name, p in params.items()} if started[k] else None for k in range(n)]


def tuned_results(method: Method, prior: GenerativePrior, pivots: torch.Tensor, runs: Sequence[RunStart],
                  tuned: Sequence[TunedWeights]) -> list[Result]:
    """``method.finish`` for every image with its tuned weights: the same ``generator_delta`` and image as a
    one-at-a-time run (one scratch copy of the generator serves every image in turn)."""
    scratch = copy.deepcopy(prior) if any(t is not None for t in tuned) else None
    results = []
    for pivot, run, weights in zip(pivots.split(1), runs, tuned):
        if weights is None:
            results.append(method.finish(prior, pivot, run, {}, prior))
            continue
        with torch.no_grad():
            for name, p in scratch.named_parameters():
                if name in weights:
                    p.copy_(weights[name])
        results.append(method.finish(prior, pivot, run, generator_delta(prior, scratch), scratch))
    return results


def cri_tune_batch(method: CRI, prior: GenerativePrior, bases: torch.Tensor, pivots: torch.Tensor,
                   runs: Sequence[RunStart], seeds: Sequence[int]) -> list[Result]:
    """:meth:`CRI.tune <ganprior.methods.cri.CRI.tune>` for every image at once (``bases``, ``pivots``:
    ``[n, num_ws, w_dim]``, row k for ``runs[k]``), after the batched offset stage."""
    o = method.options
    for k, run in enumerate(runs):
        run.extras["offset_norm"] = float(torch.linalg.vector_norm(pivots[k:k + 1] - bases[k:k + 1]))
    losses = [run.loss.with_weights(o["perceptual_weight"], o["tuning_l2_weight"]) for run in runs]
    tuned = pivotal_tuning_batch(prior, pivots, torch.cat([run.c for run in runs]), losses,
                                 [run.recorder for run in runs], seeds, **tuning_options(o))
    return tuned_results(method, prior, pivots, runs, tuned)


def pti_batch(method: PTI, prior: GenerativePrior, runs: Sequence[RunStart], seeds: Sequence[int]) -> list[Result]:
    """PTI for every started run (``method.start``) at once: the W (or W+) projection stacked, then
    :func:`pivotal_tuning_batch`."""
    from ganprior.methods.batched import StackedStage, _optimize_stacked  # batched.py imports this module

    o, runs = method.options, list(runs)
    init = torch.cat([method.pivot_start(prior, run, seed) for run, seed in zip(runs, seeds)])
    c = torch.cat([run.c for run in runs])
    stage = StackedStage("projection", o["projection_steps"], stylegan_lr_ramp(o["projection_lr"]),
                         lambda latent: broadcast_ws(latent, prior.num_ws))
    pivots = _optimize_stacked(prior, runs, c, init, stage)
    losses = [method.tuning_distance(prior, run.loss, run).with_weights(o["perceptual_weight"], o["tuning_l2_weight"])
              for run in runs]
    tuned = pivotal_tuning_batch(prior, pivots, c, losses, [run.recorder for run in runs], seeds, **tuning_options(o))
    return tuned_results(method, prior, pivots, runs, tuned)
