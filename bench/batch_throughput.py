"""Images per second of the inversion step at batch 1, 4, 8 and 16, side by side in one run.

What a batched inversion would repeat at every step, with one independent latent per image and the
loss a SUM of per-image losses (so per-image Adam is exactly elementwise Adam on the stacked latents):
  * ``wplus``: W+ latents -> synthesis -> perceptual (the model's ``auto`` distance, else MSE) + MSE on a
    ×4-downsampled target -> backward;
  * ``cri-offset``: the same on ``centroid + offset`` with λ1 = 100 and the offset-norm term;
  * ``pulse``: spherical latents -> Gaussianised W (per-image mean/std rows) -> synthesis -> 25·MSE on the
    ×4-downsampled target + 0.05·GEOCROSS -> backward -> renormalisation onto the spheres;
  * ``dgp``: BigGAN-style z -> synthesis -> discriminator-feature L1 + MSE -> backward (models with a D);
  * ``dgp-select``: DGP's whole candidate selection (``select_latents``: ``--select-num`` candidates per
    image, mapped, rendered ``select_chunk`` = 8 per image at a time within the pixel budget, scored
    by the D features of the ×4-degraded rendering) for the batch's images together (models with a D).
The batch sizes are interleaved round by round (load changes on a shared machine hit them alike);
each number is images / (min seconds per step over ``--repeats``), after one warm-up step, in wall time
and in this process's CPU time (robust to other processes' load when it runs one thread).

    OMP_NUM_THREADS=1 python bench/batch_throughput.py [--models emoji32 sg2_uncond_32 biggan_128]
        [--kinds wplus cri-offset pulse dgp dgp-select] [--json bench/results/x.json]
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
from ganprior.degradations import parse_task
from ganprior.loading import load_model, load_official
from ganprior.losses import PerceptualUnavailableError, get_perceptual
from ganprior.methods.centroids import sample_w
from ganprior.methods.dgp import DGPLoss, select_latents
from ganprior.methods.pulse import gaussianised_ws, geocross, sphere_norm

KINDS = ("wplus", "cri-offset", "pulse", "dgp", "dgp-select")


def load(name: str, fixtures: Path):
    if (fixtures / name).exists():
        return load_official(case_checkpoint(fixtures, name)).requires_grad_(False)
    return load_model(name).requires_grad_(False)


def perceptual_for(prior):
    try:
        return get_perceptual("auto", prior)
    except PerceptualUnavailableError:
        return get_perceptual("mse", prior)


def step_fn(prior, kind: str, batch: int, select_num: int):
    c, base, target = random_inputs(prior, batch)
    small_target = F.avg_pool2d(target, 4) if prior.resolution >= 16 else target
    if kind == "dgp-select":
        return selection_fn(prior, target, select_num)
    if kind == "pulse":
        return pulse_fn(prior, c, small_target)
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


def pulse_fn(prior, c: torch.Tensor, small_target: torch.Tensor):
    """PULSE's step on stacked spherical latents (each row its own Gaussianised-W fit, as batched)."""
    batch = len(c)
    fit = F.leaky_relu(sample_w(prior, c[:1], 2000, 0), 5.0)
    mean, std = fit.mean(0).expand(batch, 1, -1), fit.std(0).expand(batch, 1, -1)
    latent = torch.randn(batch, prior.num_ws, prior.w_dim, generator=torch.Generator().manual_seed(0))
    radius = sphere_norm(latent)
    latent.requires_grad_(True)

    def step() -> None:
        ws = gaussianised_ws(latent, mean, std)
        img = prior.synthesis(ws, c)
        small = F.avg_pool2d(img, 4) if prior.resolution >= 16 else img
        loss = 25.0 * (small - small_target).square().flatten(1).mean(1) + 0.05 * geocross(ws)
        latent.grad = None
        loss.sum().backward()
        with torch.no_grad():
            latent.mul_(radius / sphere_norm(latent))

    return step


def selection_fn(prior, target: torch.Tensor, select_num: int):
    """DGP's candidate selection for ``len(target)`` images together (×4 SR observations)."""
    degradation = parse_task("sr4", image_size=(prior.resolution, prior.resolution))
    with torch.no_grad():
        losses = [DGPLoss(prior, degradation, degradation(target[k:k + 1])) for k in range(len(target))]
    classes, seeds = [None] * len(losses), list(range(len(losses)))

    def step() -> None:
        select_latents(prior, losses, classes, select_num, 0.5, 3, 8, seeds)

    return step


def timed(step) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - start, time.process_time() - cpu


def images_per_second(prior, kind: str, batches: list[int], repeats: int, select_num: int) -> dict[str, dict]:
    """``{"wall": {batch: img/s}, "cpu": {batch: img/s}}``, the batch sizes interleaved round by round."""
    steps = {b: step_fn(prior, kind, b, select_num) for b in batches}
    for step in steps.values():
        step()  # warm-up: first-call allocations
    best = {b: (float("inf"), float("inf")) for b in batches}
    for _ in range(repeats):
        for b in batches:
            wall, cpu = timed(steps[b])
            best[b] = (min(best[b][0], wall), min(best[b][1], cpu))
    return {"wall": {b: b / best[b][0] for b in batches}, "cpu": {b: b / best[b][1] for b in batches}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["emoji32", "sg2_uncond_32", "sg3_t_64", "sgxl_16",
                                                        "biggan_128"])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--select-num", type=int, default=32, help="dgp-select: candidates per image")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        prior = load(name, args.fixtures)
        usable = {"wplus": prior.has_mapping, "cri-offset": prior.has_mapping, "pulse": prior.has_mapping,
                  "dgp": prior.has_discriminator, "dgp-select": prior.has_discriminator}
        for kind in (k for k in args.kinds if usable[k]):
            rates = images_per_second(prior, kind, args.batches, args.repeats, args.select_num)
            rows.append({"model": name, "step": kind, "images_per_s": rates["wall"],
                         "images_per_cpu_s": rates["cpu"]})
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        from ganprior.atomic import atomic_write_text

        report = {"torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": args.repeats,
                  "select_num": args.select_num, "rows": rows}
        atomic_write_text(args.json, json.dumps(report, indent=1) + "\n")
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), min of {args.repeats}, interleaved\n")
    head = " | ".join(f"b{b} img/s" for b in args.batches)
    print(f"| model | step | clock | {head} | b8 / b1 |")
    print("|---|---|---|" + "---|" * (len(args.batches) + 1))
    for r in rows:
        for clock, rates in (("wall", r["images_per_s"]), ("process CPU", r["images_per_cpu_s"])):
            ratio = rates[8] / rates[1] if 8 in rates and 1 in rates else float("nan")
            print(f"| {r['model']} | {r['step']} | {clock} | " + " | ".join(f"{rates[b]:.2f}" for b in args.batches)
                  + f" | {ratio:.2f} |")


if __name__ == "__main__":
    main()
