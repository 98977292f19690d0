"""Pivotal tuning one image at a time vs batched with per-image weights (vmap), at batch 1/4/8/16.

One step = synthesis of the pivot and the locality latent with the tuned weights, the original
rendering of the locality latent, the loss (perceptual + L2 on the degraded image, locality term),
backward to the generator's synthesis weights, Adam step. "sequential" runs
``ganprior.methods.pti.pivotal_tuning`` on each image in turn (its generator copy included), "batched"
runs ``ganprior.methods.batched_tuning.pivotal_tuning_batch`` on all of them. Both on the same images
(×4 SR of the model's samples), interleaved round by round on one thread; each number is the best of
``--rounds``, in wall seconds and in this process's CPU seconds (robust to other processes' load).
Also recorded: how far the batched loss curves are from the sequential ones (max relative difference
over all steps and images), next to how far the sequential curves move when the pivots are perturbed
by 1e-7 (relative): how much the problem itself amplifies float rounding (Adam's first steps are
±lr whatever the gradient's size, so rounding flips the update of near-zero gradients).

Perceptual distances: ``auto`` (emoji32: its feature net; the fixture, offline: its discriminator) and
``mse`` (the generator's share of the step alone).

    OMP_NUM_THREADS=1 GANPRIOR_OFFLINE=1 python bench/batched_tuning_speed.py [--steps 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

from ganprior.degradations import parse_task
from ganprior.loading import load_model
from ganprior.methods import get_method_class
from ganprior.methods.base import RunRecorder
from ganprior.methods.batched_tuning import pivotal_tuning_batch
from ganprior.methods.pti import pivotal_tuning

BATCHES = (1, 4, 8, 16)
MODELS = {"emoji32": "emoji32",
          "sg2_uncond_32": "/work/shared/fixtures/official/sg2_uncond_32/network-snapshot.stripped.pkl"}
TUNING = dict(lr=3e-4, reg_weight=1.0, reg_alpha=30.0, reg_perceptual_weight=10.0, reg_l2_weight=0.0)


def setup(source: str, n: int, perceptual: str = "auto"):
    """The prior, n started PTI runs (loss on ×4 SR observations) and their pivots."""
    prior = load_model(source).requires_grad_(False)
    classes = [i % prior.c_dim for i in range(n)] if prior.c_dim else [None] * n
    sr4 = parse_task("sr4", image_size=(prior.resolution, prior.resolution))
    method = get_method_class("pti")(perceptual=perceptual, l2_weight=1.0, n_samples=200, w_avg_samples=200)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        clean = prior.sample(n, classes=classes if prior.c_dim else None, seed=7)
        c = prior.class_matrix(classes, n) if prior.c_dim else None
        pivots = prior.mapping(torch.randn(n, prior.z_dim, generator=g), c, truncation_psi=0.7)
    runs = [method.start(prior, sr4, sr4(clean[i:i + 1]), None, classes[i], i, False, 0) for i in range(n)]
    return prior, runs, pivots


def sequential(prior, runs, pivots, steps: int) -> list[list[float]]:
    curves = []
    for k, run in enumerate(runs):
        recorder = RunRecorder(progress=False)
        pivotal_tuning(prior, pivots[k:k + 1], run.c, run.loss, recorder, steps, seed=k, **TUNING)
        curves.append([e["loss"] for e in recorder.losses])
    return curves


def batched(prior, runs, pivots, steps: int) -> list[list[float]]:
    recorders = [RunRecorder(progress=False) for _ in runs]
    pivotal_tuning_batch(prior, pivots, torch.cat([run.c for run in runs]), [run.loss for run in runs], recorders,
                         list(range(len(runs))), steps, **TUNING)
    return [[e["loss"] for e in r.losses] for r in recorders]


def max_rel_diff(curves, reference) -> float:
    return max(abs(x - y) / max(abs(y), 1e-12) for a, b in zip(curves, reference) for x, y in zip(a, b))


def measure(name: str, source: str, perceptual: str, steps: int, rounds: int) -> dict:
    prior, runs, pivots = setup(source, max(BATCHES), perceptual)
    variants = {(kind, b): (fn, runs[:b], pivots[:b]) for b in BATCHES
                for kind, fn in (("sequential", sequential), ("batched", batched))}
    best = {key: [float("inf"), float("inf")] for key in variants}
    curves = {}
    for fn, r, p in list(variants.values())[:2]:  # warm-up
        fn(prior, r[:1], p[:1], 1)
    for _ in range(rounds):
        for key, (fn, r, p) in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            curves[key] = fn(prior, r, p, steps)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[key] = [min(best[key][0], wall), min(best[key][1], cpu)]
    perceptual_name = runs[0].loss.perceptual.name
    rows = []
    for b in BATCHES:
        (seq_wall, seq_cpu), (bat_wall, bat_cpu) = best[("sequential", b)], best[("batched", b)]
        rel = max_rel_diff(curves[("batched", b)], curves[("sequential", b)])
        rows.append(dict(batch=b, sequential_step_s_per_image=dict(wall=seq_wall / b / steps, cpu=seq_cpu / b / steps),
                         batched_step_s_per_image=dict(wall=bat_wall / b / steps, cpu=bat_cpu / b / steps),
                         speedup=dict(wall=seq_wall / bat_wall, cpu=seq_cpu / bat_cpu),
                         loss_curve_max_rel_diff=rel))
        print(f"{name:14s} {perceptual:13s} B={b:2d}  seq {seq_cpu / b / steps * 1e3:6.1f} ms/img-step cpu  batched "
              f"{bat_cpu / b / steps * 1e3:6.1f}  speed-up cpu {seq_cpu / bat_cpu:4.2f}x wall {seq_wall / bat_wall:4.2f}x"
              f"  max rel loss diff {rel:.1e}", flush=True)
    noise = 1 + 1e-7 * torch.randn(pivots.shape, generator=torch.Generator().manual_seed(1))
    control = max_rel_diff(sequential(prior, runs, pivots * noise, steps), curves[("sequential", max(BATCHES))])
    print(f"{name:14s} {perceptual:13s} sequential vs itself with 1e-7 pivot noise: max rel loss diff {control:.1e}")
    params = sum(p.numel() for p in prior.synthesis_parameters())
    return dict(model=name, perceptual=perceptual_name, synthesis_parameters=params, rows=rows,
                sequential_with_pivot_noise_1e7_max_rel_diff=control)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--perceptuals", nargs="+", default=["auto", "mse"])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "batched_tuning.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the 8x8 -> 32 px resolution note, the offline perceptual fallback
    torch.set_num_threads(1)
    results = [measure(name, MODELS[name], perceptual, args.steps, args.rounds)
               for perceptual in args.perceptuals for name in args.models]
    report = dict(torch=torch.__version__, threads=torch.get_num_threads(), steps=args.steps, rounds=args.rounds,
                  tuning=TUNING, results=results)
    from ganprior.atomic import atomic_write_text

    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
