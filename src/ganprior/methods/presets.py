"""Presets, named for what they reproduce: the settings per method, task and model family, overridable
option by option.

``official`` (the default): what the released code computes, term by term. CRI: the three scripts of
Booooooooooo/CRI@0ad9960 (``inp`` = run_inpaint_offset_centroids_stage_inversion.py, ``col`` =
run_color_…, ``ds`` = run_ds_…); StyleGAN-XL PTI: autonomousvision/stylegan_xl@4241ff9 run_inversion.py.
One deliberate exception: ``inp`` scores its losses against the *clean* image (inp:228, inp:119: the
ground truth leaks into the hole); ganprior always uses the masked observation, and says so in
``run.json`` (``extras['deviations_from_official']``) and docs/fidelity.md.
``paper``: the CRI paper's text where it differs from the scripts (centroids scored on degraded
renders, Eq. 8's locality LPIPS on images in their proper range, the task's own SR operator).
``fast``: ``official`` with fewer steps and a smaller centroid bank (previews, tests).
``code``: old name of ``official`` (DGP's scripts), kept for old run files.
DGP's schedules live in ``dgp_presets.py``.

Units: every weight below is written in the official code's units, next to its source line. The
official L2 terms are ``torch.nn.MSELoss`` on images in [0, 255]; ganprior's losses see images in
[-1, 1], so :func:`from_official_l2` (the one conversion) multiplies by (255/2)². Step counts per
family follow the paper (sec. "Implementation details": XL 1000 + 350, as the scripts' defaults
inp:328/331; StyleGAN2 faces 500 + 20).
"""

from __future__ import annotations

from typing import Any

from ganprior import names
from ganprior.tasks import task_kinds

__all__ = ["PRESETS", "cap_steps", "from_official_l2", "preset_options", "task_kinds"]

PRESETS = names.PRESETS
#: old preset names -> current ones
PRESET_ALIASES = {"code": "official"}

#: the official MSE is on [0, 255] images, ganprior's on [-1, 1]: x_255 = (x + 1) · 255/2
OFFICIAL_L2_SCALE = (255.0 / 2.0) ** 2


def from_official_l2(weight: float) -> float:
    """An L2 weight in the official code's units (MSE on [0, 255] images) in ganprior's ([-1, 1])."""
    return float(weight) * OFFICIAL_L2_SCALE


_FAMILY_STEPS = {"stylegan_xl": (1000, 350), "biggan": (1000, 350), "stylegan2": (500, 20), "stylegan3": (500, 20)}

#: CRI per task, official units. l2 = λ1 (stage 1), offset = λ2 (``--reg-w``, with ``--offset-reg``),
#: tuning_l2 = λ_L2 (stage 2).
_CRI_OFFICIAL = {
    "inpaint": {"l2": 100.0,  # inp:290  l2_criterion(synth_images, target_images) * 100
                "offset": 1.0,  # inp:183, inp:343  reg_w=1
                "tuning_l2": 10.0},  # inp:154  mse_loss*10
    "colorize": {"l2": 10.0,  # col:279  * 10
                 "offset": 0.5,  # col:181, col:326  reg_w=0.5
                 "tuning_l2": 1.0},  # col:148  mse_loss *1
    "sr": {"l2": 100.0,  # ds:314  l2_criterion(gen_im_lr, target_images) * 100
           "offset": 0.5,  # ds:202, ds:374  reg_w=0.5
           "tuning_l2": 10.0},  # ds:170  mse_loss*10
}
#: what every CRI script shares (official units / behaviour)
_CRI_SHARED_OFFICIAL = {
    "reg_perceptual_weight": 10.0,  # inp:47, inp:79  lpips_lambda=10
    "reg_l2_weight": 0.0,  # inp:79  LPIPS only
    "reg_vgg_input": "raw",  # inp:68-77  G(w) in [-1, 1] straight into the VGG that expects [0, 255]
    "reg_class": "own",  # inp:61  c[0]: the image's class (150: c=c)
    "l2_average": "image",  # inp:290  MSELoss(reduction='mean') over every pixel (holes 0 in both)
    "l2_max_size": 256,  # inp:285-290  the MSE is taken after the 256² area reduction
    "sr_operator": "torch-bicubic",  # ds:311  F.interpolate(mode='bicubic'), no antialias
    "gray_units": "official",  # col:452-458  grey of [0, 255] values (weights sum to 0.9999)
    "centroid_score": "official",  # inp:243-252, col:236-243, ds:267-274  LPIPS only
}
#: StyleGAN-XL PTI (run_inversion.py), official units
_PTI_OFFICIAL = {
    "tuning_l2_weight": 1.0,  # run_inversion.py:121, :128  loss = mse_loss + lpips_loss + reg_loss
    "reg_perceptual_weight": 10.0,  # run_inversion.py:39, :66  lpips_lambda=10
    "reg_l2_weight": 0.0,  # run_inversion.py:66
    "reg_vgg_input": "raw",  # run_inversion.py:55-65  [-1, 1] images into the VGG
    "reg_class": "random",  # run_inversion.py:48  torch.randint(c_dim)
    "l2_max_size": 256,  # run_inversion.py:113-121
}
#: where the CRI paper's text differs from its scripts
_CRI_PAPER = {
    "centroid_score": "degraded",  # paper sec. "Start from a Centroid": distance to the degraded input I_d
    "reg_vgg_input": "images",  # Eq. 8: L_LPIPS(x_r, x_r*) on the images themselves
    "sr_operator": "degradation",  # "adopts the Lanczos downsampling operator" (the task's own operator)
}

