"""What ``ganprior restore`` checks before torch and the model load: every input file, the mask and the
output folder, with messages in the command line's words. Torch-free, so a typo answers in well under a
second instead of after the 5-10 s a model load takes.

The API checks the same things again (``ganprior.api.restore``), in its own words; these checks are
deliberately lenient where only the task parser can tell (e.g. which of the two sizes a mask must have
in ``inpaint+sr4``): they refuse only what cannot work.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import click
import numpy as np

from ganprior.image_files import (CLI_NAMES, ImageLoadError, check_mask_coverage, image_size, is_mask_file,
                                  observed_from_file)

_SR_TOKEN = re.compile(r"(?:sr|superres|super-resolution)(\d+)?")


def check_images(paths: list[Path], max_pixels: int) -> tuple[dict[Path, tuple[int, int]], dict[Path, str]]:
    """Decode every image: (sizes of the good ones, error message of each bad one)."""
    sizes, errors = {}, {}
    for path in paths:
        try:
            sizes[path] = image_size(path, max_pixels, CLI_NAMES)
        except ImageLoadError as exc:
            errors[path] = str(exc)
    return sizes, errors


def _sr_factor(task: str, scale: int | None) -> int | None:
    """The task's ×f (1 without SR, None when only the task parser can tell)."""
    for token in task.lower().split("+"):
        match = _SR_TOKEN.fullmatch(token.strip())
        if match:
            return int(match.group(1)) if match.group(1) else scale
    return 1


def check_mask(mask: str | None, hole_value: str | None, task: str, scale: int | None,
               sizes: dict[Path, tuple[int, int]], max_pixels: int) -> tuple[str | None, dict[Path, str]]:
    """Refuse a mask that cannot work (UsageError); return (a warning or None, per-image size errors)."""
    inpaints = any(t.strip().lower().startswith("inpaint") for t in task.split("+"))
    if mask is None:
        if hole_value is not None:
            raise click.UsageError("--mask-hole-value says how to read a --mask file; give --mask too")
        if inpaints:
            raise click.UsageError("--task with inpaint needs --mask: a mask file (with --mask-hole-value) or a "
                                   "spec such as center or box:x0,y0,x1,y1")
        return None, {}
    if not inpaints:
        raise click.UsageError(f"--mask was given but --task {task} has no inpaint step")
    if not is_mask_file(mask):
        if hole_value is not None:
            raise click.UsageError(f"--mask-hole-value applies to mask files, not to the spec {mask!r}")
        return None, {}
    try:
        observed = observed_from_file(mask, hole_value, max_pixels=max_pixels, names=CLI_NAMES)
        warning = check_mask_coverage(observed, f"--mask {mask}", "--mask-hole-value")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return warning, _size_errors(mask, observed, _sr_factor(task, scale), sizes)


def _size_errors(mask: str, observed: np.ndarray, factor: int | None,
                 sizes: dict[Path, tuple[int, int]]) -> dict[Path, str]:
    mh, mw = observed.shape
    errors = {}
    for path, (h, w) in sizes.items():
        fits = (mh, mw) == (h, w) or (mh % h == 0 and mw % w == 0 and mh // h == mw // w)
        if factor is not None:
            fits = (mh, mw) in ((h, w), (h * factor, w * factor))
        if not fits:
            wanted = f"{w}x{h}" + (f" (or {w * factor}x{h * factor} for a mask before sr)" if factor not in (None, 1)
                                   else "")
            errors[path] = f"--mask {mask} is {mw}x{mh} (WxH) but the image is {w}x{h}; the mask must be {wanted}"
    return errors


def check_out(out_dir: Path) -> None:
    """The output folder exists (or can be made) and takes files."""
    if out_dir.exists() and not out_dir.is_dir():
        raise click.BadParameter(f"{out_dir} exists and is not a folder", param_hint="'--out'")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise click.BadParameter(f"cannot write into {out_dir}: {exc.strerror or exc}", param_hint="'--out'") from None
