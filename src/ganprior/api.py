"""``ganprior.restore``: one call from a degraded photo (any size) to a restored one.

    >>> result = ganprior.restore("photo.png", task="colorize", method="cri")
    >>> result.image            # [1, 3, H, W] in [-1, 1], fused with the observation
    >>> result.save("out/photo")

The photo is the *observation* (already degraded). It is first projected into what the task can
observe (``consistency.py``: a colour photo given to colorization becomes its grey, with a
:class:`RestorationWarning`), placed on the generator canvas (``fitting.py``), restored by the method
in generator space, mapped back to the photo's size (× the SR factor) and fused with the observation
at full resolution so that degrading the output gives the observation back (``consistency_rmse``).
"""

from __future__ import annotations

import inspect
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, ParamSpec, Sequence

import torch

from ganprior.class_names import ClassNameError, with_class_names
from ganprior.consistency import (FUSE_ROUNDS, PREVIEW_ROUNDS, RestorationWarning, consistency_rmse, consistent_fuse,
                                  observation_report, observed_part, resolution_note)
from ganprior.classify.choice import ClassCandidates, ClassOptionError
from ganprior.classify.resolve import choose_class
from ganprior.degradations import Degradation, Inpainting, parse_task, resize
from ganprior.image_files import DEFAULT_MAX_PIXELS, check_mask_coverage
from ganprior.loading.registry import DEFAULT_MODEL
from ganprior.inputs import RestorationInputError, load_observation, mask_digest, model_digest, tensor_digest
from ganprior.fitting import content_weight, from_canvas, mask_to_canvas, place, to_canvas
from ganprior.methods import cap_steps, get_method_class, preset_options
from ganprior.methods.base import Method, Result, StepCallback
from ganprior.models.prior import GenerativePrior
from ganprior.resume import fingerprint
from ganprior.results import RestorationResult


P = ParamSpec("P")

#: the fusion of every operator that makes ``A(output) = y`` (``consistency.py``)
CONSISTENT_FUSION = {"colorize_fusion": "lab-luma", "sr_fusion": "project", "blur_fusion": "project",
                     "denoise_fusion": "project", "jpeg_fusion": "project"}


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


def restore_batch(
    images: Sequence[Any],
    task: str | Degradation = "colorize",
    method: str = "cri",
    model: str | os.PathLike | GenerativePrior | None = None,
    *,
    batch_size: int = 8,
    callbacks: Sequence[StepCallback | None] | None = None,
    **settings: Any,
) -> list[RestorationResult]:
    """Restore several photos with one model, task and method; each result equals :func:`restore`'s.

    W, W+, PULSE, PTI and CRI optimise up to ``batch_size`` images together (pivotal tuning with
    per-image weights under vmap), and DGP scores their candidate starts together (``methods.batched``);
    DGP's fine-tuning stages run one image at a time.
    ``callbacks`` holds one step callback (or None) per image; ``settings`` are :func:`restore`'s.
    """
    if callbacks is not None and len(callbacks) != len(images):
        raise RestorationInputError(f"{len(callbacks)} callbacks for {len(images)} images")
    if batch_size < 1:  # before any image is read or the model loads
        raise RestorationInputError(f"batch_size must be at least 1, got {batch_size}")
    method = method_name(method)
    if not isinstance(model, GenerativePrior):
        model = load_prior(model, settings.pop("weights", None), settings.pop("device", "cpu"))
    prepared = [prepare_restore(image, task, method, model, callback=None if callbacks is None else callbacks[i],
                                **settings) for i, image in enumerate(images)]
    return run_prepared(prepared, batch_size)


def run_prepared(prepared: Sequence["PreparedRestoration"], batch_size: int = 8) -> list[RestorationResult]:
    """Run prepared restorations: batches of ``batch_size`` for the batched methods, else one by one."""
    from ganprior.methods.batched import BATCHED_METHODS, project_batch

    if batch_size < 1:
        raise RestorationInputError(f"batch_size must be at least 1, got {batch_size}")
    results: list[RestorationResult] = []
    for first in range(0, len(prepared), batch_size):
        chunk = list(prepared[first:first + batch_size])
        head = chunk[0]
        same = all(p.prior is head.prior and p.runner.options == head.runner.options for p in chunk)
        if len(chunk) == 1 or head.runner.name not in BATCHED_METHODS or not same:
            results += [restore_prepared(p) for p in chunk]
            continue
        started = time.perf_counter()
        batch = project_batch(head.runner, head.prior, [p.degradation for p in chunk], [p.target for p in chunk],
                              weights=[p.weight for p in chunk], class_indices=[p.class_index for p in chunk],
                              seeds=[p.seed for p in chunk], frame_every=head.frame_every,
                              callbacks=[p.callback for p in chunk])
        share = (time.perf_counter() - started) / len(chunk)
        results += [p.complete(result, share) for p, result in zip(chunk, batch)]
    return results


