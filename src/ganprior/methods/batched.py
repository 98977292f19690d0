"""Batched W / W+ projection and CRI's offset stage: several observations (same model, task, method)
optimised together.

Each image keeps what makes it independent: its own class, start latent, loss, recorder (loss curve,
callback, NaN guard) and result. The latents are stacked into one tensor and the loss is the SUM of
the per-image losses, so each image's gradient is its own and Adam (elementwise) is exactly
per-image Adam; the LR schedule is per step, hence the same for every image of a batch. An image
whose loss turns non-finite, or whose callback asks to stop, is put back to its best state and kept
there while the others go on. With the same seeds the results equal one-at-a-time runs.

CRI's offset stage is batched (each image starts from its own centroid, with its own offset
regulariser); its pivotal tuning then runs one image at a time, each on its own generator copy (the
documented fallback). PTI, PULSE and DGP are not batched: callers run them one image at a time.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ganprior.methods.base import Method, Result, RunStart, StepCallback, frozen, stylegan_lr_ramp
from ganprior.methods.cri import CRI
from ganprior.methods.projection import _ProjectionBase, broadcast_ws
from ganprior.models.prior import GenerativePrior


#: methods whose latent stage runs batched (CRI: the offset stage; its pivotal tuning stays per image)
BATCHED_METHODS = ("cri", "w", "wplus")


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
) -> list[Result]:
    """``method`` (a ``w``/``wplus``/``cri`` instance) on every observation ``[1, C, h, w]`` at once.

    ``degradation`` is one operator for all, or one per observation (their masks may differ).
    """
    if not isinstance(method, (_ProjectionBase, CRI)):
        raise ValueError(f"batched restoration supports {', '.join(BATCHED_METHODS)}; {method.name!r} runs one "
                         "image at a time")
    n = len(observations)
    degradations = [degradation] * n if isinstance(degradation, nn.Module) else list(degradation)
    weights = list(weights) if weights is not None else [None] * n
    class_indices = list(class_indices) if class_indices is not None else [None] * n
    seeds = list(seeds) if seeds is not None else [0] * n
    callbacks = list(callbacks) if callbacks is not None else [None] * n
    if not len(degradations) == len(weights) == len(class_indices) == len(seeds) == len(callbacks) == n:
        raise ValueError("observations, degradations, weights, class_indices, seeds and callbacks must have the "
                         "same length")
    o, is_cri = method.options, isinstance(method, CRI)
    runs: list[RunStart] = []
    inits, bases = [], []
    for obs, deg, weight, cls, seed, callback in zip(observations, degradations, weights, class_indices, seeds,
                                                     callbacks):
        run = method.start(prior, deg, obs, weight, cls, seed, progress, frame_every, callback)
        if is_cri:
            bases.append(method.centroid_start(prior, run, seed))
            inits.append(torch.zeros_like(bases[-1]))
        else:
            inits.append(method.start_latent(prior, run, cls, seed))
        runs.append(run)
    c = torch.cat([run.c for run in runs])
    latent = torch.cat(inits).detach().clone().requires_grad_(True)
    base = torch.cat(bases) if is_cri else None
    steps, lr, stage = (o["offset_steps"], o["offset_lr"], "offset") if is_cri else (o["steps"], o["lr"], method.name)
    _optimize_stacked(prior, runs, c, latent, steps, stylegan_lr_ramp(lr), stage, base,
                      o["offset_weight"] if is_cri else 0.0)
    ws = broadcast_ws(latent.detach(), prior.num_ws)
    ws = ws if base is None else base + ws
    if is_cri:
        return [method.tune(prior, bases[i], ws[i:i + 1], run, seeds[i]) for i, run in enumerate(runs)]
    return [method.finish(prior, ws[i:i + 1], run) for i, run in enumerate(runs)]


def _optimize_stacked(prior: GenerativePrior, runs: list[RunStart], c: torch.Tensor, latent: torch.Tensor,
                      steps: int, lr, stage: str, base: torch.Tensor | None = None,
                      offset_weight: float = 0.0) -> None:
    """:func:`~ganprior.methods.base.optimize` for stacked independent latents (one row per run);
    ``ws = base + latent`` and ``offset_weight·‖latent_k‖₂`` as in
    :func:`~ganprior.methods.projection.optimize_ws`."""
    if steps <= 0:
        return
    n = len(runs)
    optimizer = torch.optim.Adam([latent], lr=lr(0.0), betas=(0.9, 0.999))
    best_loss, best = [math.inf] * n, latent.detach().clone()
    active = [run.recorder.stopped is None for run in runs]
    for run in runs:
        run.recorder.timings.setdefault(stage, 0.0)
    with torch.enable_grad(), frozen(prior, *[run.loss.perceptual for run in runs]):
        for i in range(steps):
            if not any(active):
                break
            for group in optimizer.param_groups:
                group["lr"] = lr(i / steps)
            with runs[0].recorder.timed("_batch"):
                ws = broadcast_ws(latent, prior.num_ws)
                img = prior.synthesis(ws if base is None else base + ws, c)
                total = img.new_zeros(())
                for k, run in enumerate(runs):
                    if not active[k]:
                        continue
                    terms = run.loss.terms(img[k:k + 1])
                    loss_k = run.loss.total(terms).sum()
                    logged = {name: float(v.detach().sum()) for name, v in terms.items()}
                    if offset_weight:
                        reg = torch.linalg.vector_norm(latent[k])
                        loss_k = loss_k + offset_weight * reg
                        logged["offset_norm"] = float(reg.detach())
                    value = float(loss_k.detach())
                    if not math.isfinite(value):
                        active[k] = False
                        run.recorder.stopped = (f"non-finite loss ({value}) at {stage} step {i}: stopped and kept "
                                                f"the best state so far (loss {best_loss[k]:.6g})")
                        continue
                    if value < best_loss[k]:
                        best_loss[k] = value
                        best[k] = latent.detach()[k]
                    run.recorder.losses.append({"stage": stage, "step": i, "loss": value, **logged})
                    if run.recorder.frame_every and i % run.recorder.frame_every == 0:
                        run.recorder.frames.append(img.detach()[k:k + 1].cpu())
                    if not run.recorder.report(stage, i, value, img[k:k + 1]):
                        active[k] = False
                        continue
                    total = total + loss_k
                optimizer.zero_grad(set_to_none=True)
                if total.requires_grad:
                    total.backward()
                    optimizer.step()
                with torch.no_grad():  # stopped images stay at their best state (Adam's momentum would move them)
                    for k in range(n):
                        if not active[k]:
                            latent[k] = best[k]
    shared = runs[0].recorder.timings.pop("_batch", 0.0)
    for run in runs:  # every image is charged its share of the batch's wall time
        run.recorder.timings[stage] += shared / n
