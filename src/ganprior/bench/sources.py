"""Where the benchmark's clean images come from: a folder, a list file, or the held-out emoji split.

* a folder: every image file in it (sorted, not recursive), no labels;
* a list file (``.txt``): one ``path [label]`` per line as DGP's ``imagenet_val_1k.txt``; relative
  paths are resolved against ``root`` (default: the list file's folder); ``#`` starts a comment;
* ``emoji-test``: the embedded model's held-out split (``ganprior/assets/emoji_test.npz``).

Every photo becomes a square clean image at the generator resolution the way DGP and CRI prepare
their targets: centre crop of the short side, then a Pillow-exact resize.

``limit`` keeps K images. When the source has labels they are spread over the classes (seeded
round-robin, :func:`spread_over_labels`), since sources are often sorted by class and the first K
would all be one category; without labels the first K are kept.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ganprior.images import ImageLoadError, from_uint8, load_image

EMOJI_TEST = "emoji-test"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class ImageSourceError(ValueError):
    """The image source is missing, empty or malformed."""


@dataclass(frozen=True)
class BenchImage:
    """One clean test image ``[1, 3, R, R]`` in ``[-1, 1]``, its stable id and optional class label."""

    id: str
    clean: torch.Tensor
    label: int | None
    source: str

    @property
    def digest(self) -> str:
        """Content hash of the quantised pixels (a changed image never reuses old cells)."""
        pixels = ((self.clean + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return hashlib.sha256(pixels.numpy().tobytes()).hexdigest()[:16]


def to_square(image: torch.Tensor, resolution: int, kernel: str = "bicubic") -> torch.Tensor:
    """Centre crop of the short side, resized to ``resolution`` (Pillow-exact ``kernel``)."""
    from ganprior.degradations import resize

    h, w = image.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[..., top:top + side, left:left + side]
    if side != resolution:
        square = resize(square, (resolution, resolution), kernel).clamp(-1, 1)
    return square


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "image"


def _unique_ids(names: list[str]) -> list[str]:
    ids = [_safe_id(n) for n in names]
    if len(set(ids)) != len(ids):
        raise ImageSourceError("several images map to the same id (same file name); give them distinct names")
    return ids


def _read_list(path: Path, root: Path | None) -> list[tuple[Path, int | None, str]]:
    base = root if root is not None else path.parent
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.rsplit(maxsplit=1)
        label = None
        if len(parts) == 2 and re.fullmatch(r"-?\d+", parts[1]):
            label = int(parts[1])
            text = parts[0]
        elif len(parts) == 2 and not (base / text).exists():
            raise ImageSourceError(f"{path}:{number}: expected 'path [integer label]', got {line.strip()!r}")
        entries.append((base / text, None if label is None or label < 0 else label, text))
    if not entries:
        raise ImageSourceError(f"list file {path} names no images")
    return entries


def spread_over_labels(labels: Sequence[int | None], limit: int | None, seed: int = 0) -> list[int]:
    """Indices (ascending) of ``limit`` items taken round-robin over the classes.

    The order of the classes and of the items inside each class is a seeded shuffle, so the choice is
    deterministic and not biased towards the first class or the first items. Unlabelled items form one
    more class; with no labels at all (or no limit) the first ``limit`` items are kept.
    """
    if limit is None or limit >= len(labels):
        return list(range(len(labels)))
    if all(label is None for label in labels):
        return list(range(limit))
    rng = np.random.default_rng(seed)
    groups: dict[int | None, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(label, []).append(index)
    members = list(groups.values())
    queues = [rng.permutation(members[k]) for k in rng.permutation(len(members))]
    round_robin = [int(q[r]) for r in range(max(map(len, queues))) for q in queues if r < len(q)]
    return sorted(round_robin[:limit])


def _emoji_images(resolution: int, limit: int | None, seed: int) -> list[BenchImage]:
    from ganprior.data.emoji import EmojiDataError, load_emoji_test

    try:
        data = load_emoji_test(resolution if resolution in (32, 64) else 64)
    except (EmojiDataError, ValueError) as err:
        raise ImageSourceError(f"the {EMOJI_TEST} source is unavailable: {err}") from err
    out = []
    for i in spread_over_labels([int(label) for label in data.labels], limit, seed):
        clean = to_square(from_uint8(data.images[i]), resolution)
        label = int(data.labels[i])
        out.append(BenchImage(f"emoji{i:04d}", clean, label, f"{EMOJI_TEST}[{i}] {data.classes[label]}"))
    return out


def load_images(spec: str | Path, resolution: int, *, limit: int | None = None, root: str | Path | None = None,
                resize_kernel: str = "bicubic", seed: int = 0) -> list[BenchImage]:
    """The clean images of ``spec`` (folder, list file or ``emoji-test``), at most ``limit`` of them,
    spread over the classes when there are labels (``seed`` picks which)."""
    if limit is not None and limit < 1:
        raise ImageSourceError(f"--limit must be at least 1, got {limit}")
    if str(spec) == EMOJI_TEST:
        return _emoji_images(resolution, limit, seed)
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImageSourceError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        entries = [(f, None, f.name) for f in files]
    elif path.is_file():
        entries = _read_list(path, Path(root) if root is not None else None)
    else:
        raise ImageSourceError(f"image source {spec} is neither a folder, a list file nor '{EMOJI_TEST}'")
    entries = [entries[i] for i in spread_over_labels([label for _, label, _ in entries], limit, seed)]
    ids = _unique_ids([Path(name).stem for _, _, name in entries])
    images = []
    for (file, label, _), image_id in zip(entries, ids):
        try:
            clean = to_square(load_image(file), resolution, resize_kernel)
        except ImageLoadError as err:
            raise ImageSourceError(str(err)) from err
        images.append(BenchImage(image_id, clean, label, str(file)))
    return images
