"""Images of the sample maps: colour-mapped tensors for sheets, and the maps with a colour bar.

Maps are drawn with matplotlib's perceptually uniform ``magma`` (0 = black). ``uncertainty.png`` and
``hallucination.png`` carry a colour bar in grey levels (0..255 scale), so two runs can be compared.
"""

from __future__ import annotations

import io
import os
from typing import Sequence

import numpy as np
import torch

from ganprior.atomic import atomic_path
from ganprior.images import make_sheet, mark_holes

COLOUR_MAP = "magma"


def _scale(values: torch.Tensor, vmax: float | None) -> float:
    top = float(values.max()) if vmax is None else float(vmax)
    return top if top > 0 else 1.0


def heatmap(values: torch.Tensor, vmax: float | None = None) -> torch.Tensor:
    """``[1, 1, H, W]`` non-negative map -> ``[1, 3, H, W]`` colour image in [-1, 1] (``vmax`` = brightest)."""
    from matplotlib import colormaps

    top = _scale(values, vmax)
    rgb = colormaps[COLOUR_MAP](np.clip(values[0, 0].detach().float().cpu().numpy() / top, 0.0, 1.0))[..., :3]
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() * 2 - 1


def overlay(image: torch.Tensor, values: torch.Tensor, vmax: float | None = None, strength: float = 0.7) -> torch.Tensor:
    """``image`` with the map blended in where it is large (opacity grows with the map's value)."""
    alpha = (values / _scale(values, vmax)).clamp(0, 1) * strength
    return image[:, :3] * (1 - alpha) + heatmap(values, vmax).to(image) * alpha


def save_map(values: torch.Tensor, path: str | os.PathLike, title: str, vmax: float | None = None) -> None:
    """The map at its own pixel size (at least 256 px wide) with a labelled colour bar, written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    data = values[0, 0].detach().float().cpu().numpy()
    h, w = data.shape
    inches = max(2.56, w / 100)
    fig = Figure(figsize=(inches * 1.3, inches * h / w + 0.5), dpi=100)
    ax = fig.add_subplot()
    shown = ax.imshow(data, cmap=COLOUR_MAP, vmin=0.0, vmax=_scale(values, vmax), interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04).set_label("grey levels (0..255)", fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def samples_sheet(observation: torch.Tensor, samples: Sequence[torch.Tensor], uncertainty: torch.Tensor,
                  hallucination_map: torch.Tensor, mean: torch.Tensor, mask: torch.Tensor | None,
                  path: str | os.PathLike | None = None):
    """Observation | sample 1..K | mean, then uncertainty | sample 1's hallucination overlaid on it."""
    shown = observation if mask is None else mark_holes(observation, mask)
    top = [shown, *samples, mean]
    labels_top = ["observation", *(f"sample {k + 1}" for k in range(len(samples))), "mean"]
    u_max, h_max = float(uncertainty.max()), float(hallucination_map.max())
    bottom = [heatmap(uncertainty), overlay(samples[0], hallucination_map)]
    labels_bottom = [f"uncertainty (max {u_max:.1f}/255)", f"sample 1 hallucination\n(max {h_max:.1f}/255)"]
    bottom += [torch.ones_like(mean)] * (len(top) - len(bottom))
    labels_bottom += [""] * (len(top) - len(labels_bottom))
    return make_sheet([top, bottom], [labels_top, labels_bottom], path)
