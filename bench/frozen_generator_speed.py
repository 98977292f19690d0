"""Per-step time of W+ projection on the embedded model with the generator frozen (today's code) and
with it left trainable (the code before the freeze: every generator weight gradient is computed),
measured side by side: the two modes alternate in one process, so machine load hits both alike.

The "trainable" mode runs the very same ``optimize_ws`` with ``frozen`` replaced by a no-op, which
is exactly what the stage did before. Reported: median seconds per step of each mode and their ratio.

    OMP_NUM_THREADS=1 python3 bench/frozen_generator_speed.py [--steps 20] [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

import ganprior.methods.projection as projection
from ganprior.degradations import parse_task
from ganprior.loading import load_model
from ganprior.losses import get_perceptual
from ganprior.methods.base import ReconstructionLoss, RunRecorder


def run_wplus(prior, loss, c, init, steps: int, freeze: bool) -> tuple[float, int]:
    """Seconds per step of one W+ run, and how many generator parameters got a gradient."""
    for p in prior.parameters():
        p.grad = None
    original = projection.frozen
    if not freeze:
        projection.frozen = lambda *modules: contextlib.nullcontext()
    try:
        recorder = RunRecorder(progress=False)
        start = time.perf_counter()
        projection.optimize_ws(prior, c, loss, init, steps, 0.1, recorder, "wplus")
        seconds = (time.perf_counter() - start) / steps
    finally:
        projection.frozen = original
    return seconds, sum(p.grad is not None for p in prior.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prior = load_model("emoji32")
    for p in prior.parameters():  # as load_model hands them out before the freeze: trainable
        p.requires_grad_(True)
    clean = prior(torch.randn(1, prior.z_dim, generator=torch.Generator().manual_seed(0)),
                  prior.class_matrix(0, 1)).detach()
    degradation = parse_task("colorize")
    loss = ReconstructionLoss(get_perceptual("auto", prior), degradation, degradation(clean), l2_weight=1.0)
    c = prior.class_matrix(0, 1)
    init = projection.mean_w(prior, c, 1000, 0).expand(-1, prior.num_ws, -1).clone()
    times: dict[str, list[float]] = {"trainable (before)": [], "frozen (after)": []}
    grads: dict[str, int] = {}
    run_wplus(prior, loss, c, init, 3, True)  # warm-up
    for _ in range(args.rounds):
        for label, freeze in (("trainable (before)", False), ("frozen (after)", True)):
            seconds, n_grads = run_wplus(prior, loss, c, init, args.steps, freeze)
            times[label].append(seconds)
            grads[label] = n_grads
    n_params = sum(1 for _ in prior.parameters())
    print(f"W+ on emoji32, {args.steps} steps x {args.rounds} alternating rounds, {args.threads} thread(s)")
    for label, values in times.items():
        print(f"  {label:20s} median {statistics.median(values) * 1000:7.1f} ms/step  "
              f"(min {min(values) * 1000:.1f})  parameters with a .grad: {grads[label]} of {n_params}")
    ratio = statistics.median(times["trainable (before)"]) / statistics.median(times["frozen (after)"])
    print(f"  before / after: {ratio:.2f}x")


if __name__ == "__main__":
    main()
