"""``ganprior.restore``: one call from a degraded photo (any size) to a restored one.

    >>> result = ganprior.restore("photo.png", task="colorize", method="cri")
    >>> result.image            # [1, 3, H, W] in [-1, 1], fused with the observation
    >>> result.save("out/photo")

The photo is the *observation* (already degraded). It is placed on the generator canvas
(``fitting.py``), restored by the method in generator space, mapped back to the photo's size
(× the SR factor) and fused with the observation at full resolution.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from ganprior.degradations import Degradation, Inpainting, parse_task, resize
from ganprior.fitting import content_weight, from_canvas, mask_to_canvas, place, to_canvas
from ganprior.methods import cap_steps, get_method_class, preset_options
from ganprior.methods.base import StepCallback
from ganprior.models.prior import GenerativePrior
from ganprior.results import RestorationResult


class RestorationInputError(ValueError):
    """The photo, mask or options given to ``restore`` cannot be used."""


def _load_observation(image: torch.Tensor | str | os.PathLike) -> tuple[torch.Tensor, str | None]:
    if isinstance(image, (str, os.PathLike)):
        from ganprior.images import load_image

        return load_image(image), str(image)
    if not isinstance(image, torch.Tensor):
        raise RestorationInputError(f"image must be a path or a tensor [1, 3, H, W], got {type(image).__name__}")
    x = image[None] if image.ndim == 3 else image
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 3):
        raise RestorationInputError(f"image tensor must be [1, 3, H, W] (or [3, H, W]), got {tuple(image.shape)}")
    return x.float(), None


def _inpainting_mask(degradation: Degradation) -> torch.Tensor | None:
    ops = getattr(degradation, "ops", [degradation])
    masks = [op.mask for op in ops if isinstance(op, Inpainting)]
    return masks[0] if masks else None


def _fit_mask(full: Degradation, gen_size: tuple[int, int], fit: str) -> torch.Tensor | None:
    """The inpainting mask of the full-size degradation, placed on the generator-space image that
    reaches the inpainting step (after any earlier size change)."""
    size = gen_size
    for op in getattr(full, "ops", [full]):
        if isinstance(op, Inpainting):
            return mask_to_canvas(op.mask, place(op.mask.shape[-2:], size, fit))
        size = op.observed_size(size)
    return None


def _sr_factor(degradation: Degradation) -> int:
    factor = 1
    for op in getattr(degradation, "ops", [degradation]):
        factor *= int(getattr(op, "factor", 1)) if not getattr(op, "reupsample", False) else 1
    return factor


def restore(
    image: torch.Tensor | str | os.PathLike,
    task: str | Degradation = "colorize",
    method: str = "cri",
    model: str | os.PathLike | GenerativePrior | None = None,
    *,
    mask: torch.Tensor | str | None = None,
    mask_hole_value: str | None = None,
    scale: int | None = None,
    weights: str | os.PathLike | None = None,
    class_index: int | None = None,
    seed: int = 0,
    steps: int | None = None,
    preset: str = "paper",
    perceptual: str | None = None,
    fit: str = "letterbox",
    device: str | torch.device = "cpu",
    progress: bool = True,
    video: bool = False,
    options: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    preview_every: int = 5,
) -> RestorationResult:
    """Restore one degraded photo; see ``ganprior restore --help`` for what each argument means.

    ``task`` is a task string (``"sr4+colorize+inpaint"``) or a ready :class:`Degradation` without a
    mask; ``mask`` is a tensor, a file (with ``mask_hole_value``) or a spec (``"center"``) at the size of
    the image that reaches the inpainting step; ``steps`` caps every stage; ``options`` overrides any
    method option (``ganprior.methods.get_method_class(name).defaults`` lists them).

    ``callback(step, stage, loss, preview) -> bool`` is called after every optimisation step; ``preview``
    is the restoration as it stands (photo size, fused like the result) every ``preview_every`` steps and
    ``None`` in between. Returning ``False`` or raising ``StopRestoration`` ends the run cleanly: the
    result holds the best state so far and ``result.stopped`` says where it stopped.
    """
    started = time.perf_counter()
    observation, source = _load_observation(image)
    if not torch.isfinite(observation).all():
        raise RestorationInputError("the image contains NaN or infinite values")
    prior = model if isinstance(model, GenerativePrior) else _load_prior(model, weights, device)
    observation = observation.to(prior.device)
    if observation.shape[1] == 1:
        observation = observation.expand(-1, 3, -1, -1)
    h, w = observation.shape[-2:]
    R = prior.resolution
    if isinstance(task, Degradation):
        if _inpainting_mask(task) is not None:
            raise RestorationInputError("pass inpainting as a task string with mask=..., so the mask can be fitted")
        task_name, factor = task.name, _sr_factor(task)
        full = gen_degradation = task
    else:
        task_name = str(task)
        probe_mask = torch.ones(1, 1, 1, 1) if mask is not None else None
        factor = _sr_factor(parse_task(task_name, mask=probe_mask, scale=scale))
        full = parse_task(task_name, mask=mask, scale=scale, image_size=(h * factor, w * factor),
                          mask_hole_value=mask_hole_value, seed=seed)
        gen_degradation = parse_task(task_name, mask=_fit_mask(full, (R, R), fit), scale=scale, image_size=(R, R))
    out_size = (h * factor, w * factor)
    full = full.to(prior.device)
    if tuple(full.observed_size(out_size)) != (h, w):
        raise RestorationInputError(f"task {task_name!r} turns a {out_size} image into {full.observed_size(out_size)}, "
                                    f"not the {h}x{w} photo given")
    gen_degradation = gen_degradation.to(prior.device)
    canvas = gen_degradation.observed_size((R, R))
    placement = place((h, w), canvas, fit)
    target = to_canvas(observation, placement)
    weight = content_weight(placement, prior.device) * gen_degradation.valid_mask((R, R), prior.device)

    method_cls = get_method_class(method)
    family = getattr(prior, "family", None)
    chosen = {k: v for k, v in preset_options(method, preset, task_name, family).items() if k in method_cls.defaults}
    if perceptual is not None:
        chosen["perceptual"] = perceptual
    chosen.update(options or {})
    chosen = cap_steps({**method_cls.defaults, **chosen}, steps)
    runner = method_cls(**chosen)
    total_steps = sum(v for k, v in runner.options.items() if k == "steps" or k.endswith("_steps"))
    frame_every = max(1, total_steps // 60) if video else 0
    back = placement.scaled((R, R), out_size)
    background = None
    if back.crop != (0, 0, *out_size):
        background = resize(observation, out_size, "bicubic")

    @torch.no_grad()
    def to_photo(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Generator image -> (restored, fused with the observation) at the output size."""
        restored = from_canvas(image, back, background).clamp(-1, 1)
        return restored, full.fuse(restored, observation).clamp(-1, 1)

    step_callback = None
    if callback is not None:
        def step_callback(step: int, stage: str, loss: float, preview: torch.Tensor | None) -> bool | None:
            shown = to_photo(preview)[1] if preview is not None and step % max(1, preview_every) == 0 else None
            return callback(step, stage, loss, shown)

    result = runner.run(prior, gen_degradation, target, weight=weight, class_index=class_index, seed=seed,
                        progress=progress, frame_every=frame_every, callback=step_callback)
    restored, fused = to_photo(result.image)
    config = {
        "task": task_name, "method": method, "preset": preset, "model": _model_label(model, weights),
        "family": family, "resolution": R, "fit": fit, "seed": seed, "steps_cap": steps, "scale": factor,
        "class_index_given": class_index, "input": source, "input_size": [int(h), int(w)],
        "output_size": list(out_size), "degradation": _describe(full), "options": dict(runner.options),
        "perceptual": result.extras.get("perceptual"),  # what "auto" (or the option) actually became
    }
    result.timings["total"] = time.perf_counter() - started
    return RestorationResult(image=fused, restored=restored, observation=observation, result=result, config=config,
                             canvas_target=target, canvas_weight=weight)


def _load_prior(model, weights, device) -> GenerativePrior:
    from ganprior.loading import load_model

    return load_model(model, weights=weights, device=device)


def _model_label(model, weights) -> str:
    if isinstance(model, GenerativePrior):
        return f"<{type(model).__name__} in memory>"
    if weights is not None:
        return str(weights)
    return str(model) if model is not None else "default"


def _describe(degradation: Degradation) -> Any:
    describe = getattr(degradation, "describe", None)
    return describe() if callable(describe) else type(degradation).__name__
