"""Turn a task string such as ``"sr4+colorize+inpaint"`` into a :class:`Compose` of operators.

Operators apply in the order written (DGP's hybrid task is ``sr2+colorize+inpaint``).
"""

from __future__ import annotations

import os
from typing import Sequence

import torch

from ganprior.tasks import (  # noqa: F401  (TASK_ALIASES, NUMBERED: re-exported for older imports)
    IDENTITY_TASKS, NUMBERED, TASK_ALIASES, UnknownTaskError, canonical_token, known_tasks)

from .base import Compose, Degradation, DegradationError, Size
from .colorization import Colorization
from .inpainting import Inpainting
from .masks import mask_from_spec
from .blur import Blur
from .jpeg import JPEG
from .noise import Denoising
from .super_resolution import SuperResolution


class TaskError(DegradationError):
    """A task string names an unknown operator or an impossible combination."""


def _canonical(token: str) -> tuple[str, float | None]:
    """``"sr4"`` -> ``("sr", 4.0)``; unknown words raise :class:`TaskError` listing the known ones."""
    try:
        return canonical_token(token)
    except UnknownTaskError as exc:
        raise TaskError(str(exc)) from None


def _parameter(task: str, token: str, in_token: float | None, keyword: str, given: float | None,
               default: float | None) -> float:
    """The one value of a task's parameter, from the token or the keyword, never conflicting."""
    if in_token is not None and given is not None and float(given) != in_token:
        raise TaskError(f"task says {token!r} but {keyword}={given}; give the {task} parameter once")
    value = in_token if in_token is not None else given if given is not None else default
    if value is None:
        raise TaskError(f"{task} needs a value: write it after the name (e.g. '{task}4') or pass {keyword}=")
    return float(value)


def _whole(task: str, value: float, low: int, high: int | None = None) -> int:
    if value != int(value) or value < low or (high is not None and value > high):
        bound = f"in {low}..{high}" if high is not None else f">= {low}"
        raise TaskError(f"{task} parameter must be a whole number {bound}, got {value:g}")
    return int(value)


def parse_task(
    task: str,
    *,
    mask: torch.Tensor | str | os.PathLike | None = None,
    scale: int | None = None,
    image_size: Sequence[int] | None = None,
    sr_kernel: str = "bicubic",
    mask_hole_value: str | None = None,
    seed: int = 0,
    colorize_fusion: str = "lab",
    sr_fusion: str = "none",
    blur_fusion: str = "none",
    denoise_fusion: str = "none",
    jpeg_fusion: str = "none",
    sr_reupsample: bool = False,
    noise_sigma: float | None = None,
    blur_sigma: float | None = None,
    jpeg_quality: int | None = None,
) -> Compose:
    """Build the degradation for ``task`` (e.g. ``"sr4+colorize+inpaint"``).

    ``mask`` is a tensor, a mask file (with ``mask_hole_value``) or a spec like ``"center"`` /
    ``"box:10,10,40,30"`` / ``"strokes"`` (see :func:`mask_from_spec`); specs and files need
    ``image_size`` (H, W) of the clean image. Operators after ``sr`` see the low-resolution size.
    Parameters come from the token (``sr4``, ``jpeg30``, ``denoise0.1``, ``blur2``) or the keyword
    (``scale``, ``jpeg_quality``, ``noise_sigma``, ``blur_sigma``), not both with different values.
    The ``*_fusion`` keywords choose each operator's fusion (``ganprior.restore`` asks for the
    consistent ones: ``lab-luma`` and ``project`` for the others). ``denoise`` without a sigma estimates it
    from the photo (``Denoising.calibrate``).
    """
    tokens = [t.strip().lower() for t in str(task).split("+")]
    if len(tokens) == 1 and tokens[0] in IDENTITY_TASKS:
        tokens = []
    seen: set[str] = set()
    size: Size | None = (int(image_size[0]), int(image_size[1])) if image_size is not None else None
    ops: list[Degradation] = []
    for token in tokens:
        kind, number = _canonical(token)
        if kind in seen:
            raise TaskError(f"task {task!r} applies {kind!r} twice; each operator may appear once")
        seen.add(kind)
        if kind == "sr":
            factor = _whole("sr", _parameter("sr", token, number, "scale", scale, None), 1)
            op: Degradation = SuperResolution(
                factor, kernel=sr_kernel, reupsample=sr_reupsample, fusion=sr_fusion  # type: ignore[arg-type]
            )
        elif kind == "denoise":
            sigma = noise_sigma if number is None else number  # neither: estimated from the photo
            op = Denoising(None if sigma is None else _parameter("denoise", token, number, "noise_sigma", noise_sigma,
                                                                 None), seed=seed, fusion=denoise_fusion)  # type: ignore[arg-type]
        elif kind == "blur":
            op = Blur(_parameter("blur", token, number, "blur_sigma", blur_sigma, 2.0),
                      fusion=blur_fusion)  # type: ignore[arg-type]
        elif kind == "jpeg":
            quality = _parameter("jpeg", token, number, "jpeg_quality", jpeg_quality, 75)
            op = JPEG(_whole("jpeg", quality, 1, 100), fusion=jpeg_fusion)  # type: ignore[arg-type]
        elif kind == "colorize":
            op = Colorization(fusion=colorize_fusion)  # type: ignore[arg-type]
        else:  # inpaint
            if mask is None:
                raise TaskError("inpainting needs a mask: a tensor, a file, or a spec such as 'center'")
            if isinstance(mask, torch.Tensor):
                op = Inpainting(mask)
                if size is not None and tuple(op.mask.shape[-2:]) != size:
                    raise TaskError(
                        f"the inpainting mask is {tuple(op.mask.shape[-2:])} (HxW) but the image reaching it "
                        f"in {task!r} is {size}; a mask after 'sr' must have the low-resolution size"
                    )
            else:
                if size is None:
                    raise TaskError(f"mask {mask!r} needs image_size=(H, W) to be built")
                op = Inpainting(mask_from_spec(mask, size, seed=seed, hole_value=mask_hole_value))
        if size is not None:
            size = op.observed_size(size)
        ops.append(op)
    if mask is not None and "inpaint" not in seen:
        raise TaskError(f"a mask was given but task {task!r} has no inpainting step")
    for keyword, value, needs in (("scale", scale, "sr"), ("noise_sigma", noise_sigma, "denoise"),
                                  ("blur_sigma", blur_sigma, "blur"), ("jpeg_quality", jpeg_quality, "jpeg")):
        if value is not None and needs not in seen:
            raise TaskError(f"{keyword}={value} was given but task {task!r} has no {needs!r} step")
    return Compose(ops)
