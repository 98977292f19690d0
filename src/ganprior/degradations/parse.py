"""Turn a task string such as ``"sr4+colorize+inpaint"`` into a :class:`Compose` of operators.

Operators apply in the order written (DGP's hybrid task is ``sr2+colorize+inpaint``).
"""

from __future__ import annotations

import re
from typing import Sequence

import torch

from .base import Compose, Degradation, DegradationError, Size
from .colorization import Colorization
from .inpainting import Inpainting
from .masks import mask_from_spec
from .super_resolution import SuperResolution


class TaskError(DegradationError):
    """A task string names an unknown operator or an impossible combination."""


#: canonical task -> accepted spellings (a number may follow "sr")
TASK_ALIASES: dict[str, tuple[str, ...]] = {
    "sr": ("sr", "superres", "super-resolution"),
    "colorize": ("colorize", "colorization", "gray", "grey"),
    "inpaint": ("inpaint", "inpainting"),
}
IDENTITY_TASKS = ("", "none", "identity", "reconstruct")


def known_tasks() -> list[str]:
    return ["sr<factor>", *[t for t in TASK_ALIASES if t != "sr"], "reconstruct"]


def _canonical(token: str) -> tuple[str, str]:
    """``"sr4"`` -> ``("sr", "4")``; unknown words raise :class:`TaskError` listing the known ones."""
    match = re.fullmatch(r"([a-z-]+?)(\d+(?:\.\d+)?)?", token)
    if match:
        word, number = match.group(1), match.group(2) or ""
        for task, spellings in TASK_ALIASES.items():
            if word in spellings:
                return task, number
    raise TaskError(f"unknown task {token!r}; known tasks: {', '.join(known_tasks())} (join with '+')")


def parse_task(
    task: str,
    *,
    mask: torch.Tensor | str | None = None,
    scale: int | None = None,
    image_size: Sequence[int] | None = None,
    sr_kernel: str = "bicubic",
    mask_hole_value: str | None = None,
    seed: int = 0,
    colorize_fusion: str = "lab",
    sr_fusion: str = "none",
) -> Compose:
    """Build the degradation for ``task`` (e.g. ``"sr4+colorize+inpaint"``).

    ``mask`` is a tensor, a mask file (with ``mask_hole_value``) or a spec like ``"center"`` /
    ``"box:10,10,40,30"`` / ``"strokes"`` (see :func:`mask_from_spec`); specs and files need
    ``image_size`` (H, W) of the clean image. Operators after ``sr`` see the low-resolution size.
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
            if number and scale is not None and int(float(number)) != scale:
                raise TaskError(f"task says {token!r} but scale={scale}; give the factor once")
            factor = scale if scale is not None else (float(number) if number else None)
            if factor is None:
                raise TaskError("super-resolution needs a factor: write e.g. 'sr4' or pass scale=4")
            if float(factor) != int(factor) or int(factor) < 1:
                raise TaskError(f"super-resolution factor must be a whole number >= 1, got {factor}")
            op: Degradation = SuperResolution(int(factor), kernel=sr_kernel, fusion=sr_fusion)  # type: ignore[arg-type]
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
    if scale is not None and "sr" not in seen:
        raise TaskError(f"scale={scale} was given but task {task!r} has no super-resolution step")
    return Compose(ops)
