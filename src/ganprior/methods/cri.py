"""CRI, Clustering & Regularize Inversion (Wang et al., AAAI 2023).

1. Class: given, else the model's classifier, else the class whose centroid bank has the centroid
   nearest to the observation.
2. Start: the centroid (of the class's k-means bank, ``centroids.py``) nearest to the observation by
   the perceptual distance alone (``centroid_score``): ``official`` as the scripts (inpainting: masked
   renders, inp:243-252; colorization: the *colour* renders against the grey target, col:236-243; SR:
   renders downsampled with torch bicubic, ds:267-274), ``degraded`` (the paper's text: every render
   through the task's operator), ``loss`` (the whole stage-1 loss).
3. Stage 1: a W+ offset from the frozen centroid, loss = perceptual + λ1·MSE (degraded images)
   + λ2·‖offset‖₂, Adam with the StyleGAN projector LR ramp (peak 0.1).
4. Stage 2: pivotal tuning of the generator at the frozen pivot ``centroid + offset`` with
   perceptual + λ_L2·MSE and the locality regulariser (α = 30), Adam lr 3e-4.
Presets (``presets.py``) hold the official scripts' weights per task (in their units, converted there)
and the paper's step counts per family. The MSE weights here are on [-1, 1] images.
Inpainting never reproduces the script's ground-truth leak (inp:119, inp:228 score against the clean
image): the target is the masked observation, and ``extras['deviations_from_official']`` says so.
"""

from __future__ import annotations

import torch

from ganprior.losses import AUTO
from ganprior.methods.base import (CLASS_SEARCH_DEFAULTS, LossOperator, Method, ReconstructionLoss, Result, RunStart,
                                   loss_operator, register_method)
from ganprior.methods.centroids import centroid_bank, score_latents
from ganprior.methods.presets import from_official_l2
from ganprior.methods.projection import mean_w, optimize_ws
from ganprior.methods.pti import generator_delta, pivotal_tuning, tuning_options
from ganprior.models.prior import GenerativePrior


#: centroid scoring rules (module doc)
CENTROID_SCORES = ("official", "degraded", "loss")
INPAINT_LEAK_NOTE = ("inpainting target: the masked observation. The official script scores against the clean, "
                     "unmasked image (inp:119, inp:228), so the ground truth leaks into the hole; ganprior never "
                     "reproduces that")


def _inpaints(degradation) -> bool:
    from ganprior.degradations import Inpainting

    inner = degradation.degradation if isinstance(degradation, LossOperator) else degradation
    return any(isinstance(op, Inpainting) for op in getattr(inner, "ops", [inner]))


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
        # the inpainting script's values (presets.py sets every task's)
        "l2_weight": from_official_l2(100.0),  # λ1, inp:290
        "offset_weight": 1.0,  # λ2, inp:183
        "tuning_l2_weight": from_official_l2(10.0),  # λ_L2, inp:154
        "reg_weight": 1.0,  # λ_R
        "reg_alpha": 30.0,
        "reg_perceptual_weight": 10.0,
        "reg_l2_weight": 0.0,  # λ^R_L2
        "reg_vgg_input": "raw",  # inp:68-77 ('images': the paper's Eq. 8)
        "reg_class": "own",  # inp:61
        "l2_average": "image",  # inp:290 (MSELoss mean over every pixel)
        "l2_max_size": 256,  # inp:285-290
        "sr_operator": "torch-bicubic",  # ds:311
        "gray_units": "official",  # col:452-458 (grey of [0, 255] values)
        "centroid_score": "official",
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
        """The frozen base ``[1, num_ws, w_dim]``: the class bank's centroid nearest to the observation
        (``run.rank`` k > 0: the (k+1)-th nearest, cycling through the bank)."""
        o, extras = self.options, run.extras
        with run.recorder.timed("centroids"):
            bank = centroid_bank(prior, run.class_index, o["n_clusters"], o["n_samples"], seed, cache=o["cache"])
            score = self.centroid_loss(run)
            scores = score_latents(prior, bank, run.c, score, o["chunk"])
            best = int(scores.argsort()[run.rank % len(scores)]) if run.rank else int(scores.argmin())
            extras.update(centroid_index=best, centroid_rank=run.rank, centroid_scores=[float(s) for s in scores],
                          centroid_score=o["centroid_score"], start_loss=float(scores[best]))
            if o["compare_w_avg"]:
                w_avg = mean_w(prior, run.c, o["n_samples"], seed)[:, 0]
                extras["w_avg_loss"] = float(score_latents(prior, w_avg, run.c, score)[0])
        if _inpaints(run.loss.degradation):
            extras["deviations_from_official"] = [INPAINT_LEAK_NOTE]
        return bank[best][None, None, :].expand(1, prior.num_ws, -1)

    def centroid_loss(self, run: RunStart) -> ReconstructionLoss:
        """How centroids are scored against the observation (option ``centroid_score``, module doc)."""
        o, loss = self.options, run.loss
        rule = o["centroid_score"]
        if rule not in CENTROID_SCORES:
            raise ValueError(f"centroid_score must be one of {', '.join(CENTROID_SCORES)}, got {rule!r}")
        if rule == "loss":
            return loss
        degradation = loss.degradation
        degradation = degradation.degradation if isinstance(degradation, LossOperator) else degradation
        operator = loss_operator(degradation, o["sr_operator"], colorize=rule == "degraded", gray=o["gray_units"])
        return ReconstructionLoss(loss.perceptual, operator, loss.observation, loss.weight, 1.0, 0.0)

    def tune(self, prior: GenerativePrior, base: torch.Tensor, pivot: torch.Tensor, run: RunStart,
             seed: int) -> Result:
        """Stage 2 (pivotal tuning at ``pivot`` on a copy of the generator) and the result."""
        o = self.options
        run.extras["offset_norm"] = float(torch.linalg.vector_norm(pivot - base))
        tuning_loss = run.loss.with_weights(o["perceptual_weight"], o["tuning_l2_weight"])
        tuned = pivotal_tuning(prior, pivot, run.c, tuning_loss, run.recorder, **tuning_options(o), seed=seed)
        return self.finish(prior, pivot, run, generator_delta(prior, tuned), tuned)
