"""A finished restoration in the page: its run folder (with the mask and the reference), the metrics
``ganprior score`` would print for it, a summary (class, score, timings) and the folder as a zip."""

from __future__ import annotations

import itertools
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganprior.atomic import atomic_path

_RUN_NUMBERS = itertools.count(1)


def save_run(result: Any, root: Path, mask: torch.Tensor | None, reference: np.ndarray | None) -> Path:
    """The run directory (``RestorationResult.save``) plus ``mask.png`` (white = observed) and
    ``reference.png`` (the image as loaded, before any simulated degradation) when there are ones."""
    from ganprior.images import save_image

    directory = root / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{next(_RUN_NUMBERS):03d}"
    result.save(directory)
    if mask is not None:
        save_image(mask.expand(-1, 3, -1, -1) * 2 - 1, directory / "mask.png")
    if reference is not None:
        from ganprior.images import from_uint8

        save_image(from_uint8(reference), directory / "reference.png")
    return directory


def score_run(directory: Path) -> dict[str, Any]:
    """What ``ganprior score restored.png [--ref reference.png --mask mask.png]`` reports for the run."""
    from ganprior.cli.score import Scores, score_image
    from ganprior.metrics.images import MetricInputError, load_image

    scores = Scores()
    image = load_image(directory / "restored.png")
    ref_file, mask_file = directory / "reference.png", directory / "mask.png"
    ref = load_image(ref_file) if ref_file.is_file() else None
    if ref is not None and ref.shape[-2:] != image.shape[-2:]:
        scores.unavailable["reference"] = (f"the reference is {tuple(ref.shape[-2:])}, the result "
                                           f"{tuple(image.shape[-2:])}: full-reference metrics need the same size")
        ref = None
    mask = mask_file if ref is not None and mask_file.is_file() else None
    try:
        score_image(scores, image, ref, mask, "alex")
    except MetricInputError as exc:
        scores.unavailable["all"] = str(exc)
    return scores.as_dict()


def zip_run(directory: Path) -> Path:
    """``<run>.zip`` next to the run folder, written atomically."""
    target = directory.with_suffix(".zip")
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, Path(directory.name) / path.relative_to(directory))
    return target


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summary_markdown(result: Any, scores: dict[str, Any], class_names: list[str]) -> str:
    """Class (and its score), stop reason, metrics and timings as a Markdown block."""
    r = result.result
    name = class_names[r.class_index] if r.class_index is not None and r.class_index < len(class_names) else None
    cls = "none (unconditional model)" if r.class_index is None else f"{r.class_index}" + (f" · {name}" if name else "")
    lines = [f"**Class:** {cls} — chosen by {r.class_source or 'n/a'}"
             + (f", score {_fmt(r.class_score)}" if r.class_score is not None else "")]
    if r.stopped:
        lines.append(f"**Stopped:** {r.stopped}")
    metrics = scores.get("metrics", {})
    if metrics:
        lines += ["", "| metric | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
    if scores.get("unavailable"):
        lines += ["", "Unavailable: " + "; ".join(f"{k}: {v}" for k, v in scores["unavailable"].items())]
    lines += ["", "**Timings (s):** " + ", ".join(f"{k} {v:.2f}" for k, v in r.timings.items())]
    return "\n".join(lines)