_FAST = {
    "cri": {"offset_steps": 200, "tuning_steps": 50, "n_samples": 2000},
    "pti": {"projection_steps": 200, "tuning_steps": 50, "w_avg_samples": 2000, "n_samples": 2000},
    "w": {"steps": 200, "w_avg_samples": 2000, "n_samples": 2000},
    "wplus": {"steps": 200, "w_avg_samples": 2000, "n_samples": 2000},
    "pulse": {"steps": 50, "fit_samples": 2000, "n_samples": 2000},
}


def cri_task(task: str | None) -> str:
    """Which CRI script a task follows: inpainting's when it inpaints, colorization's when colorization is
    all there is, else the super-resolution script's (denoise, deblur, jpeg too)."""
    kinds = task_kinds(task)
    if "inpaint" in kinds:
        return "inpaint"
    return "colorize" if kinds == {"colorize"} else "sr"


def _cri_official(task: str | None) -> dict[str, Any]:
    w = _CRI_OFFICIAL[cri_task(task)]
    return {"l2_weight": from_official_l2(w["l2"]), "offset_weight": w["offset"],
            "tuning_l2_weight": from_official_l2(w["tuning_l2"]), **_CRI_SHARED_OFFICIAL}


def _pti_official() -> dict[str, Any]:
    return {**_PTI_OFFICIAL, "tuning_l2_weight": from_official_l2(_PTI_OFFICIAL["tuning_l2_weight"])}


def canonical_preset(preset: str) -> str:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return PRESET_ALIASES.get(preset, preset)


def preset_options(method: str, preset: str = "official", task: str | None = None,
                   family: str | None = None) -> dict[str, Any]:
    """Options a preset sets for ``method`` (the method's defaults fill in the rest)."""
    canonical_preset(preset)
    if method == "dgp":
        from ganprior.methods.dgp_presets import preset_options as dgp_preset_options

        return dgp_preset_options(preset, task)
    preset = canonical_preset(preset)
    options: dict[str, Any] = {}
    if method == "cri":
        options.update(_cri_official(task))
        if preset == "paper":
            options.update(_CRI_PAPER)
        if family in _FAMILY_STEPS:
            options["offset_steps"], options["tuning_steps"] = _FAMILY_STEPS[family]
    elif method == "pti":
        options.update(_pti_official())
        if family in _FAMILY_STEPS:
            options["projection_steps"], options["tuning_steps"] = _FAMILY_STEPS[family]
    if method in ("w", "wplus", "pti", "pulse"):  # the baselines as their own repositories run them
        from ganprior.methods.baseline_presets import baseline_options

        options.update(baseline_options(method, preset, task, family))
    if preset == "fast":
        options.update(_FAST.get(method, {}))
    return options


def cap_steps(options: dict[str, Any], max_steps: int | None) -> dict[str, Any]:
    """Cap every ``*_steps`` / ``steps`` option at ``max_steps`` (the CLI's ``--steps`` quick run)."""
    if max_steps is None:
        return options
    if max_steps < 0:
        raise ValueError(f"--steps must be >= 0, got {max_steps}")
    return {k: (min(v, max_steps) if (k == "steps" or k.endswith("_steps")) else v) for k, v in options.items()}
