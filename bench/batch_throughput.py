"""Images per second of the inversion step at batch 1, 4, 8 and 16, side by side in one run.

What a batched inversion would repeat at every step, with one independent latent per image and the
loss a SUM of per-image losses (so per-image Adam is exactly elementwise Adam on the stacked latents):
  * ``wplus``: W+ latents -> synthesis -> perceptual (the model's ``auto`` distance, else MSE) + MSE on a
    ×4-downsampled target -> backward;
  * ``cri-offset``: the same on ``centroid + offset`` with λ1 = 100 and the offset-norm term;
  * ``dgp``: BigGAN-style z -> synthesis -> discriminator-feature L1 + MSE -> backward (models with a D).
Each number is images / (min seconds per step over ``--repeats``), after one warm-up step.

    OMP_NUM_THREADS=1 python bench/batch_throughput.py [--models emoji32 sg2_uncond_32 biggan_128]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from generator_speed import DEFAULT_FIXTURES, case_checkpoint
from ganprior.bench.full_size import random_inputs
from ganprior.loading import load_model, load_official
from ganprior.losses import PerceptualUnavailableError, get_perceptual


def load(name: str, fixtures: Path):
    if (fixtures / name).exists():
        return load_official(case_checkpoint(fixtures, name)).requires_grad_(False)
    return load_model(name).requires_grad_(False)


def perceptual_for(prior):
    try:
        return get_perceptual("auto", prior)
    except PerceptualUnavailableError:
        return get_perceptual("mse", prior)


def step_fn(prior, kind: str, batch: int):
    c, base, target = random_inputs(prior, batch)
    small_target = F.avg_pool2d(target, 4) if prior.resolution >= 16 else target
    distance = get_perceptual("discriminator", prior) if kind == "dgp" else perceptual_for(prior)
    latent = (torch.zeros_like(base) if kind == "cri-offset" else base.clone()).requires_grad_(True)
    l2 = 100.0 if kind == "cri-offset" else 1.0

    def step() -> None:
        ws = base + latent if kind == "cri-offset" else latent
        img = prior.synthesis(ws, c)
        small = F.avg_pool2d(img, 4) if prior.resolution >= 16 else img
        loss = distance(img, target) + l2 * (small - small_target).square().flatten(1).mean(1)
        if kind == "cri-offset":
            loss = loss + torch.linalg.vector_norm(latent.flatten(1), dim=1)
        latent.grad = None
        loss.sum().backward()

    return step


def images_per_second(prior, kind: str, batch: int, repeats: int) -> float:
    step = step_fn(prior, kind, batch)
    step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return batch / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["emoji32", "sg2_uncond_32", "sg3_t_64", "sgxl_16",
                                                        "biggan_128"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        prior = load(name, args.fixtures)
        kinds = (["wplus", "cri-offset"] if prior.has_mapping else []) + (["dgp"] if prior.has_discriminator else [])
        for kind in kinds:
            rates = {b: images_per_second(prior, kind, b, args.repeats) for b in args.batches}
            rows.append({"model": name, "step": kind, "images_per_s": rates})
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        from ganprior.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(rows, indent=1))
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), min of {args.repeats}\n")
    head = " | ".join(f"b{b} img/s" for b in args.batches)
    print(f"| model | step | {head} | b8 / b1 |")
    print("|---|---|" + "---|" * (len(args.batches) + 1))
    for r in rows:
        rates = r["images_per_s"]
        ratio = rates[8] / rates[1] if 8 in rates and 1 in rates else float("nan")
        print(f"| {r['model']} | {r['step']} | " + " | ".join(f"{rates[b]:.2f}" for b in args.batches)
              + f" | {ratio:.2f} |")


if __name__ == "__main__":
    main()
