"""Batched W / W+ projection: several observations (same model, task, method) optimised together.

Each image keeps what makes it independent: its own class, start latent, loss, recorder (loss curve,
callback, NaN guard) and result. The latents are stacked into one tensor and the loss is the SUM of
the per-image losses, so each image's gradient is its own and Adam (elementwise) is exactly
per-image Adam; the LR schedule is per step, hence the same for every image of a batch. An image
whose loss turns non-finite, or whose callback asks to stop, is put back to its best state and kept
there while the others go on. With the same seeds the results equal one-at-a-time runs.

Only the latent-only projections (``w``, ``wplus``) are batched so far; the other methods (CRI's
offset stage, PULSE, DGP's selection, and the generator-tuning stages) still run per image.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ganprior.methods.base import Result, RunStart, frozen, stylegan_lr_ramp
from ganprior.methods.centroids import score_latents
from ganprior.methods.projection import _ProjectionBase, broadcast_ws, mean_w, start_classes
from ganprior.models.prior import GenerativePrior


def project_batch(
    method,
    prior: GenerativePrior,
    degradation: nn.Module,
    observations: Sequence[torch.Tensor],
    *,
    weights: Sequence[torch.Tensor | None] | None = None,
    class_indices: Sequence[int | None] | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool = False,
) -> list[Result]:
    """``method`` (a ``w``/``wplus`` instance) on every observation ``[1, C, h, w]`` at once."""
    if not isinstance(method, _ProjectionBase):
        raise ValueError(f"batched restoration supports w and wplus; {method.name!r} runs one image at a time")
    n = len(observations)
    weights = list(weights) if weights is not None else [None] * n
    class_indices = list(class_indices) if class_indices is not None else [None] * n
    seeds = list(seeds) if seeds is not None else [0] * n
    if not len(weights) == len(class_indices) == len(seeds) == n:
        raise ValueError("observations, weights, class_indices and seeds must have the same length")
    o = method.options
    runs: list[RunStart] = []
    inits = []
    for obs, weight, cls, seed in zip(observations, weights, class_indices, seeds):
        run = method.start(prior, degradation, obs, weight, cls, seed, progress, 0)
        with run.recorder.timed("start"):
            start = mean_w(prior, start_classes(prior, cls, run.c, o["w_avg_samples"], seed), o["w_avg_samples"], seed)
            run.extras["start_loss"] = float(score_latents(prior, start[:, 0], run.c, run.loss)[0])
        runs.append(run)
        inits.append(broadcast_ws(start, prior.num_ws).clone() if method.per_layer else start)
    c = torch.cat([run.c for run in runs])
    latent = torch.cat(inits).detach().clone().requires_grad_(True)
    _optimize_stacked(prior, runs, c, latent, o["steps"], stylegan_lr_ramp(o["lr"]), method.name)
    ws = broadcast_ws(latent.detach(), prior.num_ws)
    return [method.finish(prior, ws[i:i + 1], run) for i, run in enumerate(runs)]


def _optimize_stacked(prior: GenerativePrior, runs: list[RunStart], c: torch.Tensor, latent: torch.Tensor,
                      steps: int, lr, stage: str) -> None:
    """:func:`~ganprior.methods.base.optimize` for stacked independent latents (one row per run)."""
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
                img = prior.synthesis(broadcast_ws(latent, prior.num_ws), c)
                total = img.new_zeros(())
                for k, run in enumerate(runs):
                    if not active[k]:
                        continue
                    terms = run.loss.terms(img[k:k + 1])
                    loss_k = run.loss.total(terms).sum()
                    value = float(loss_k.detach())
                    if not math.isfinite(value):
                        active[k] = False
                        run.recorder.stopped = (f"non-finite loss ({value}) at {stage} step {i}: stopped and kept "
                                                f"the best state so far (loss {best_loss[k]:.6g})")
                        continue
                    if value < best_loss[k]:
                        best_loss[k] = value
                        best[k] = latent.detach()[k]
                    run.recorder.losses.append({"stage": stage, "step": i, "loss": value,
                                                **{name: float(v.detach().sum()) for name, v in terms.items()}})
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
