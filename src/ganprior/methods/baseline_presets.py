"""Presets of the baselines (W, W+, PTI, PULSE): each as its own repository runs it, on every family it
applies to. ``presets.preset_options`` adds these to what it sets itself (CRI, StyleGAN-XL PTI).

``official``
  * W / W+ on StyleGAN2 (and StyleGAN3, which has no noise inputs: w noise only): the StyleGAN2-ADA
    projector (``NVlabs/stylegan2-ada-pytorch@d72cc7d projector.py:25-129``): noise maps re-drawn,
    optimised and re-normalised, regulariser 1e5, w noise 0.05·w_std·(1 − t/0.75)², peak lr 0.1,
    1000 steps, 10 000 w samples. W+ runs the same loop with one w per layer (the form of the PTI
    repository's ``w_plus_projector.py``) at these settings. On StyleGAN-XL: ``run_inversion.project``
    (no noise, no w noise), the defaults.
  * PTI on StyleGAN2: the PTI repository (``danielroich/PTI@da94d59``): W projection with the SG2-ADA
    noise handling, 450 steps at peak lr 0.01 (``hyperparameters.py:20``, ``w_projector.py:28``), start
    from 600 w samples (``base_coach.py:101``), perceptual only (NVIDIA VGG16); tuning 350 steps at
    3e-4 with MSE on [-1, 1] images (weight 1) + LPIPS-AlexNet (weight 1) (``hyperparameters.py:14-24``,
    ``base_coach.py:108-121``), stopped as soon as the LPIPS is ≤ 0.06 (``single_id_coach.py:60-61``),
    locality regulariser off (``hyperparameters.py:8``). On StyleGAN-XL (and StyleGAN3, which XL's
    code base runs the same way): ``run_inversion.py``, whose projection is perceptual only
    (``run_inversion.py:200-215``); its tuning terms are set in ``presets.py``.
  * PULSE: ``adamian98/pulse@40cacb9 run.py:36-47`` (the method's defaults) with the Gaussian fit over
    1 M samples (``PULSE.py:44``).
``paper`` (CRI paper, sec. "Experiments"): "All the methods are inverted to W+ space except PTI
colorization": PTI projects in W+ unless the task is colorization alone.
"""

from __future__ import annotations

from typing import Any

from ganprior.methods.projection import SG2_ADA_NOISE
from ganprior.tasks import task_kinds

_PROJECTION_OFFICIAL = {"stylegan2": SG2_ADA_NOISE, "stylegan3": SG2_ADA_NOISE}

_PTI_REPO = {
    "projection_steps": 450,  # hyperparameters.py:21  first_inv_steps
    "projection_lr": 0.01,  # w_projector.py:28  initial_learning_rate (the loop's peak, w_projector.py:86-91)
    "projection_space": "w",  # hyperparameters.py:3  first_inv_type = 'w'
    "w_avg_samples": 600,  # base_coach.py:101
    **SG2_ADA_NOISE,  # w_projector.py:29-34, 58-137
    "l2_weight": 0.0,  # w_projector.py:112-119  dist + noise regulariser only
    "tuning_steps": 350,  # hyperparameters.py:20  max_pti_steps
    "tuning_lr": 3e-4,  # hyperparameters.py:24  pti_learning_rate
    "tuning_l2_weight": 1.0,  # hyperparameters.py:16, base_coach.py:108-113  MSE on [-1, 1] images
    "tuning_perceptual": "lpips-alex",  # hyperparameters.py:2, base_coach.py:36
    "perceptual_weight": 1.0,  # hyperparameters.py:17  pt_lpips_lambda
    "tuning_stop_perceptual": 0.06,  # hyperparameters.py:19, single_id_coach.py:60-61
    "reg_weight": 0.0,  # hyperparameters.py:8  use_locality_regularization = False
    "l2_average": "image",  # l2_loss.py:3  MSELoss(reduction='mean')
    "l2_max_size": None,  # the MSE is taken at full resolution
}
_PTI_XL = {"l2_weight": 0.0}  # run_inversion.py:200-215: the projection's loss is the VGG distance alone

#: Gaussian fit of PULSE's official preset (PULSE.py:44)
PULSE_FIT_SAMPLES = 1_000_000


def baseline_options(method: str, preset: str, task: str | None, family: str | None) -> dict[str, Any]:
    """What ``preset`` (``official``/``paper``/``fast``) sets for the baseline ``method`` on ``family``."""
    options: dict[str, Any] = {}
    if method in ("w", "wplus"):
        options.update(_PROJECTION_OFFICIAL.get(family, {}))
    elif method == "pti":
        options.update(_PTI_REPO if family == "stylegan2" else _PTI_XL)
        if preset == "paper" and task_kinds(task) != {"colorize"}:
            options["projection_space"] = "wplus"
    elif method == "pulse":
        options["fit_samples"] = PULSE_FIT_SAMPLES
    return options
