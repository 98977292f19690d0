"""What ``ganprior.restore`` accepts as a photo, and the digests that make a run's fingerprint.

A photo is a path, a PIL image, a numpy array (``H x W`` or ``H x W x C``) or a tensor (``[1, C, H, W]`` or
``[C, H, W]``), C = 1 or 3. Integer data (uint8: 0..255, uint16: 0..65535) has an obvious range; float
data must say its range (``value_range=(0, 1)``, ``(-1, 1)``, ``(0, 255)``) or be unmistakably in
``[-1, 1]`` (it has negative values). Values well outside the range are refused, never clipped silently.
"""

from __future__ import annotations

import hashlib
import os
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganprior.image_files import DEFAULT_MAX_PIXELS

#: how far (as a fraction of the range) values may stray outside ``value_range``: resampled observations
#: overshoot a little (bicubic ringing of a ×4 SR input reaches ~1.07 on [-1, 1]); data in another range
#: (0..255 given as [-1, 1], [-1, 1] given as [0, 1]) is far outside
RANGE_TOLERANCE = 0.25


class RestorationInputError(ValueError):
    """The photo, mask or options given to ``restore`` cannot be used."""


def _as_tensor(image: Any) -> torch.Tensor:
    """numpy ``H x W (x C)`` / PIL / tensor -> ``[1, C, H, W]`` tensor of the data's own dtype."""
    from PIL import Image

    if isinstance(image, Image.Image):
        from ganprior.image_files import rgb_alpha

        rgb, _ = rgb_alpha(image)
        return torch.from_numpy(np.ascontiguousarray(rgb)).float().permute(2, 0, 1)[None] * 255.0
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.shape[2] not in (1, 3):
            raise RestorationInputError(f"a numpy image must be H x W or H x W x 3 (or x 1), got shape {image.shape}")
        if image.dtype == np.uint16:
            image = image.astype(np.int32)
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    if not isinstance(image, torch.Tensor):
        raise RestorationInputError("image must be a path, a PIL image, a numpy array or a tensor, "
                                    f"got {type(image).__name__}")
    x = image[None] if image.ndim == 3 else image
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 3):
        raise RestorationInputError(f"image tensor must be [1, 3, H, W] (or [3, H, W], 1 channel for grey), "
                                    f"got {tuple(image.shape)}")
    return x.detach().cpu()


def _data_range(x: torch.Tensor, source: Any, value_range: tuple[float, float] | None) -> tuple[float, float]:
    from PIL import Image

    if value_range is not None:
        lo, hi = (float(v) for v in value_range)
        if not hi > lo:
            raise RestorationInputError(f"value_range must be (low, high) with high > low, got {value_range}")
        return lo, hi
    if isinstance(source, Image.Image) or x.dtype == torch.uint8:
        return 0.0, 255.0
    if isinstance(source, np.ndarray) and source.dtype == np.uint16:
        return 0.0, 65535.0
    if not x.is_floating_point():
        raise RestorationInputError(f"{x.dtype} image data: say its range with value_range=(low, high)")
    if float(x.min()) < 0:
        return -1.0, 1.0
    raise RestorationInputError(
        f"a float image with values in [{float(x.min()):.3g}, {float(x.max()):.3g}] is ambiguous: pass "
        "value_range=(0, 1), (0, 255) or (-1, 1)")


def load_observation(image: Any, value_range: tuple[float, float] | None = None,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[torch.Tensor, str | None]:
    """Any accepted photo -> (``[1, C, H, W]`` float32 in [-1, 1], the source path or None)."""
    if isinstance(image, (str, os.PathLike)):
        from ganprior.images import load_image

        if value_range is not None:
            raise RestorationInputError("value_range applies to arrays and tensors; a file's range is its own")
        return load_image(image, max_pixels), str(image)
    x = _as_tensor(image)
    lo, hi = _data_range(x, image, value_range)
    x = x.float()
    if not torch.isfinite(x).all():
        raise RestorationInputError("the image contains NaN or infinite values")
    slack = RANGE_TOLERANCE * (hi - lo)
    if float(x.min()) < lo - slack or float(x.max()) > hi + slack:
        raise RestorationInputError(
            f"image values span [{float(x.min()):.4g}, {float(x.max()):.4g}], outside value_range=({lo:g}, {hi:g}); "
            "pass the range the data is in")
    if (lo, hi) != (-1.0, 1.0):  # (the identity map is skipped: (x + 1) - 1 is not exactly x in float32)
        x = (x - lo) * (2.0 / (hi - lo)) - 1.0
    return x, None  # kept as observed (overshoot included), not clipped


def tensor_digest(x: torch.Tensor) -> str:
    t = x.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha256(str(tuple(t.shape)).encode())
    digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def mask_digest(mask: Any, hole_value: str | None) -> str | None:
    """What identifies a mask argument: its pixels (tensor or file bytes, with the hole value) or its spec."""
    if mask is None:
        return None
    if isinstance(mask, torch.Tensor):
        return f"tensor:{tensor_digest(mask)}"
    path = Path(str(mask))
    if path.is_file():
        return f"file:{hashlib.sha256(path.read_bytes()).hexdigest()}:{hole_value}"
    return f"spec:{mask}"


_MODEL_DIGESTS: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def model_digest(prior: Any) -> str:
    """SHA-256 of the generator's weights (computed once per prior object: restoring never changes them)."""
    if prior not in _MODEL_DIGESTS:
        from ganprior.methods.centroids import model_fingerprint

        _MODEL_DIGESTS[prior] = model_fingerprint(prior)
    return _MODEL_DIGESTS[prior]
