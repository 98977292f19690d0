"""Presets: the official settings per method, task and model family, overridable option by option.

``paper`` follows the CRI paper and the official scripts:
  * steps per family: StyleGAN-XL / ImageNet-type models 1000 offset + 350 tuning steps;
    StyleGAN2/3 (faces in the paper) 500 + 20;
  * CRI loss weights per task (official scripts): inpainting λ1 = 100, λ2 = 1; colorization
    λ1 = 10, λ2 = 0.5; super-resolution λ1 = 100, λ2 = 0.5. Composed tasks use the inpainting weights
    when they contain inpainting, otherwise colorization's only when colorization is all there is;
    other tasks (denoise, deblur, jpeg) use the SR weights. Stage 2 reuses λ1 for its L2 term.
``code`` is the official code's values where they differ from its paper (DGP's scripts; methods
with one set of official values treat it as ``paper``).
``fast`` trades quality for time (a few hundred steps, fewer samples in the centroid bank).
DGP's schedules (paper tables 6-11 / scripts) live in ``dgp_presets.py``.
"""

from __future__ import annotations

import re
from typing import Any

from ganprior import names

PRESETS = names.PRESETS

_FAMILY_STEPS = {"stylegan_xl": (1000, 350), "biggan": (1000, 350), "stylegan2": (500, 20), "stylegan3": (500, 20)}

_CRI_TASK_WEIGHTS = {
    "inpaint": {"l2_weight": 100.0, "offset_weight": 1.0},
    "colorize": {"l2_weight": 10.0, "offset_weight": 0.5},
    "sr": {"l2_weight": 100.0, "offset_weight": 0.5},
}

_FAST = {
    "cri": {"offset_steps": 200, "tuning_steps": 50, "n_samples": 2000},
    "pti": {"projection_steps": 200, "tuning_steps": 50, "w_avg_samples": 2000, "n_samples": 2000},
    "w": {"steps": 200, "w_avg_samples": 2000, "n_samples": 2000},
    "wplus": {"steps": 200, "w_avg_samples": 2000, "n_samples": 2000},
    "pulse": {"steps": 50, "fit_samples": 2000, "n_samples": 2000},
}


def task_kinds(task: str | None) -> set[str]:
    """``'sr4+colorize+inpaint'`` -> ``{'sr', 'colorize', 'inpaint'}`` (scale digits dropped)."""
    if not task:
        return set()
    return {re.sub(r"[\d.x×]+$", "", part.strip().lower()) for part in task.split("+") if part.strip()}


def _cri_weights(task: str | None) -> dict[str, float]:
    kinds = task_kinds(task)
    if "inpaint" in kinds:
        chosen = _CRI_TASK_WEIGHTS["inpaint"]
    elif kinds == {"colorize"}:
        chosen = _CRI_TASK_WEIGHTS["colorize"]
    else:
        chosen = _CRI_TASK_WEIGHTS["sr"]
    return {**chosen, "tuning_l2_weight": chosen["l2_weight"]}


def preset_options(method: str, preset: str = "paper", task: str | None = None, family: str | None = None) -> dict[str, Any]:
    """Options a preset sets for ``method`` (the method's defaults fill in the rest)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if method == "dgp":
        from ganprior.methods.dgp_presets import preset_options as dgp_preset_options

        return dgp_preset_options(preset, task)
    options: dict[str, Any] = {}
    if method == "cri":
        options.update(_cri_weights(task))
        if family in _FAMILY_STEPS:
            options["offset_steps"], options["tuning_steps"] = _FAMILY_STEPS[family]
    elif method == "pti" and family in _FAMILY_STEPS:
        options["projection_steps"], options["tuning_steps"] = _FAMILY_STEPS[family]
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
