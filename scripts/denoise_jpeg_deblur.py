"""Paired PSNR of denoise / jpeg / blur restorations against the degraded input and the classical estimate.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/denoise_jpeg_deblur.py --out docs/denoise_jpeg_deblur --steps 20

Clean images: scikit-image photos cropped to odd sizes (300x451 and friends) and held-out emoji
(``emoji-test``, 32 px). Each is degraded the way a user's file would be (8-bit PNG, or a real Pillow JPEG
file for ``jpeg30``), then restored through ``ganprior.restore`` with the embedded model. Writes
``results.json``, ``table.md`` and one before/after sheet (centre crop) per photo in ``--sheets``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganprior.api import CONSISTENT_FUSION, load_prior, restore
from ganprior.bench.baselines import run_baseline
from ganprior.bench.sources import load_images
from ganprior.consistency import calibrate
from ganprior.degradations import Blur, parse_task
from ganprior.images import from_uint8, make_sheet, to_uint8

PHOTOS = {"chelsea": (300, 451), "rocket": (451, 300), "astronaut": (301, 451), "coffee": (300, 451),
          "camera": (451, 301)}
#: task label -> (task string for restore, how the degraded file is made)
TASKS = {"denoise15": (f"denoise{30 / 255:.6f}", "noise", 15), "denoise25": (f"denoise{50 / 255:.6f}", "noise", 25),
         "denoise25-est": ("denoise", "noise", 25),  # sigma not given: estimated from the photo
         "jpeg30": ("jpeg30", "jpeg", 30), "blur2": ("blur2", "blur", 2.0)}
#: the before/after sheets show this centre crop (H, W) at full resolution
SHEET_CROP = (200, 260)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a.double() - b.double()).square().mean())
    return 10 * math.log10(4.0 / mse) if mse > 0 else float("inf")


def photos() -> dict[str, torch.Tensor]:
    from skimage import data

    out = {}
    for name, (h, w) in PHOTOS.items():
        img = getattr(data, name)()
        img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
        out[name] = from_uint8(np.ascontiguousarray(img[:h, :w]))
    return out


def degrade(clean: torch.Tensor, how: str, value: float, path: Path, seed: int) -> Path:
    """Write the degraded file a user would have (8-bit PNG, or a real JPEG) and return its path."""
    if how == "jpeg":
        path = path.with_suffix(".jpg")
        Image.fromarray(to_uint8(clean)).save(path, format="JPEG", quality=int(value))
        return path
    if how == "noise":
        g = torch.Generator().manual_seed(seed)
        degraded = clean + (2 * value / 255) * torch.randn(clean.shape, generator=g)
    else:
        degraded = Blur(value)(clean)
    Image.fromarray(to_uint8(degraded.clamp(-1, 1))).save(path.with_suffix(".png"))
    return path.with_suffix(".png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--method", default="cri")
    parser.add_argument("--emoji", type=int, default=4)
    parser.add_argument("--sheets", nargs="*", default=["chelsea", "rocket"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ganprior-djd-"))  # the degraded files (not kept)
    prior = load_prior()
    images = photos()
    images.update({im.id: im.clean for im in load_images("emoji-test", prior.resolution, limit=args.emoji)})
    rows, cells = [], {}
    for name, clean in images.items():
        for seed, (label, (task, how, value)) in enumerate(TASKS.items()):
            file = degrade(clean, how, value, work / f"{name}-{label}", seed)
            observed = from_uint8(np.asarray(Image.open(file).convert("RGB")))
            started = time.perf_counter()
            result = restore(str(file), task=task, method=args.method, model=prior, steps=args.steps, progress=False)
            seconds = time.perf_counter() - started
            op = parse_task(task, image_size=tuple(clean.shape[-2:]), **CONSISTENT_FUSION)
            calibrate(op, observed, str(file))
            classical = op[0].classical_estimate(observed)
            wiener = run_baseline("wiener", observed, op, tuple(clean.shape[-2:])) if how == "blur" else None
            report = result.config.get("observation") or {}
            row = {"image": name, "task": label, "size": list(clean.shape[-2:]),
                   "input": _psnr(observed, clean), "classical": _psnr(classical, clean),
                   "skimage_wiener": None if wiener is None else _psnr(wiener, clean),
                   "prior_raw": _psnr(result.generator_output, clean), "output": _psnr(result.image, clean),
                   "prior_weight": report.get("prior_weight"), "prior_weaker": report.get("prior_weaker"),
                   "noise_sigma_255": None if report.get("noise_sigma") is None else report["noise_sigma"] * 127.5,
                   "seconds": seconds}
            rows.append(row)
            print(json.dumps(row), flush=True)
            cells[(name, label)] = (observed, classical, result.generator_output, result.image, clean)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    lines = ["| image | size | task | σ used (/255) | input dB | classical dB | skimage Wiener dB | prior (raw) dB | "
             "output dB | output − input | prior weight |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        weight = "" if r["prior_weight"] is None else f"{r['prior_weight']:.2f}"
        sigma = "" if r["noise_sigma_255"] is None else f"{r['noise_sigma_255']:.1f}"
        wiener = "" if r["skimage_wiener"] is None else f"{r['skimage_wiener']:.2f}"
        lines.append(f"| {r['image']} | {r['size'][0]}x{r['size'][1]} | {r['task']} | {sigma} | {r['input']:.2f} | "
                     f"{r['classical']:.2f} | {wiener} | {r['prior_raw']:.2f} | {r['output']:.2f} | "
                     f"{r['output'] - r['input']:+.2f} | {weight} |")
    lines += ["", "| task | min over images of output − input (dB) | mean | images |", "|---|---|---|---|"]
    for label in TASKS:
        gains = [r["output"] - r["input"] for r in rows if r["task"] == label]
        lines.append(f"| {label} | {min(gains):+.2f} | {sum(gains) / len(gains):+.2f} | {len(gains)} |")
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    for name in args.sheets:
        grid = [[_crop(image) for image in cells[(name, label)]] for label in TASKS]
        captions = [[f"{label}: degraded {rows_db(rows, name, label, 'input')}",
                     f"classical {rows_db(rows, name, label, 'classical')}",
                     f"generator {rows_db(rows, name, label, 'prior_raw')}",
                     f"output {rows_db(rows, name, label, 'output')}", "clean"] for label in TASKS]
        make_sheet(grid, captions, args.out / f"sheet-{name}.png")


def _crop(image: torch.Tensor) -> torch.Tensor:
    h, w = image.shape[-2:]
    ch, cw = min(h, SHEET_CROP[0]), min(w, SHEET_CROP[1])
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[..., top:top + ch, left:left + cw]


def rows_db(rows: list[dict], name: str, label: str, key: str) -> str:
    value = next(r[key] for r in rows if r["image"] == name and r["task"] == label)
    return f"{value:.1f} dB"


if __name__ == "__main__":
    main()