def restore_prepared(prepared: "PreparedRestoration") -> RestorationResult:
    """Run one prepared restoration on its own (what :func:`restore` does after preparing)."""
    started = time.perf_counter()
    result = prepared.runner.run(prepared.prior, prepared.degradation, prepared.target, weight=prepared.weight,
                                 class_index=prepared.class_index, seed=prepared.seed, progress=prepared.progress,
                                 frame_every=prepared.frame_every, callback=prepared.callback)
    return prepared.complete(result, time.perf_counter() - started)


def prepare_restore(
    image: Any,
    task: str | Degradation = "colorize",
    method: str = "cri",
    model: str | os.PathLike | GenerativePrior | None = None,
    *,
    mask: torch.Tensor | str | None = None,
    mask_hole_value: str | None = None,
    scale: int | None = None,
    weights: str | os.PathLike | None = None,
    class_index: int | str | ClassCandidates | None = None,
    class_preprocess: str = "timm",
    seed: int = 0,
    steps: int | None = None,
    preset: str = "official",
    perceptual: str | None = None,
    fit: str = "letterbox",
    device: str | torch.device = "cpu",
    progress: bool = True,
    video: bool = False,
    options: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    preview_every: int = 5,
    value_range: tuple[float, float] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> "PreparedRestoration":
    """Check one degraded photo and put it on the generator canvas (restore's work before its method).
    See ``ganprior restore --help`` for what each argument means.

    ``image`` is a path, a PIL image, a numpy array or a tensor; float arrays and tensors say their range
    with ``value_range`` (see ``ganprior.inputs``); files larger than ``max_pixels`` are refused.

    ``task`` is a task string (``"sr4+colorize+inpaint"``; its operators get the consistent fusions of
    :data:`CONSISTENT_FUSION`) or a ready :class:`Degradation` without a mask (fused as configured: the
    bench builds the papers' own fusions this way); ``mask`` is a tensor, a file (with ``mask_hole_value``) or a spec (``"center"``) at the size of
    the image that reaches the inpainting step; ``steps`` caps every stage; ``options`` overrides any
    method option (``ganprior.methods.get_method_class(name).defaults`` lists them).

    ``class_index``: an index, ``"auto"`` (DeiT's top-1, the default for ImageNet-conditional models),
    ``"topk:K"`` (DeiT's K best with softmax weights), ``"I,J,..."`` (centroid search among them) or
    :class:`ganprior.classify.ClassCandidates`; ``class_preprocess`` is DeiT's input pipeline
    (``"timm"`` or ``"stylegan-xl"``, see ``ganprior.classify.deit``).

    ``callback(step, stage, loss, preview) -> bool`` is called after every optimisation step; ``preview``
    is the restoration as it stands (photo size, fused like the result) every ``preview_every`` steps and
    ``None`` in between. Returning ``False`` or raising ``StopRestoration`` ends the run cleanly: the
    result holds the best state so far and ``result.stopped`` says where it stopped.
    """
    started = time.perf_counter()
    method = method_name(method)  # before the photo is read or the model loads
    observation, source = load_observation(image, value_range, max_pixels)
    input_digest = tensor_digest(observation)
    prior = model if isinstance(model, GenerativePrior) else load_prior(model, weights, device)
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
                          mask_hole_value=mask_hole_value, seed=seed, **CONSISTENT_FUSION)
        gen_degradation = parse_task(task_name, mask=_fit_mask(full, (R, R), fit), scale=scale, image_size=(R, R),
                                     **CONSISTENT_FUSION)
    out_size = (h * factor, w * factor)
    full = full.to(prior.device)
    if tuple(full.observed_size(out_size)) != (h, w):
        raise RestorationInputError(f"task {task_name!r} turns a {out_size} image into {full.observed_size(out_size)}, "
                                    f"not the {h}x{w} photo given")
    _check_mask_coverage(full, mask)
    observation = observed_part(full, observation, source=image)
    model_name = _model_label(model, weights)
    note = resolution_note(out_size, R, model_name)
    if note is not None:
        warnings.warn(note, RestorationWarning, stacklevel=2)
    gen_degradation = gen_degradation.to(prior.device)
    canvas = gen_degradation.observed_size((R, R))
    placement = place((h, w), canvas, fit)
    target = to_canvas(observation, placement)
    weight = content_weight(placement, prior.device) * gen_degradation.valid_mask((R, R), prior.device)

    method_cls = get_method_class(method)
    family = getattr(prior, "family", None)
    chosen = _method_options(method, preset, task_name, family, perceptual, options, steps)
    run_fingerprint = _fingerprint(input_digest, task, mask, mask_hole_value, method, chosen, prior, seed=seed,
                                   steps=steps, preset=preset, fit=fit, scale=scale, class_index=class_index)
    runner = method_cls(**chosen)
    total_steps = sum(v for k, v in runner.options.items() if k == "steps" or k.endswith("_steps"))
    frame_every = max(1, total_steps // 60) if video else 0
    back = placement.scaled((R, R), out_size)
    background = None
    if back.crop != (0, 0, *out_size):
        background = resize(observation, out_size, "bicubic")

    @torch.no_grad()
    def to_photo(image: torch.Tensor, rounds: int = FUSE_ROUNDS) -> tuple[torch.Tensor, torch.Tensor]:
        """Generator image -> (generator output, fused with the observation) at the output size."""
        restored = from_canvas(image, back, background).clamp(-1, 1)
        return restored, consistent_fuse(full, restored, observation, rounds)

    step_callback = None
    if callback is not None:
        def step_callback(step: int, stage: str, loss: float, preview: torch.Tensor | None) -> bool | None:
            due = preview is not None and step % max(1, preview_every) == 0
            shown = to_photo(preview, PREVIEW_ROUNDS)[1] if due else None
            return callback(step, stage, loss, shown)

    try:
        method_class, class_record = choose_class(prior.c_dim, with_class_names(class_index, prior), observation,
                                                  preprocess=class_preprocess)
    except (ClassOptionError, ClassNameError) as exc:
        raise RestorationInputError(str(exc)) from exc
    config = {
        "task": task_name, "method": method, "preset": preset, "model": model_name,
        "family": family, "resolution": R, "fit": fit, "seed": seed, "steps_cap": steps, "scale": factor,
        "class_index_given": class_index.describe() if isinstance(class_index, ClassCandidates) else class_index,
        "class_choice": class_record, "input": source, "input_size": [int(h), int(w)],
        "output_size": list(out_size), "degradation": _describe(full), "options": dict(runner.options),
        "fingerprint": run_fingerprint,  # what resuming compares (ganprior.resume)
    }
    return PreparedRestoration(prior, runner, gen_degradation, target, weight, method_class, seed, progress,
                               frame_every, step_callback, to_photo, full, observation, config,
                               time.perf_counter() - started)


def _then_run(prepare: Callable[P, "PreparedRestoration"]) -> Callable[P, RestorationResult]:
    """``restore``: :func:`prepare_restore` followed by its method, with the same typed signature."""
    def restore(*args: P.args, **kwargs: P.kwargs) -> RestorationResult:
        return restore_prepared(prepare(*args, **kwargs))

    restore.__signature__ = inspect.signature(prepare).replace(return_annotation=RestorationResult)  # type: ignore
    details = (prepare.__doc__ or "").split("\n", 1)[-1]
    restore.__doc__ = "Restore one degraded photo: prepare_restore, then its method.\n" + details
    return restore


restore = _then_run(prepare_restore)


@dataclass
class PreparedRestoration:
    """One photo checked and placed on the generator canvas, ready for its method (alone or batched)."""

    prior: GenerativePrior
    runner: Method
    degradation: Degradation  # in generator space
    target: torch.Tensor  # the observation on the canvas
    weight: torch.Tensor
    class_index: Any
    seed: int
    progress: bool
    frame_every: int
    callback: StepCallback | None
    to_photo: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    full: Degradation  # at the photo's size
    observation: torch.Tensor
    config: dict[str, Any]
    prepared_in: float  # seconds

    def complete(self, result: Result, run_seconds: float) -> RestorationResult:
        """Map the method's result back to the photo; ``run_seconds`` is its share of the optimisation."""
        started = time.perf_counter()
        restored, fused = self.to_photo(result.image)
        config = {**self.config, "perceptual": result.extras.get("perceptual")}  # what "auto" actually became
        rmse = consistency_rmse(self.full, fused, self.observation)
        config["observation"] = observation_report(self.full, fused, restored, self.observation)
        result.timings["total"] = self.prepared_in + run_seconds + time.perf_counter() - started
        return RestorationResult(image=fused, generator_output=restored, observation=self.observation, result=result,
                                 config=config, canvas_target=self.target, canvas_weight=self.weight,
                                 consistency_rmse=rmse, mask=_inpainting_mask(self.full))


def _method_options(method: str, preset: str, task_name: str, family: str | None, perceptual: str | None,
                    options: dict[str, Any] | None, steps: int | None) -> dict[str, Any]:
    """Every option of the method: its defaults, the preset's for this task and family, the caller's, capped."""
    method_cls = get_method_class(method)
    chosen = {k: v for k, v in preset_options(method, preset, task_name, family).items() if k in method_cls.defaults}
    if perceptual is not None:
        chosen["perceptual"] = perceptual
    chosen.update(options or {})
    return cap_steps({**method_cls.defaults, **chosen}, steps)


def _fingerprint(input_digest: str, task: str | Degradation, mask: Any, mask_hole_value: str | None, method: str,
                 chosen: dict[str, Any], prior: GenerativePrior, **settings: Any) -> dict[str, Any]:
    """Everything that decides a run's result (``ganprior.resume`` reuses a run folder only on a match)."""
    cls = settings.pop("class_index", None)
    return fingerprint({
        "input": input_digest, "task": _describe(task) if isinstance(task, Degradation) else str(task),
        "mask": mask_digest(mask, mask_hole_value), "method": method, "options": chosen, "model": model_digest(prior),
        "class": cls.describe() if isinstance(cls, ClassCandidates) else cls, **settings})


def restore_fingerprint(
    image: Any, task: str | Degradation, method: str, model: GenerativePrior, *, mask: Any = None,
    mask_hole_value: str | None = None, scale: int | None = None, class_index: Any = None, seed: int = 0,
    steps: int | None = None, preset: str = "official", perceptual: str | None = None, fit: str = "letterbox",
    options: dict[str, Any] | None = None, value_range: tuple[float, float] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS, **_presentation: Any,
) -> dict[str, Any]:
    """The fingerprint :func:`restore` will record for these arguments, without running it (for resuming).

    Takes :func:`restore`'s keyword arguments; those that do not change the result (``progress``,
    ``video``, ``callback``, ...) are ignored.
    """
    method = method_name(method)
    observation, _ = load_observation(image, value_range, max_pixels)
    task_name = task.name if isinstance(task, Degradation) else str(task)
    chosen = _method_options(method, preset, task_name, getattr(model, "family", None), perceptual, options, steps)
    return _fingerprint(tensor_digest(observation), task, mask, mask_hole_value, method, chosen, model, seed=seed,
                        steps=steps, preset=preset, fit=fit, scale=scale, class_index=class_index)


def _check_mask_coverage(full: Degradation, given: Any) -> None:
    """All-hole masks are refused; a mask without a hole is allowed with a warning."""
    mask = _inpainting_mask(full)
    if mask is not None:
        what = "the mask" if isinstance(given, torch.Tensor) else f"mask={str(given)!r}"
        try:
            note = check_mask_coverage(mask.detach().cpu().numpy() > 0.5, what, "mask_hole_value")
        except ValueError as exc:
            raise RestorationInputError(str(exc)) from exc
        if note is not None:
            warnings.warn(note, NoHoleWarning, stacklevel=3)


class NoHoleWarning(RestorationWarning):
    """An inpainting mask without a hole (the command line has said so already for a --mask file)."""


def method_name(method: str) -> str:
    """The registered name of ``method`` in any case (``"CRI"`` -> ``"cri"``); unknown names are refused."""
    from ganprior.methods import available_methods

    name = str(method).strip().lower()
    if name not in available_methods():
        raise RestorationInputError(f"unknown method {method!r}; choose one of {', '.join(available_methods())}")
    return name


def load_prior(model: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
               device: str | torch.device = "cpu") -> GenerativePrior:
    """``load_model`` that also remembers the name it was loaded by (``config.model`` in run.json)."""
    from ganprior.loading import load_model

    prior = load_model(model, weights=weights, device=device)
    prior.model_name = str(weights) if weights is not None else str(model) if model is not None else DEFAULT_MODEL
    return prior



def _model_label(model, weights) -> str:
    if isinstance(model, GenerativePrior):
        return getattr(model, "model_name", None) or f"<{type(model).__name__} in memory>"
    if weights is not None:
        return str(weights)
    return str(model) if model is not None else DEFAULT_MODEL


def _describe(degradation: Degradation) -> Any:
    describe = getattr(degradation, "describe", None)
    return describe() if callable(describe) else type(degradation).__name__
