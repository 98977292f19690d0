"""``restore --faces``: restore every face of a photo with a face model (FFHQ-style StyleGAN).

1. Find the faces and their 68 landmarks on the observation (``detect.py``).
2. Align each face with the FFHQ recipe (``align.py``) at the model's resolution. The degradation
   goes with it: a low-resolution photo gives a low-resolution crop of the same quad (the crop is
   ``R / factor`` px, the task is unchanged), a whole-photo inpainting mask is warped into the crop
   (nearest), and crop pixels beyond the photo border become holes.
3. Restore each crop with :func:`ganprior.restore`.
4. Paste each restored face back through the inverse warp with a feathered mask; outside the faces
   the output is the observation itself (bicubically enlarged for SR), pixel for pixel.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganprior.atomic import atomic_directory
from ganprior.degradations import parse_task, resize
from ganprior.image_files import DEFAULT_MAX_PIXELS
from ganprior.faces.align import FaceQuad, align, ffhq_quad, paste
from ganprior.models.prior import GenerativePrior


class NoFaceError(ValueError):
    """The photo has no face the detector can find."""


@dataclass
class Face:
    box: tuple[int, int, int, int]  # in the observation's pixels
    landmarks: np.ndarray  # [68, 2] in the observation's pixels
    quad: FaceQuad  # in the output's pixels
    result: Any  # the crop's RestorationResult


@dataclass
class FacesResult:
    image: torch.Tensor  # [1, 3, H·f, W·f]
    observation: torch.Tensor
    faces: list[Face]
    alpha: torch.Tensor  # [1, 1, H·f, W·f] union of the paste weights (0 = untouched)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def class_index(self) -> int | None:
        return self.faces[0].result.class_index

    @property
    def timings(self) -> dict[str, float]:
        return {"total": self.config.get("total_s", 0.0)}

    @property
    def stopped(self) -> str | None:
        reasons = [f"face {i}: {f.result.stopped}" for i, f in enumerate(self.faces) if f.result.stopped]
        return "; ".join(reasons) or None

    def summary(self) -> dict[str, Any]:
        return {"config": self.config, "faces": [
            {"dir": f"face_{i}", "box": list(f.box), "landmarks": f.landmarks.round(2).tolist(),
             "quad": f.quad.corners.round(3).tolist(), "class_index": f.result.class_index,
             "timings": f.result.timings} for i, f in enumerate(self.faces)],
            "pasted_pixels": int((self.alpha > 0).sum())}

    def save(self, directory: str | os.PathLike, video: bool = False) -> Path:
        """Run directory: restored.png (photo size), degraded.png, run.json and one ``face_<i>/`` run
        directory per face (its aligned crop restored); written in a temporary folder, then renamed."""
        from ganprior.images import save_image

        with atomic_directory(directory) as tmp:
            for i, face in enumerate(self.faces):
                face.result.save(tmp / f"face_{i}", video=video)
            save_image(self.image, tmp / "restored.png")
            save_image(self.observation, tmp / "degraded.png")
            (tmp / "run.json").write_text(json.dumps(self.summary(), indent=1, default=str))
        return Path(directory)


def faces_fingerprint(wanted: dict[str, Any]) -> dict[str, Any]:
    """:func:`ganprior.api.restore_fingerprint` of the same arguments, marked as a ``--faces`` run."""
    return {**wanted, "digest": f"{wanted['digest']}-faces", "parts": {**wanted.get("parts", {}), "faces": True}}


def restore_faces(
    image: torch.Tensor | str | os.PathLike,
    task: str = "inpaint",
    method: str = "cri",
    model: GenerativePrior | str | None = None,
    *,
    mask: torch.Tensor | str | None = None,
    mask_hole_value: str | None = None,
    scale: int | None = None,
    seed: int = 0,
    max_faces: int = 8,
    upsample: int = 1,
    device: str = "cpu",
    value_range: tuple[float, float] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    **restore_options: Any,
) -> FacesResult:
    """Restore each face of a degraded photo (see the module docstring); ``restore_options`` go to
    :func:`ganprior.restore` for every crop (``steps``, ``preset``, ``class_index``, ...)."""
    from ganprior.api import _inpainting_mask, _sr_factor, load_prior, restore, restore_fingerprint
    from ganprior.faces.detect import find_faces
    from ganprior.inputs import RestorationInputError, load_observation

    started = time.perf_counter()
    observation, source = load_observation(image, value_range, max_pixels)
    if observation.shape[1] == 1:
        observation = observation.expand(-1, 3, -1, -1)
    prior = model if isinstance(model, GenerativePrior) else load_prior(model, device=device)
    observation = observation.to(prior.device)
    h, w = observation.shape[-2:]
    probe_mask = torch.ones(1, 1, 1, 1) if mask is not None else None
    factor = _sr_factor(parse_task(task, mask=probe_mask, scale=scale))
    R = prior.resolution
    if R % factor:
        raise RestorationInputError(f"--faces: the model's {R} px crops cannot be observed at 1/{factor} scale")
    full = parse_task(task, mask=mask, scale=scale, image_size=(h * factor, w * factor),
                      mask_hole_value=mask_hole_value, seed=seed).to(prior.device)
    found = find_faces(observation, upsample)[:max_faces]
    if not found:
        raise NoFaceError(f"no face found in {source or 'the photo'} (dlib HOG detector, upsample {upsample}); "
                          "--faces needs a photo with a frontal face of about 40 px or more")
    photo_mask = _inpainting_mask(full)
    out_h, out_w = h * factor, w * factor
    background = observation if factor == 1 else resize(observation, (out_h, out_w), "bicubic")
    canvas, alpha_all, faces = background.clone(), torch.zeros(1, 1, out_h, out_w, device=prior.device), []
    for box, landmarks in found:
        quad_obs = ffhq_quad(landmarks)
        quad_out = quad_obs.scaled(factor)
        crop, inside = align(observation, quad_obs, R // factor)
        crop_task, crop_mask = task, None
        if photo_mask is not None:
            m_scale = photo_mask.shape[-2] / out_h
            size = round(R * m_scale)
            warped = align(photo_mask.float(), quad_out.scaled(m_scale), size, mode="nearest")[0]
            crop_mask = ((warped > 0.5) & (resize(inside, (size, size), "area") > 0.999)).float()
        elif bool((inside < 1).any()):
            crop_task, crop_mask = f"{task}+inpaint", inside
        result = restore(crop, task=crop_task, method=method, model=prior, mask=crop_mask, scale=scale, seed=seed,
                         value_range=(-1.0, 1.0), **restore_options)
        canvas, alpha = paste(canvas, result.image, quad_out)
        alpha_all = torch.maximum(alpha_all, alpha)
        faces.append(Face(box, landmarks, quad_out, result))
    fused = full.fuse(canvas, observation).clamp(-1, 1)
    final = torch.where(alpha_all > 0, fused, background)
    config = {"task": task, "method": method, "faces_found": len(found), "factor": factor, "resolution": R,
              "input": source, "input_size": [int(h), int(w)], "output_size": [out_h, out_w], "seed": seed,
              "alignment": "FFHQ (dlib 68 landmarks, eyes/mouth quad)", "detector": "dlib HOG",
              "upsample": upsample, "total_s": time.perf_counter() - started,
              "fingerprint": faces_fingerprint(restore_fingerprint(
                  image, task, method, prior, mask=mask, mask_hole_value=mask_hole_value, scale=scale, seed=seed,
                  value_range=value_range, max_pixels=max_pixels, **restore_options))}
    return FacesResult(final, observation, faces, alpha_all, config)
