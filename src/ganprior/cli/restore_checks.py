"""What ``ganprior restore`` checks before torch and the model load: every input file, the mask and the
output folder, with messages in the command line's words. Torch-free, so a typo answers in well under a
second instead of after the 5-10 s a model load takes.

The API checks the same things again (``ganprior.api.restore``), in its own words; these checks are
deliberately lenient where only the task parser can tell (e.g. which of the two sizes a mask must have
in ``inpaint+sr4``): they refuse only what cannot work.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import click
import numpy as np

from ganprior.image_files import (CLI_NAMES, ImageLoadError, check_mask_coverage, image_size, is_mask_file,
                                  observed_from_file)
from ganprior.tasks import IDENTITY_TASKS, UnknownTaskError, canonical_token, has_kind

_SR_TOKEN = re.compile(r"(?:sr|superres|super-resolution)(\d+)?")
_DEVICE = re.compile(r"(cpu|cuda|mps)(?::(\d+))?")


def check_task(task: str) -> None:
    """Refuse a task string the task parser will refuse for its words (UsageError), before torch loads."""
    tokens = [t.strip().lower() for t in task.split("+")]
    if len(tokens) == 1 and tokens[0] in IDENTITY_TASKS:
        return
    seen = set()
    for token in tokens:
        try:
            kind = canonical_token(token)[0]
        except UnknownTaskError as exc:
            raise click.BadParameter(str(exc), param_hint="'--task'") from None
        if kind in seen:
            raise click.BadParameter(f"{task!r} applies {kind!r} twice; each operator may appear once",
                                     param_hint="'--task'")
        seen.add(kind)


@lru_cache(maxsize=1)
def _registry() -> ModuleType:
    """``ganprior.loading.registry`` (torch-free) without running ``ganprior.loading``'s ``__init__``,
    which imports torch; the real module when it is already loaded."""
    if "ganprior.loading.registry" in sys.modules:
        return sys.modules["ganprior.loading.registry"]
    origin = Path(__file__).resolve().parents[1] / "loading" / "registry.py"
    spec = importlib.util.spec_from_file_location("_ganprior_registry_names", origin)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # (its dataclasses look their module up there)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def check_model(model: str | None, weights: str | None) -> None:
    """A registered model name or an existing file, as the loader will require (UsageError otherwise)."""
    if weights is not None and not Path(weights).expanduser().is_file():
        raise click.BadParameter(f"no such file: {weights}", param_hint="'--weights'")
    if model is None:
        return
    registry = _registry()
    if registry._looks_like_path(model):
        if weights is None and not Path(model).expanduser().exists():
            raise click.BadParameter(f"no such checkpoint file: {model}", param_hint="'--model'")
        return
    try:
        registry.get_spec(model)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--model'") from None


def _cuda_possible() -> bool:
    """False when this machine certainly has no CUDA device for torch (no NVIDIA driver, or a CPU-only
    torch build); True when only torch can tell."""
    if not (Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))):
        return platform.system() == "Windows"  # (no /proc there: let torch decide)
    try:
        from importlib.metadata import version

        return not version("torch").endswith("+cpu")
    except Exception:  # noqa: BLE001 - metadata missing: let torch decide
        return True


def check_device(device: str) -> None:
    """Refuse a device string that is not one, or one this machine certainly lacks, without torch
    (``ganprior restore`` still asks torch before the model moves)."""
    match = _DEVICE.fullmatch(device.strip().lower())
    if match is None:
        raise click.BadParameter(f"{device!r} is not a device (cpu, cuda, cuda:1, mps)", param_hint="'--device'")
    kind = match.group(1)
    if (kind == "cuda" and not _cuda_possible()) or (kind == "mps" and platform.system() != "Darwin"):
        raise click.BadParameter(f"no {device} device here; use --device cpu", param_hint="'--device'")


def check_mask_spec(mask: str, task: str, sizes: dict[Path, tuple[int, int]]) -> dict[Path, str]:
    """Refuse a mask spec the mask parser will refuse (UsageError); per-image errors for a box outside
    an image (checked where the image reaches inpainting at its own size: tasks without sr)."""
    text = mask.strip()
    kind, _, arg = text.partition(":")
    kind = kind.lower()
    if kind in ("center", "random-box", "strokes"):
        return {}
    if kind == "pixels":
        try:
            float(arg or 0.5)
        except ValueError:
            raise click.BadParameter(f"pixels:<fraction> needs a number, got {arg!r}", param_hint="'--mask'") from None
        return {}
    if kind != "box" and text.count(",") != 3:
        raise click.BadParameter(f"unknown mask spec {text!r}; known: center, box:x0,y0,x1,y1, random-box, "
                                 "strokes, pixels:<fraction>, or a mask file (with --mask-hole-value)",
                                 param_hint="'--mask'")
    parts = [p.strip() for p in (arg if kind == "box" else text).split(",")]
    if len(parts) != 4:
        raise click.BadParameter(f"box spec must be 'x0,y0,x1,y1' (4 numbers), got {text!r}", param_hint="'--mask'")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise click.BadParameter(f"box spec {text!r} has a non-numeric coordinate", param_hint="'--mask'") from None
    fractional = ["." in p or "e" in p.lower() for p in parts]
    if any(f and not 0 <= v <= 1 for f, v in zip(fractional, values)):
        raise click.BadParameter(f"box spec {text!r}: fractional coordinates must be in [0, 1]", param_hint="'--mask'")
    if _sr_factor(task, None) != 1:
        return {}
    errors = {}
    for path, (h, w) in sizes.items():
        x0, x1 = (round(values[i] * w) if fractional[i] else int(values[i]) for i in (0, 2))
        y0, y1 = (round(values[i] * h) if fractional[i] else int(values[i]) for i in (1, 3))
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            errors[path] = f"--mask {text} -> x {x0}..{x1}, y {y0}..{y1} is empty or outside the {w}x{h} image"
    return errors


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
    try:
        inpaints = has_kind(task, "inpaint")
    except UnknownTaskError as exc:
        raise click.UsageError(str(exc)) from None
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
        return None, check_mask_spec(mask, task, sizes)
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
    """The output folder exists and takes files, or can be made (its nearest existing parent takes
    folders); nothing is created here, so a refused run leaves nothing behind."""
    if out_dir.exists() and not out_dir.is_dir():
        raise click.BadParameter(f"{out_dir} exists and is not a folder", param_hint="'--out'")
    if not out_dir.exists():
        parent = next((p for p in out_dir.absolute().parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise click.BadParameter(f"cannot make {out_dir}: {parent} is not a writable folder", param_hint="'--out'")
        return
    try:
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise click.BadParameter(f"cannot write into {out_dir}: {exc.strerror or exc}", param_hint="'--out'") from None
