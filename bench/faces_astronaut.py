"""Face pipeline on skimage's astronaut: landmarks drawn on the photo, FFHQ-aligned crops at 256 and
1024 (the 1024 one saved as a 384 px preview), the align -> un-align round trip, and timings.

    OMP_NUM_THREADS=1 .venv/bin/python bench/faces_astronaut.py --out docs/faces

Writes PNGs and ``astronaut.json`` (numbers quoted in the README) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image, ImageDraw

from ganprior.atomic import atomic_path, atomic_write_text
from ganprior.faces.align import align, ffhq_quad, paste
from ganprior.faces.detect import find_faces, to_uint8


def save_png(pixels: np.ndarray | Image.Image, path: Path) -> None:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor) -> float:
    mse = float(((a - b) ** 2)[where.expand_as(a)].mean())
    return 10 * np.log10(4.0 / mse)  # [-1, 1] images: peak-to-peak 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/faces"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    photo = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[None].float() / 127.5 - 1
    t0 = time.perf_counter()
    faces = find_faces(photo)
    detect_s = time.perf_counter() - t0
    box, landmarks = faces[0]
    quad = ffhq_quad(landmarks)

    drawn = Image.fromarray(to_uint8(photo))
    pen = ImageDraw.Draw(drawn)
    for other_box, _ in faces[1:]:
        pen.rectangle(other_box, outline=(255, 160, 0), width=1)
    pen.rectangle(box, outline=(0, 255, 0), width=1)
    corners = [tuple(c + 0.5) for c in quad.corners]  # PIL draws in pixel-corner coordinates
    pen.line(corners + corners[:1], fill=(255, 255, 0), width=2)
    for x, y in landmarks:
        pen.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=(255, 0, 0))
    save_png(drawn, out / "astronaut_landmarks.png")

    record = {"photo": "skimage.data.astronaut() 512x512", "faces_found": len(faces), "box": list(box),
              "detect_and_landmarks_s": round(detect_s, 3), "quad": quad.corners.round(2).tolist(),
              "quad_size_px": round(quad.size, 2), "crops": {}}
    for size in (256, 1024):
        t0 = time.perf_counter()
        crop, inside = align(photo, quad, size)
        align_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        back, alpha = paste(photo, crop, quad)
        paste_s = time.perf_counter() - t0
        face = alpha > 0
        pixels = to_uint8(crop)
        name = f"astronaut_aligned_{size}.png"
        if size > 512:
            name = f"astronaut_aligned_{size}_preview384.png"
            pixels = np.asarray(Image.fromarray(pixels).resize((384, 384), Image.LANCZOS))
        save_png(pixels, out / name)
        record["crops"][str(size)] = {
            "file": name, "align_s": round(align_s, 4), "paste_s": round(paste_s, 4),
            "inside_photo_fraction": round(float(inside.mean()), 4),
            "round_trip_psnr_in_feathered_region_db": round(psnr(back, photo, face), 2),
            "feathered_region_px": int(face.sum()),
            "max_abs_diff_outside": float((back - photo).abs()[(~face).expand_as(photo)].max()),
        }
    atomic_write_text(out / "astronaut.json", json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
