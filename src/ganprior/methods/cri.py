"""CRI, Clustering & Regularize Inversion (Wang et al., AAAI 2023).

1. Class: given, else the model's classifier, else the class whose centroid bank has the centroid
   nearest to the observation.
2. Start: the centroid (of the class's k-means bank, ``centroids.py``) whose *degraded* rendering is
   nearest to the observation (perceptual + λ1·MSE), scored in chunks.
3. Stage 1: a W+ offset from the frozen centroid, loss = perceptual + λ1·MSE (degraded images)
   + λ2·‖offset‖₂, Adam with the StyleGAN projector LR ramp (peak 0.1).
4. Stage 2: pivotal tuning of the generator at the frozen pivot ``centroid + offset`` with the
   locality regulariser (α = 30), Adam lr 3e-4.
Presets (``presets.py``) hold the official script's weights per task and the paper's step counts
per family.
"""

from __future__ import annotations

import torch

from ganprior.losses import AUTO
from ganprior.methods.base import CLASS_SEARCH_DEFAULTS, Method, Result, RunStart, register_method
from ganprior.methods.centroids import centroid_bank, score_latents
from ganprior.methods.projection import mean_w, optimize_ws
from ganprior.methods.pti import generator_delta, pivotal_tuning
from ganprior.models.prior import GenerativePrior


@register_method
class CRI(Method):
    name = "cri"
    defaults = {
        "offset_steps": 1000,
        "offset_lr": 0.1,
        "tuning_steps": 350,
        "tuning_lr": 3e-4,
        "perceptual": AUTO,  # the model's own feature net, else nvidia-vgg16, else its D
        "perceptual_weight": 1.0,
        "l2_weight": 100.0,  # λ1
        "offset_weight": 1.0,  # λ2
        "tuning_l2_weight": 100.0,  # λ_L2
        "reg_weight": 1.0,  # λ_R
        "reg_alpha": 30.0,
        "reg_perceptual_weight": 10.0,
        "reg_l2_weight": 0.0,  # λ^R_L2
        **CLASS_SEARCH_DEFAULTS,  # also the centroid bank's size and scoring chunk
        "cache": True,
        "compare_w_avg": True,  # also score w_avg, to report how much closer the centroid start is
    }

    def run(self, prior, degradation, observation, *, weight=None, class_index=None, seed=0, progress=True,
            frame_every=0, callback=None) -> Result:
        o = self.options
        run = self.start(prior, degradation, observation, weight, class_index, seed, progress, frame_every,
                         callback)
        base = self.centroid_start(prior, run, seed)
        pivot = optimize_ws(prior, run.c, run.loss, torch.zeros_like(base), o["offset_steps"], o["offset_lr"],
                            run.recorder, "offset", base=base, offset_weight=o["offset_weight"])
        return self.tune(prior, base, pivot, run, seed)

    def centroid_start(self, prior: GenerativePrior, run: RunStart, seed: int) -> torch.Tensor:
        """The frozen base ``[1, num_ws, w_dim]``: the class bank's centroid nearest to the observation."""
        o, extras = self.options, run.extras
        with run.recorder.timed("centroids"):
            bank = centroid_bank(prior, run.class_index, o["n_clusters"], o["n_samples"], seed, cache=o["cache"])
            scores = score_latents(prior, bank, run.c, run.loss, o["chunk"])
            best = int(scores.argmin())
            extras.update(centroid_index=best, centroid_scores=[float(s) for s in scores],
                          start_loss=float(scores[best]))
            if o["compare_w_avg"]:
                w_avg = mean_w(prior, run.c, o["n_samples"], seed)[:, 0]
                extras["w_avg_loss"] = float(score_latents(prior, w_avg, run.c, run.loss)[0])
        return bank[best][None, None, :].expand(1, prior.num_ws, -1)

    def tune(self, prior: GenerativePrior, base: torch.Tensor, pivot: torch.Tensor, run: RunStart,
             seed: int) -> Result:
        """Stage 2 (pivotal tuning at ``pivot`` on a copy of the generator) and the result."""
        o = self.options
        run.extras["offset_norm"] = float(torch.linalg.vector_norm(pivot - base))
        tuning_loss = run.loss.with_weights(o["perceptual_weight"], o["tuning_l2_weight"])
        tuned = pivotal_tuning(prior, pivot, run.c, tuning_loss, run.recorder, o["tuning_steps"], o["tuning_lr"],
                               o["reg_weight"], o["reg_alpha"], o["reg_perceptual_weight"], o["reg_l2_weight"], seed)
        return self.finish(prior, pivot, run, generator_delta(prior, tuned), tuned)
