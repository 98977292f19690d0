"""restore -> score with one mask file, on the embedded model (issue 10, item 3), from the command line.

A held-out emoji loses a centre box (the hole is filled with grey); the mask file marks the hole white.
``ganprior restore --task inpaint --mask holes.png --mask-hole-value white`` restores it, and ``ganprior
score --mask holes.png --mask-hole-value white`` scores the degraded input and the restoration against the
clean emoji; the run folder's own ``mask.png`` (``--mask-hole-value black``) must give the same hole.

    OMP_NUM_THREADS=1 .venv/bin/python bench/mask_round_trip.py --steps 50 --index 0 --out /tmp/roundtrip
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

GANPRIOR = str(Path(sys.executable).with_name("ganprior"))


def _score(image: Path, clean: Path, mask: Path, hole_value: str) -> dict:
    out = subprocess.run([GANPRIOR, "score", str(image), "--ref", str(clean), "--mask", str(mask),
                          "--mask-hole-value", hole_value], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--index", type=int, default=0, help="which held-out emoji")
    parser.add_argument("--out", type=Path, default=Path("/tmp/mask_round_trip"))
    args = parser.parse_args()
    from ganprior.data.emoji import load_emoji_test

    test = load_emoji_test(32)
    clean = test.images[args.index]
    args.out.mkdir(parents=True, exist_ok=True)
    holes = np.zeros(clean.shape[:2], np.uint8)
    holes[11:21, 11:21] = 255  # white = hole
    degraded = clean.copy()
    degraded[holes > 0] = 128
    paths = {name: args.out / f"{name}.png" for name in ("clean", "degraded", "holes")}
    Image.fromarray(clean).save(paths["clean"])
    Image.fromarray(degraded).save(paths["degraded"])
    Image.fromarray(holes).save(paths["holes"])
    subprocess.run([GANPRIOR, "restore", str(paths["degraded"]), "--task", "inpaint", "--mask", str(paths["holes"]),
                    "--mask-hole-value", "white", "--steps", str(args.steps), "--out", str(args.out / "runs"),
                    "--overwrite"], check=True)
    run = args.out / "runs" / "degraded"
    rows = {"degraded input": _score(paths["degraded"], paths["clean"], paths["holes"], "white"),
            "restored (holes.png, white)": _score(run / "restored.png", paths["clean"], paths["holes"], "white"),
            "restored (run's mask.png, black)": _score(run / "restored.png", paths["clean"], run / "mask.png", "black")}
    for name, m in rows.items():
        print(f"{name:34s} psnr {m['psnr']:6.2f} dB  psnr_hole {m['psnr_hole']:6.2f} dB  ssim_hole {m['ssim_hole']:.3f}")
    print(f"class {test.classes[test.labels[args.index]]}; sheet: {run / 'sheet.png'}")


if __name__ == "__main__":
    main()
