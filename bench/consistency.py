"""Data consistency of ``ganprior.restore`` on the embedded model, and the photo checks of issue 10.

1. For every task and composition: the RMSE (0..255) between ``A(output)`` and the observation, on the
   fused float output and on the saved 8-bit ``restored.png``; held-out emoji (uint8 observations made
   with the operator's own ``degrade``), CRI with ``--steps`` capped.
2. x4 SR of a 75x113 astronaut crop: ``skimage.data.astronaut()`` (512x512) cropped to rows 0..451 and
   columns 100..399 (452 high x 300 wide: the clean image), downsampled with Pillow's BICUBIC to 75 wide
   x 113 high (the observation, uint8). PSNR (0..255, all pixels and channels) of the fused output, of
   the generator's own output and of Pillow's BICUBIC upsampling, each against the clean crop.
3. Colorize a colour photo (``skimage.data.chelsea()``, 300x451) with CRI and DGP: mean
   |grey(output) - grey(input)| in 0..255 (Rec.601 grey of the saved 8-bit images).

    OMP_NUM_THREADS=1 python3 bench/consistency.py [--steps 30] [--images 3]
"""

from __future__ import annotations

import argparse
import math
import warnings

import numpy as np
import torch
from PIL import Image

import ganprior
from ganprior.api import CONSISTENT_FUSION
from ganprior.consistency import consistency_rmse
from ganprior.data.emoji import load_emoji_test
from ganprior.degradations import parse_task
from ganprior.images import from_uint8, to_uint8
from ganprior.loading import load_model

TASKS = ("colorize", "inpaint", "sr2", "sr4", "sr8", "blur2", "sr4+colorize", "sr4+colorize+inpaint",
         "denoise0.1", "jpeg30")
NOT_PROJECTED = ("denoise", "jpeg")  # A(x) = y would put the noise back / JPEG is not linear


def _grey255(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / mse)


def _hwc(x: torch.Tensor) -> np.ndarray:
    return to_uint8(x)


def task_consistency(prior, steps: int, n_images: int) -> None:
    data = load_emoji_test(32)
    picks = np.linspace(0, len(data) - 1, n_images).astype(int)
    print(f"| task | fused float RMSE (max over {n_images}) | saved 8-bit RMSE (max) | projected |")
    print("|---|---|---|---|")
    for task in TASKS:
        floats, saved = [], []
        for i in picks:
            clean = from_uint8(data.images[i])
            mask = "center" if "inpaint" in task else None  # at the size reaching the inpainting step
            op = parse_task(task, mask=mask, image_size=clean.shape[-2:], seed=int(i), **CONSISTENT_FUSION)
            observation = from_uint8(to_uint8(op.degrade(clean)))  # what a user's 8-bit file holds
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = ganprior.restore(observation, task=task, mask=mask, model=prior, steps=steps,
                                          progress=False, value_range=(-1, 1), class_index=int(data.labels[i]))
            floats.append(result.consistency_rmse)
            saved.append(consistency_rmse(op, from_uint8(to_uint8(result.image)), result.observation))
        projected = "no (reported only)" if task.startswith(NOT_PROJECTED) else "yes"
        print(f"| {task} | {max(floats):.4f} | {max(saved):.4f} | {projected} |")


def astronaut_sr(prior, steps: int) -> None:
    from skimage.data import astronaut

    clean = astronaut()[0:452, 100:400]
    low = np.array(Image.fromarray(clean).resize((75, 113), Image.BICUBIC))
    bicubic = np.asarray(Image.fromarray(low).resize((300, 452), Image.BICUBIC))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ganprior.restore(low, task="sr4", model=prior, steps=steps, progress=False)
    fused, raw = _hwc(result.image), _hwc(result.generator_output)
    print(f"\nx4 SR, astronaut crop 75x113 -> 300x452 (CRI, steps {steps}):")
    print(f"  fused PSNR {_psnr(fused, clean):.2f} dB | bicubic {_psnr(bicubic, clean):.2f} dB | "
          f"generator output {_psnr(raw, clean):.2f} dB | consistency RMSE {result.consistency_rmse:.4f}")
    for w in caught:
        print(f"  warning: {w.message}")
    Image.fromarray(np.concatenate([bicubic, fused, raw, clean], axis=1)).save("/tmp/astronaut_sr4.png")


def colour_photo_colorize(prior, steps: int) -> None:
    from skimage.data import chelsea

    photo = chelsea()
    print(f"\ncolorize a colour photo (chelsea {photo.shape[1]}x{photo.shape[0]}):")
    for method, extra in (("cri", {}), ("dgp", {"preset": "fast"})):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = ganprior.restore(photo, task="colorize", method=method, model=prior, steps=steps,
                                      progress=False, **extra)
        out = _hwc(result.image)
        error = float(np.abs(_grey255(out) - _grey255(photo)).mean())
        print(f"  {method}: mean |grey(output) - grey(input)| = {error:.3f}/255; consistency RMSE "
              f"{result.consistency_rmse:.4f}")
        for w in caught:
            print(f"    warning: {w.message}")
        Image.fromarray(out).save(f"/tmp/chelsea_colorize_{method}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--images", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    prior = load_model("emoji32")
    task_consistency(prior, args.steps, args.images)
    astronaut_sr(prior, args.steps)
    colour_photo_colorize(prior, args.steps)


if __name__ == "__main__":
    main()
