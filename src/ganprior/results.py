"""A finished restoration and its run directory.

``RestorationResult.save(dir)`` writes, all at once or not at all (everything goes to a hidden
temporary folder next to ``dir`` that is renamed into place at the end):

  restored.png            the restored photo at its own size (× the SR factor), fused with the observation
  generator.png           the generator's own output at that size, before fusion
  degraded.png            the observation as given
  mask.png                inpainting only: the mask (white = observed, black = hole; run.json says so)
  sheet.png               degraded (holes drawn in magenta) | restored, side by side
  latent.pt               the final W+ latent ``[1, num_ws, w_dim]`` (torch.save)
  generator_delta.safetensors   tuned − original for every generator tensor pivotal tuning changed
                          (absent when the generator was not tuned), stored as float16 (half the size:
                          2.7 MB instead of 5.4 MB for emoji32; renders within 0.001/255 of float32);
                          add it to the original state dict
  run.json                configuration, seed, class (+ score and how it was found), timings per stage,
                          loss curve, early-stop reason
  optimisation.gif        the optimisation, one frame every few steps (only with ``video=True``)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ganprior.atomic import atomic_directory, atomic_path
from ganprior.image_files import RUN_MASK_HOLE_VALUE
from ganprior.methods.base import Result
from ganprior.resume import RUN_FILE

MASK_FILE = "mask.png"  # holes black: --mask-hole-value RUN_MASK_HOLE_VALUE reads it back (restore, score)


@dataclass
class RestorationResult:
    """What :func:`ganprior.restore` returns."""

    image: torch.Tensor  # [1, 3, H, W] fused, at the photo's size (× SR factor)
    generator_output: torch.Tensor  # the generator's image at the same size, before fusion (generator.png)
    observation: torch.Tensor  # the degraded photo as given
    result: Result  # the method's generator-space result (latent, delta, losses, ...)
    config: dict[str, Any] = field(default_factory=dict)
    canvas_target: torch.Tensor | None = None  # the observation placed on the generator canvas
    canvas_weight: torch.Tensor | None = None  # its loss weights (0 = padding / unobserved)
    #: RMSE (0..255) between the degraded ``image`` and the observation: ~0 for every linear task
    consistency_rmse: float | None = None
    #: inpainting mask (1 = observed, 0 = hole) at the size of the image reaching inpainting (mask.png)
    mask: torch.Tensor | None = None

    @property
    def latent(self) -> torch.Tensor:
        return self.result.latent

    @property
    def class_index(self) -> int | None:
        return self.result.class_index

    @property
    def timings(self) -> dict[str, float]:
        return self.result.timings

    @property
    def losses(self) -> list[dict[str, Any]]:
        return self.result.losses

    @property
    def stopped(self) -> str | None:
        return self.result.stopped

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable record of the run (the content of run.json)."""
        r = self.result
        return {
            "config": self.config,
            "seed": self.config.get("seed"),
            "class": {"index": r.class_index, "score": r.class_score, "source": r.class_source},
            "consistency_rmse": self.consistency_rmse,
            "mask": None if self.mask is None else {
                "file": MASK_FILE, "hole_value": RUN_MASK_HOLE_VALUE, "size": list(self.mask.shape[-2:]),
                "hole_pixels": int((self.mask < 0.5).sum())},
            "timings": r.timings,
            "stopped": r.stopped,
            "interrupted": r.interrupted,
            "extras": r.extras,
            "losses": r.losses,
            "tuned_tensors": sorted(r.generator_delta),
        }

    def save(self, directory: str | os.PathLike, video: bool = False) -> Path:
        """Write the run directory atomically (see module doc); replaces an existing one."""
        from ganprior.images import make_sheet, mark_holes, save_image

        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            save_image(self.image, tmp / "restored.png")
            save_image(self.generator_output, tmp / "generator.png")
            save_image(self.observation, tmp / "degraded.png")
            degraded, caption = self.observation, "degraded"
            if self.mask is not None:
                save_image(self.mask, tmp / MASK_FILE, value_range=(0.0, 1.0))
                degraded, caption = mark_holes(self.observation, self.mask), "degraded (holes: magenta)"
            make_sheet([[degraded, self.image]], [caption, "restored"], tmp / "sheet.png")
            torch.save(self.result.latent.detach().cpu(), tmp / "latent.pt")
            if self.result.generator_delta:
                with atomic_path(tmp / "generator_delta.safetensors") as delta_file:  # (safetensors writes 0600)
                    save_file(compact_delta(self.result.generator_delta), str(delta_file),
                              metadata={"meaning": "tuned minus original; add to the original state dict",
                                        "stored": "float16 where the values fit"})
            if video and self.result.frames:
                _save_gif(self.result.frames, tmp / "optimisation.gif")
            (tmp / RUN_FILE).write_text(json.dumps(self.summary(), indent=1, default=_jsonable))
        return directory


#: float16 holds deltas up to this size (its largest finite value is 65504)
_HALF_MAX = 6.0e4


def compact_delta(delta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The generator delta in float16 (a fine-tuning delta is small: its rounding is far below a pixel
    level); tensors that are not float, or too large for float16, stay as they are."""
    def half(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu().contiguous()
        fits = t.is_floating_point() and t.dtype != torch.float16 and bool(t.abs().max() <= _HALF_MAX) if t.numel() \
            else False
        return t.to(torch.float16) if fits else t

    return {k: half(v) for k, v in delta.items()}


def _save_gif(frames: list[torch.Tensor], path: Path) -> None:
    from ganprior.images import tensor_to_pil

    images = [tensor_to_pil(f.clamp(-1, 1)) for f in frames]
    scale = max(1, 128 // images[0].width)
    images = [im.resize((im.width * scale, im.height * scale)) for im in images]
    images[0].save(path, save_all=True, append_images=images[1:], duration=80, loop=0)


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)
