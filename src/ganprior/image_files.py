"""Reading image and mask files without torch: the one decoder behind ``load_image``/``load_mask`` and
the CLI's checks that run before torch and the model load (so a bad file answers in well under a second).

Error messages name the option of the interface the value came through: pass ``names=CLI_NAMES`` from the
command line, the default ``API_NAMES`` from Python.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: refuse images with more pixels than this unless the caller raises it (about 8k x 8k)
DEFAULT_MAX_PIXELS = 64_000_000
HOLE_VALUES = ("black", "white", "transparent")
#: how a run folder's ``mask.png`` marks holes (white = observed, like the tensors' 1 = observed)
RUN_MASK_HOLE_VALUE = "black"

#: how each interface spells the options an input error may name
API_NAMES: Mapping[str, str] = {"max_pixels": "max_pixels=", "hole_value": "mask_hole_value=", "mask": "mask="}
CLI_NAMES: Mapping[str, str] = {"max_pixels": "--max-pixels ", "hole_value": "--mask-hole-value ", "mask": "--mask "}

PathLike = str | os.PathLike


class ImageLoadError(ValueError):
    """An image or mask file is missing, unreadable, corrupt, or too large to decode safely."""


class MaskSizeError(ValueError):
    """A mask does not have the size of the image it belongs to."""


class MaskPolarityError(ImageLoadError):
    """A mask file whose holes cannot be told apart without (or despite) the stated hole value."""


class MaskCoverageError(ValueError):
    """A mask with no observed pixel at all: there is nothing to restore from."""


def option(names: Mapping[str, str], key: str) -> str:
    """The bare option name (``--max-pixels``, ``max_pixels``) for a message."""
    return names[key].rstrip("= ")


#: mask spec kinds (``ganprior.degradations.masks.mask_from_spec``); anything else with a suffix is a file
MASK_SPEC_KINDS = ("center", "box", "random-box", "strokes", "pixels")


def is_mask_file(mask: str | os.PathLike) -> bool:
    """Whether a ``--mask`` value names a file (read with a hole value) rather than a spec like ``center``."""
    text = str(mask).strip()
    return text.partition(":")[0].lower() not in MASK_SPEC_KINDS and bool(Path(text).suffix)


def open_image(path: PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
               names: Mapping[str, str] = API_NAMES) -> Image.Image:
    """Open, size-check before decoding (decompression-bomb guard), decode, apply EXIF rotation.

    Our ``max_pixels`` check replaces Pillow's warning and its hard limit (off for the open,
    see :func:`_without_pillow_limit`).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"cannot load {path}: no such file")
    if not os.access(path, os.R_OK):
        raise ImageLoadError(f"cannot load {path}: permission denied")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _without_pillow_limit(), Image.open(path) as opened:
                w, h = opened.size
                if w * h > max_pixels:
                    raise ImageLoadError(
                        f"cannot load {path}: {w}x{h} = {w * h:,} pixels exceeds {names['max_pixels']}{max_pixels:,} "
                        f"(decompression-bomb guard; raise {option(names, 'max_pixels')} if the file is trusted)"
                    )
                opened.load()
                # a new image (a copy when there is nothing to turn), so the file closes with the block
                # (multi-frame files such as GIFs keep theirs open otherwise)
                return ImageOps.exif_transpose(opened)
    except ImageLoadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageLoadError(f"cannot load {path}: {type(err).__name__}: {err}") from err


_PILLOW_LIMIT = threading.Lock()


@contextlib.contextmanager
def _without_pillow_limit() -> Iterator[None]:
    """Pillow's own bomb limit (it refuses twice ``Image.MAX_IMAGE_PIXELS`` inside ``Image.open``) off for
    one open: our ``max_pixels`` check follows at once, before any pixel is decoded, so its message (with
    the ``--max-pixels`` hint) always answers first and a raised ``--max-pixels`` is honoured."""
    with _PILLOW_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def rgb_alpha(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any Pillow mode -> (``H x W x 3`` float in [0, 1], alpha ``H x W`` in [0, 1] or None)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        gray = np.asarray(img, dtype=np.float64) / 65535.0  # 16-bit grey PNGs decode as these modes
        return np.repeat(gray[..., None], 3, axis=2).clip(0, 1), None
    if img.mode == "F":
        gray = np.asarray(img, dtype=np.float64).clip(0, 1)
        return np.repeat(gray[..., None], 3, axis=2), None
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    rgba = np.asarray(img.convert("RGBA" if has_alpha else "RGB"), dtype=np.float64) / 255.0
    return rgba[..., :3], (rgba[..., 3] if has_alpha else None)


def image_size(path: PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, names: Mapping[str, str] = API_NAMES) -> tuple[int, int]:
    """(H, W) of an image file after decoding it fully (so corrupt files are caught here)."""
    img = open_image(path, max_pixels, names)
    return img.height, img.width


def observed_from_file(path: PathLike, hole_value: str | None, threshold: float = 0.5,
                       max_pixels: int = DEFAULT_MAX_PIXELS, names: Mapping[str, str] = API_NAMES) -> np.ndarray:
    """A mask file as an ``H x W`` bool array, True = observed, with the one polarity rule of the package.

    ``hole_value`` must be stated (both conventions are common): ``"black"`` (dark pixels are holes),
    ``"white"`` (bright pixels are holes) or ``"transparent"`` (alpha below ``threshold``). A file with
    transparent pixels read as black/white holes is ambiguous and refused too.
    """
    if hole_value is None:
        raise MaskPolarityError(f"mask file {path}: say which pixels are holes with "
                                f"{names['hole_value']}black, white or transparent")
    if hole_value not in HOLE_VALUES:
        raise MaskPolarityError(f"{option(names, 'hole_value')} must be black, white or transparent, got {hole_value!r}")
    rgb, alpha = rgb_alpha(open_image(path, max_pixels, names))
    if hole_value == "transparent":
        if alpha is None:
            raise MaskPolarityError(f"mask {path} has no alpha channel, so {names['hole_value']}transparent "
                                    "cannot apply; say black or white")
        return alpha >= threshold
    if alpha is not None and bool((alpha < threshold).any()):
        raise MaskPolarityError(f"mask {path} has transparent pixels as well as {hole_value} ones: ambiguous; "
                                f"pass {names['hole_value']}transparent or flatten the file")
    gray = rgb.mean(axis=2)
    return gray >= threshold if hole_value == "black" else gray <= threshold


def check_mask_coverage(observed: np.ndarray, what: str = "the mask", hole_option: str | None = None) -> str | None:
    """Refuse a mask that is all hole (:class:`MaskCoverageError`); return a warning for one without any
    hole (else None). ``what`` names the mask as the user gave it (``--mask holes.png``)."""
    hint = f" (wrong {hole_option}?)" if hole_option else ""
    if not observed.any():
        raise MaskCoverageError(f"{what} marks every pixel as a hole: nothing is observed to restore from{hint}")
    if observed.all():
        return f"{what} has no hole: inpainting keeps every pixel as it is{hint}"
    return None
