"""What the page hands the server, turned into what ``ganprior.restore`` takes, with clear errors.

The image in the editor is the observation; the editor's paint layer is the mask: a pixel with any
paint (alpha > 0) is a hole, everything else is observed. That mask goes to ``restore`` unchanged.
Uploads are read with ``ganprior.images.load_image``, so unreadable files and oversized images get the
same errors as on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ganprior.degradations import center_box_mask, mask_from_spec
from ganprior.tasks import has_kind

#: the tasks the page offers, in the order they are composed (inpainting last, so the painted mask is
#: at the size of the image shown, whatever changes the size before it)
TASK_ORDER = ("sr", "blur", "denoise", "jpeg", "colorize", "inpaint")
#: the colour holes are painted and shown in (the brush's colour)
HOLE_COLOR = "#ff00ff"
HOLE_RGBA = (255, 0, 255, 255)


class UIInputError(ValueError):
    """Input from the page that cannot be used; the message is shown in the page."""


def compose_task(tasks: Sequence[str], sr_factor: int = 4) -> str:
    """The task string for the ticked boxes, e.g. ``["inpaint", "sr"] -> "sr4+inpaint"``."""
    unknown = sorted(set(tasks) - set(TASK_ORDER))
    if unknown:
        raise UIInputError(f"unknown task(s) {unknown}; choose from {', '.join(TASK_ORDER)}")
    if not tasks:
        raise UIInputError("choose at least one task (colorize, inpaint, sr, ...)")
    return "+".join(f"sr{int(sr_factor)}" if t == "sr" else t for t in TASK_ORDER if t in tasks)


def load_upload(path: str | Path | None) -> np.ndarray:
    """An uploaded file as an ``[H, W, 3]`` uint8 array, refused as the CLI refuses it."""
    from ganprior.images import ImageLoadError, load_image, to_uint8

    if path is None:
        raise UIInputError("no file was uploaded")
    try:
        image = load_image(path)
    except ImageLoadError as exc:
        raise UIInputError(str(exc).replace(str(path), Path(path).name)) from None
    if image.shape[1] == 1:
        image = image.expand(-1, 3, -1, -1)
    return to_uint8(image)


def editor_value(image: np.ndarray, mask: np.ndarray | None = None) -> dict[str, Any]:
    """An ImageEditor value: ``image`` as background and composite, ``mask`` (1 = observed) as its layer."""
    layer = np.zeros((*image.shape[:2], 4), np.uint8)
    if mask is not None:
        layer[mask < 0.5] = HOLE_RGBA
    return {"background": image[..., :3], "layers": [layer], "composite": show_holes(image, mask)}


def preset_mask(kind: str, size: tuple[int, int], box: str = "") -> np.ndarray:
    """The centre hole of the papers, or a ``x0,y0,x1,y1`` box, as a ``[H, W]`` mask (1 = observed)."""
    try:
        mask = center_box_mask(size) if kind == "center" else mask_from_spec(f"box:{box.strip()}", size)
    except ValueError as exc:
        raise UIInputError(f"box {box!r}: {exc}") from None
    return mask[0, 0].numpy()


def show_holes(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``image`` with its holes (``mask`` < 0.5) in the hole colour: what the restoration sees."""
    if mask is None:
        return image
    return np.where(mask[..., None] < 0.5, np.array(HOLE_RGBA[:3], np.uint8), image[..., :3])


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, -1)
    if image.shape[-1] == 4:  # flatten transparency on white, as load_image does
        alpha = image[..., 3:].astype(np.float32) / 255
        return (image[..., :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    return image[..., :3]


def read_editor(value: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(image [H, W, 3] uint8, mask [H, W] float32 with 1 = observed, or None if nothing is painted)``."""
    if not value or value.get("background") is None:
        raise UIInputError("no image: upload one or pick a held-out example first")
    image = _rgb(np.asarray(value["background"]))
    h, w = image.shape[:2]
    holes = np.zeros((h, w), bool)
    for layer in value.get("layers") or []:
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[-1] != 4:
            continue
        painted = layer[..., 3] > 0
        lh, lw = painted.shape
        if (painted[h:].any() if lh > h else False) or (painted[:, w:].any() if lw > w else False):
            raise UIInputError(f"part of the mask is painted outside the {w}x{h} image; erase it or clear the mask")
        holes[:min(h, lh), :min(w, lw)] |= painted[:h, :w]
    return image, (None if not holes.any() else (~holes).astype(np.float32))


def restore_inputs(value: dict[str, Any] | None, task: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The observation ``[1, 3, H, W]`` in [-1, 1] and the mask ``[1, 1, H, W]`` (1 = observed) for ``task``."""
    from ganprior.images import from_uint8

    image, mask = read_editor(value)
    inpaint = has_kind(task, "inpaint")
    if inpaint and mask is None:
        raise UIInputError("the mask is empty: paint the holes (or use the centre/box preset) before running inpaint")
    if not inpaint and mask is not None:
        raise UIInputError("a mask is painted but the task has no inpainting: tick inpaint, or clear the mask")
    observation = from_uint8(image)
    return observation, None if mask is None else torch.from_numpy(mask)[None, None]
